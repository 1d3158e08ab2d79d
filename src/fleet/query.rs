//! The list query (filters, time range, sort, page), parsed once for the native route and
//! the Cloudflare-compatible one; only the parameter names differ.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{parse_rfc3339, MAX_CLOCK_SKEW, RETENTION};
use crate::error::Error;

/// The widest window of the `last_seen` source.
pub const LAST_SEEN_WINDOW: Duration = Duration::minutes(60);
/// The window `hourly` and `raw` cover when `from` is not given.
pub const DEFAULT_WINDOW: Duration = Duration::hours(24);
pub const MAX_PER_PAGE: i64 = 50;
pub const DEFAULT_PER_PAGE: i64 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    LastSeen,
    Hourly,
    Raw,
}

/// The `sort_by` values, spelled as Cloudflare spells them.
pub const SORT_KEYS: [&str; 7] = [
    "colo",
    "device_id",
    "mode",
    "platform",
    "status",
    "timestamp",
    "version",
];

/// The query parameters as sent, all text, so each error can name its parameter. Both
/// dialects' spellings are accepted (`perPage` and `per_page`).
#[derive(Debug, Default, Deserialize)]
pub struct RawList {
    pub from: Option<String>,
    pub to: Option<String>,
    pub page: Option<String>,
    #[serde(alias = "perPage")]
    pub per_page: Option<String>,
    pub colo: Option<String>,
    #[serde(alias = "deviceId")]
    pub device_id: Option<String>,
    pub mode: Option<String>,
    pub platform: Option<String>,
    pub status: Option<String>,
    pub version: Option<String>,
    #[serde(alias = "sortBy")]
    pub sort_by: Option<String>,
    pub source: Option<String>,
}

/// How a dialect names the parameters whose names differ (camelCase natively, snake_case in
/// the Cloudflare dialect).
pub struct Names {
    pub per_page: &'static str,
    pub device_id: &'static str,
    pub sort_by: &'static str,
    pub since_minutes: &'static str,
    pub time_now: &'static str,
}

pub const NATIVE: Names = Names {
    per_page: "perPage",
    device_id: "deviceId",
    sort_by: "sortBy",
    since_minutes: "sinceMinutes",
    time_now: "timeNow",
};
pub const CLOUDFLARE: Names = Names {
    per_page: "per_page",
    device_id: "device_id",
    sort_by: "sort_by",
    since_minutes: "since_minutes",
    time_now: "time_now",
};

#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub colo: Option<String>,
    pub device_id: Option<Uuid>,
    pub mode: Option<String>,
    pub platform: Option<String>,
    pub status: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub source: Source,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub page: i64,
    pub per_page: i64,
    pub sort_by: &'static str,
    pub filters: Filters,
}

impl ListQuery {
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }
}

/// An empty parameter (`colo=`) is the same as an absent one.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub fn parse(raw: &RawList, names: &Names, now: DateTime<Utc>) -> Result<ListQuery, Error> {
    let source = match given(&raw.source) {
        None | Some("last_seen") => Source::LastSeen,
        Some("hourly") => Source::Hourly,
        Some("raw") => Source::Raw,
        Some(other) => {
            return Err(Error::bad_param(
                "source",
                format!("source must be one of last_seen, hourly, raw; got `{other}`"),
            ))
        }
    };
    let sort_by = match given(&raw.sort_by) {
        None => "timestamp",
        Some(s) => SORT_KEYS.into_iter().find(|k| *k == s).ok_or_else(|| {
            Error::bad_param(
                names.sort_by,
                format!(
                    "{} must be one of {}; got `{s}`",
                    names.sort_by,
                    SORT_KEYS.join(", ")
                ),
            )
        })?,
    };
    let page = match given(&raw.page) {
        None => 1,
        Some(v) => whole_number("page", v, 1, i64::from(i32::MAX))?,
    };
    let per_page = match given(&raw.per_page) {
        None => DEFAULT_PER_PAGE,
        Some(v) => whole_number(names.per_page, v, 1, MAX_PER_PAGE)?,
    };
    let to = match given(&raw.to) {
        None => now,
        Some(v) => instant("to", v)?,
    };
    let from = match given(&raw.from) {
        Some(v) => instant("from", v)?,
        None if source == Source::LastSeen => to - LAST_SEEN_WINDOW,
        None => to - DEFAULT_WINDOW,
    };
    if from > to {
        return Err(Error::bad_param("from", "from must not be later than to"));
    }
    match source {
        Source::LastSeen if to - from > LAST_SEEN_WINDOW => {
            return Err(Error::bad_param(
                "from",
                "the last_seen source covers at most 60 minutes between from and to; \
                 use source=hourly or source=raw for longer ranges",
            ))
        }
        Source::Hourly | Source::Raw if from < now - RETENTION - MAX_CLOCK_SKEW => {
            return Err(Error::bad_param(
                "from",
                "the hourly and raw sources reach at most 7 days back; from is older",
            ))
        }
        _ => {}
    }
    let device_id = match given(&raw.device_id) {
        None => None,
        Some(v) => Some(Uuid::parse_str(v).map_err(|_| {
            Error::bad_param(
                names.device_id,
                format!("{} must be a UUID", names.device_id),
            )
        })?),
    };
    let filters = Filters {
        colo: text_filter("colo", &raw.colo)?,
        device_id,
        mode: text_filter("mode", &raw.mode)?,
        platform: text_filter("platform", &raw.platform)?,
        status: text_filter("status", &raw.status)?,
        version: text_filter("version", &raw.version)?,
    };
    Ok(ListQuery {
        source,
        from,
        to,
        page,
        per_page,
        sort_by,
        filters,
    })
}

/// A dimension to filter on, compared as it is (`%` and `_` are characters, not patterns).
/// Stored dimensions hold no control characters, and PostgreSQL text cannot hold NUL: such a
/// value is a 400 naming the parameter, not a query.
fn text_filter(name: &str, value: &Option<String>) -> Result<Option<String>, Error> {
    match given(value) {
        Some(v) if v.chars().any(char::is_control) => Err(Error::bad_param(
            name,
            format!("{name} must not contain control characters"),
        )),
        v => Ok(v.map(str::to_owned)),
    }
}

/// The live status's `colo`: a comma-separated list of colos to accept the snapshot from;
/// `None` accepts any.
pub fn colos(value: Option<&str>) -> Result<Option<Vec<String>>, Error> {
    let mut colos = Vec::new();
    for colo in value.unwrap_or("").split(',').map(str::trim) {
        if let Some(colo) = text_filter("colo", &Some(colo.to_owned()))? {
            colos.push(colo);
        }
    }
    Ok(Some(colos).filter(|c| !c.is_empty()))
}

/// A number that may be written as a whole-valued decimal (`2`, `2.0`, as Cloudflare's
/// clients send them), within `min..=max`; anything else is invalid, naming the parameter.
/// Both dialects accept the same numbers.
pub fn whole_number(name: &str, value: &str, min: i64, max: i64) -> Result<i64, Error> {
    let bad = || {
        Error::bad_param(
            name,
            format!("{name} must be a whole number from {min} to {max}; got `{value}`"),
        )
    };
    let number: f64 = value.trim().parse().map_err(|_| bad())?;
    if !number.is_finite() || number.fract() != 0.0 || number < min as f64 || number > max as f64 {
        return Err(bad());
    }
    Ok(number as i64)
}

/// RFC 3339 or milliseconds since the epoch (a whole number, possibly written `…​.0`).
pub fn instant(name: &str, value: &str) -> Result<DateTime<Utc>, Error> {
    let bad = || {
        Error::bad_param(
            name,
            format!("{name} must be an RFC 3339 date-time or milliseconds since the epoch; got `{value}`"),
        )
    };
    if value.bytes().next().is_some_and(|b| b.is_ascii_digit()) && !value.contains(['-', ':']) {
        let ms = whole_number(name, value, 0, 253_402_300_799_999).map_err(|_| bad())?;
        return Utc.timestamp_millis_opt(ms).single().ok_or_else(bad);
    }
    parse_rfc3339(value).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_accept_whole_valued_decimals_only() {
        assert_eq!(whole_number("page", "1.0", 1, 100).unwrap(), 1);
        assert_eq!(whole_number("page", "2", 1, 100).unwrap(), 2);
        for bad in ["1.5", "0", "101", "abc", "", "NaN", "inf", "-1"] {
            assert!(whole_number("page", bad, 1, 100).is_err(), "{bad}");
        }
    }
}
