//! Reading Server-Sent Events, as a client of `GET /v1/events/stream` (`warren events tail`,
//! and the tests): frames split out of the bytes as they arrive.

/// One frame: an event (`id:`, `event:`, `data:`) or a comment (`: keep-alive`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: Option<String>,
}

impl Frame {
    /// A frame from its lines (without the blank line that ends it).
    pub fn parse(text: &str) -> Self {
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

/// Collects bytes and hands out whole frames.
#[derive(Debug, Default)]
pub struct Frames {
    buffer: String,
}

impl Frames {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.push_str(&String::from_utf8_lossy(bytes));
    }

    /// The next whole frame received, if there is one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let end = self.buffer.find("\n\n")?;
        let text: String = self.buffer.drain(..end + 2).collect();
        Some(Frame::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_whatever_the_chunks() {
        let mut frames = Frames::default();
        frames.push(b"id: 4\nevent: tunnel.active.v1\nda");
        assert_eq!(frames.next_frame(), None);
        frames.push(b"ta: {\"a\":1}\n\n: keep-alive\n\n");
        let first = frames.next_frame().unwrap();
        assert_eq!(first.id.as_deref(), Some("4"));
        assert_eq!(first.event.as_deref(), Some("tunnel.active.v1"));
        assert_eq!(first.data, "{\"a\":1}");
        assert_eq!(
            frames.next_frame().unwrap().comment.as_deref(),
            Some("keep-alive")
        );
        assert_eq!(frames.next_frame(), None);
    }
}
