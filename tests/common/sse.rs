//! A Server-Sent Events reader for the event stream: frames as they arrive, with deadlines.

use std::time::Duration;

use serde_json::Value;
use warren::sse::Frames;

pub use warren::sse::Frame;

/// The frame's data as JSON.
pub trait Json {
    fn json(&self) -> Value;
}

impl Json for Frame {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }
}

/// Reads an open `text/event-stream` answer frame by frame.
pub struct SseReader {
    response: reqwest::Response,
    frames: Frames,
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
            frames: Frames::default(),
        }
    }

    /// The next frame, or `None` when the stream ends or nothing comes within `within`.
    pub async fn frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.frames.next_frame() {
                return Some(frame);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.frames.push(&bytes),
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
