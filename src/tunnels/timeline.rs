//! A tunnel's states over a window of time, from its transition log: the segments a status
//! bar draws, and the share of the time the tunnel was `active` (its uptime).
//!
//! A tunnel is `creating` from its creation (which is not a transition) until its first
//! transition; the state machine is a line, so the log of one tunnel holds at most four.

use chrono::{DateTime, Utc};

use super::Status;

/// One logged status change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub at: DateTime<Utc>,
}

/// The tunnel was in `status` from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub status: Status,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The tunnel's states within [`start`, `end`].
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// In order, within the window; none before the tunnel existed.
    pub segments: Vec<Segment>,
    /// The transitions within the window.
    pub transitions: Vec<Transition>,
}

impl Timeline {
    /// The states of a tunnel created at `created_at` with these transitions (in order),
    /// clipped to [`start`, `end`].
    pub fn build(
        created_at: DateTime<Utc>,
        transitions: &[Transition],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Self {
        let mut segments = Vec::new();
        let mut status = Status::Creating;
        let mut since = created_at;
        let changes = transitions.iter().map(|t| (t.at, t.to));
        for (at, next) in changes.chain(std::iter::once((end, status))) {
            let (from, to) = (since.max(start), at.min(end));
            if from < to {
                segments.push(Segment { status, from, to });
            }
            if at >= end {
                break;
            }
            (status, since) = (next, at);
        }
        let transitions = transitions
            .iter()
            .filter(|t| t.at >= start && t.at <= end)
            .copied()
            .collect();
        Self {
            start,
            end,
            segments,
            transitions,
        }
    }

    /// The share (0 to 1) of the time the tunnel existed in the window that it was `active`;
    /// `None` when it did not exist in the window at all.
    pub fn uptime(&self) -> Option<f64> {
        let total: i64 = self.segments.iter().map(Segment::millis).sum();
        if total <= 0 {
            return None;
        }
        let active: i64 = self
            .segments
            .iter()
            .filter(|s| s.status == Status::Active)
            .map(Segment::millis)
            .sum();
        Some(active as f64 / total as f64)
    }
}

impl Segment {
    pub fn millis(&self) -> i64 {
        (self.to - self.from).num_milliseconds().max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(minute)
    }

    fn t(from: Status, to: Status, minute: i64) -> Transition {
        Transition {
            from,
            to,
            at: at(minute),
        }
    }

    #[test]
    fn a_tunnel_inside_the_window_is_drawn_from_its_creation() {
        let log = [
            t(Status::Creating, Status::Active, 10),
            t(Status::Active, Status::Failed, 40),
        ];
        let timeline = Timeline::build(at(5), &log, at(0), at(60));
        let spans: Vec<_> = timeline
            .segments
            .iter()
            .map(|s| (s.status, s.from, s.to))
            .collect();
        assert_eq!(
            spans,
            [
                (Status::Creating, at(5), at(10)),
                (Status::Active, at(10), at(40)),
                (Status::Failed, at(40), at(60)),
            ]
        );
        assert_eq!(timeline.transitions.len(), 2);
        // Active 30 of the 55 minutes it existed.
        assert!((timeline.uptime().unwrap() - 30.0 / 55.0).abs() < 1e-9);
    }

    #[test]
    fn the_window_clips_what_came_before_and_a_live_tunnel_runs_to_the_end() {
        let log = [t(Status::Creating, Status::Active, -100)];
        let timeline = Timeline::build(at(-120), &log, at(0), at(60));
        assert_eq!(timeline.segments.len(), 1);
        assert_eq!(timeline.segments[0].status, Status::Active);
        assert_eq!(timeline.segments[0].from, at(0));
        assert!(timeline.transitions.is_empty());
        assert_eq!(timeline.uptime(), Some(1.0));
    }

    #[test]
    fn a_tunnel_created_after_the_window_has_no_segments() {
        let timeline = Timeline::build(at(90), &[], at(0), at(60));
        assert!(timeline.segments.is_empty());
        assert_eq!(timeline.uptime(), None);
    }
}
