//! Text for people: relative times ("12 s ago"), durations, timestamps, query strings.
//! The script ticks the relative times with the same rules (see `assets/dashboard.js`).

use chrono::{DateTime, SecondsFormat, Utc};

pub(crate) use crate::http::events::encode;

/// A time as a page shows it: the machine-readable instant (for `<time datetime>`, which
/// the script ticks) and the text shown without the script.
pub struct When {
    pub iso: String,
    pub text: String,
}

/// How long ago `then` was: `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`.
pub fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> When {
    let secs = (now - then).num_seconds().max(0);
    When {
        iso: iso(then),
        text: format!("{} ago", span(secs)),
    }
}

/// How long until `end`: `48 s left`, or `expired`.
pub fn left(now: DateTime<Utc>, end: DateTime<Utc>) -> When {
    let secs = (end - now).num_seconds();
    When {
        iso: iso(end),
        text: if secs > 0 {
            format!("{} left", span(secs))
        } else {
            "expired".to_owned()
        },
    }
}

/// A whole number of seconds in its largest unit.
pub fn span(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// RFC 3339 with milliseconds, as the API writes times.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time for reading: `2026-03-05 10:30:00 UTC`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A query string (`?a=1&b=2`, or `""`) of the pairs whose value is not blank.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let kept: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| {
            let value = value.map(str::trim).filter(|v| !v.is_empty())?;
            Some(format!("{name}={}", encode(value)))
        })
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// A percentage with one decimal: `99.5 %`.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_read_as_people_say_them() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let secs = chrono::Duration::seconds;
        assert_eq!(ago(now, now - secs(12)).text, "12 s ago");
        assert_eq!(ago(now, now - secs(150)).text, "2 min ago");
        assert_eq!(ago(now, now - secs(3 * 3600)).text, "3 h ago");
        assert_eq!(ago(now, now - secs(3 * 86_400)).text, "3 d ago");
        assert_eq!(ago(now, now + secs(5)).text, "0 s ago");
        assert_eq!(left(now, now + secs(48)).text, "48 s left");
        assert_eq!(left(now, now - secs(1)).text, "expired");
        assert_eq!(ago(now, now).iso, "2027-01-15T08:00:00.000Z");
    }

    #[test]
    fn queries_keep_what_is_given_and_encode_it() {
        assert_eq!(
            query(&[
                ("status", Some("failed")),
                ("q", Some("my app&x")),
                ("live", None),
                ("x", Some(" "))
            ]),
            "?status=failed&q=my%20app%26x"
        );
        assert_eq!(query(&[("a", None)]), "");
    }
}
