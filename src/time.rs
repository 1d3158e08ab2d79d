//! Timestamps as the API shows them: RFC 3339, UTC, milliseconds (`2026-03-05T10:30:00.000Z`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// A UTC instant that serializes with millisecond precision and a `Z` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Self(value)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_render_with_milliseconds_and_z() {
        let t = Utc.with_ymd_and_hms(2026, 3, 5, 10, 30, 0).unwrap();
        let json = serde_json::to_string(&Timestamp(t)).unwrap();
        assert_eq!(json, "\"2026-03-05T10:30:00.000Z\"");
    }
}
