//! A Server-Sent Events reader for the event stream: frames as they arrive, with deadlines.

use std::time::Duration;

use serde_json::Value;

/// One frame of the stream: an event (`id:`, `event:`, `data:`) or a comment (`: …`).
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: Option<String>,
}

impl Frame {
    /// The frame's data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }

    fn parse(text: &str) -> Self {
        let mut frame = Frame::default();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                frame.comment = Some(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "data" => {
                    if !frame.data.is_empty() {
                        frame.data.push('\n');
                    }
                    frame.data.push_str(value);
                }
                _ => {}
            }
        }
        frame
    }
}

/// Reads an open `text/event-stream` answer frame by frame.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "the stream was refused");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "not an event stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame, or `None` when the stream ends or nothing comes within `within`.
    pub async fn frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let text: String = self.buffer.drain(..end + 2).collect();
                return Some(Frame::parse(&text));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event (comments skipped); panics naming `what` if none comes within `within`.
    pub async fn event(&mut self, within: Duration, what: &str) -> Frame {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.frame(left).await {
                Some(frame) if frame.comment.is_some() && frame.event.is_none() => continue,
                Some(frame) => return frame,
                None => panic!("no event within {within:?}: {what}"),
            }
        }
    }

    /// Every event that comes until the stream has been quiet for `quiet`.
    pub async fn events_until_quiet(&mut self, quiet: Duration) -> Vec<Frame> {
        let mut events = Vec::new();
        while let Some(frame) = self.frame(quiet).await {
            if frame.event.is_some() {
                events.push(frame);
            }
        }
        events
    }
}
