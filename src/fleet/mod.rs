//! Device fleet status: the snapshots agents report about the device they run on.
//!
//! A snapshot has seven required dimensions (`deviceId`, `colo`, `mode`, `platform`,
//! `status`, `version`, `timestamp`) and the optional fields of [`details::Details`]. A batch
//! is validated whole before anything is stored; the first bad field is named with the
//! snapshot's index (`[3].cpuPct`).

mod changes;
pub mod details;
pub mod hourly;
pub mod list;
pub mod query;
pub mod retention;
mod service;
pub mod store;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::Error;
use crate::time::Timestamp;
use details::Details;

pub use service::{Fleet, Ingested, Page, RawLive, READ_SCOPES};

/// Most snapshots accepted in one request.
pub const MAX_BATCH: usize = 1000;
/// How far back snapshots are kept, and how far back they may be reported or queried.
pub const RETENTION: Duration = Duration::days(7);
/// How far in the future a device clock may be and still be believed.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// Longest text accepted for a required dimension (`mode`, `status`, ...).
const MAX_DIMENSION: usize = 64;

/// One validated snapshot, ready to store.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub device_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub colo: String,
    pub mode: String,
    pub platform: String,
    pub status: String,
    pub version: String,
    /// The optional fields that were given, as Cloudflare names them (never `null`s).
    pub details: Map<String, Value>,
}

/// The required dimensions besides `deviceId` and `timestamp`, in Cloudflare's order.
pub const DIMENSIONS: [&str; 5] = ["colo", "mode", "platform", "status", "version"];

/// A body of one snapshot or an array of 1 to [`MAX_BATCH`]; all valid, or a 422 naming
/// the first bad field (prefixed with the index when the body is an array).
pub fn parse_batch(body: Value, now: DateTime<Utc>) -> Result<Vec<Snapshot>, Error> {
    match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Error::invalid("body", "the array of snapshots is empty"));
            }
            if items.len() > MAX_BATCH {
                return Err(Error::invalid(
                    "body",
                    format!(
                        "at most {MAX_BATCH} snapshots may be sent in one request; got {}",
                        items.len()
                    ),
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    parse_one(item, now).map_err(|(field, detail)| {
                        Error::invalid(format!("[{i}].{field}"), format!("snapshot {i}: {detail}"))
                    })
                })
                .collect()
        }
        item => {
            Ok(vec![parse_one(item, now).map_err(|(field, detail)| {
                Error::invalid(field, detail)
            })?])
        }
    }
}

fn parse_one(item: Value, now: DateTime<Utc>) -> Result<Snapshot, details::Violation> {
    let Value::Object(mut object) = item else {
        return Err(("body".into(), "a snapshot must be a JSON object".into()));
    };
    let mut take = |name: &str| -> Result<String, details::Violation> {
        match object.remove(name) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => Err((name.into(), format!("{name} is required"))),
            Some(_) => Err((name.into(), format!("{name} must be a string"))),
        }
    };
    let device_id = take("deviceId")?;
    let device_id = Uuid::parse_str(&device_id)
        .map_err(|_| ("deviceId".to_owned(), "deviceId must be a UUID".to_owned()))?;
    let timestamp = take("timestamp")?;
    let timestamp = parse_reported_time(&timestamp, now)?;
    let mut dims = Vec::with_capacity(DIMENSIONS.len());
    for name in DIMENSIONS {
        let value = take(name)?;
        if value.is_empty() || value.chars().count() > MAX_DIMENSION {
            return Err((
                name.into(),
                format!("{name} must be 1 to {MAX_DIMENSION} characters"),
            ));
        }
        details::text(name, Some(&value))?;
        dims.push(value);
    }
    let rest = Value::Object(object);
    let parsed: Details = serde_path_to_error::deserialize(&rest).map_err(|err| {
        let path = err.path().to_string();
        name_field(&path, &err.into_inner().to_string())
    })?;
    parsed.validate()?;
    let details = match strip_nulls(serde_json::to_value(&parsed).expect("details serialize")) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let [colo, mode, platform, status, version] =
        <[String; 5]>::try_from(dims).expect("five dimensions");
    Ok(Snapshot {
        device_id,
        timestamp,
        colo,
        mode,
        platform,
        status,
        version,
        details,
    })
}

/// serde names the path of a bad value (for an unknown member, the path ends with it), but
/// its message for an unknown member lists every known one: keep the message short.
fn name_field(path: &str, message: &str) -> details::Violation {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    let path = if path == "." {
        unknown.unwrap_or("body")
    } else {
        path
    };
    match unknown {
        Some(_) => (path.to_owned(), format!("unknown field `{path}`")),
        None => (path.to_owned(), format!("{path}: {message}")),
    }
}

/// A device's own clock: RFC 3339 (a space instead of `T` too, as Cloudflare prints it),
/// truncated to milliseconds; not more than [`MAX_CLOCK_SKEW`] ahead, nor older than
/// [`RETENTION`].
fn parse_reported_time(
    value: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, details::Violation> {
    let bad = |detail: String| ("timestamp".to_owned(), detail);
    let t = parse_rfc3339(value)
        .ok_or_else(|| bad("timestamp must be an RFC 3339 date-time".into()))?;
    if t > now + MAX_CLOCK_SKEW {
        return Err(bad("timestamp is more than 5 minutes in the future".into()));
    }
    if t < now - RETENTION {
        return Err(bad(
            "timestamp is older than the 7 days snapshots are kept".into()
        ));
    }
    Ok(t)
}

/// RFC 3339, also with a space for `T` and a bare `+00` offset (Cloudflare's own rendering).
pub fn parse_rfc3339(value: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()?
        .with_timezone(&Utc);
    parsed.duration_trunc(Duration::milliseconds(1)).ok()
}

/// Removes `null` members recursively, so stored details hold only what was reported.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// How many devices were in one status in one hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCount {
    pub hour: DateTime<Utc>,
    pub status: String,
    pub devices: i64,
}

/// A stored snapshot (or hourly row) as the API shows it: Cloudflare's device object, camelCase.
#[derive(Debug)]
pub struct DeviceRow {
    pub device_id: Uuid,
    pub ts: DateTime<Utc>,
    pub colo: String,
    pub mode: String,
    pub platform: String,
    pub status: String,
    pub version: String,
    /// `details` as JSON text.
    pub details: String,
    /// Hourly rows only: the running sums and counts of [`hourly::AVERAGED`].
    pub sums: Option<Vec<f64>>,
    pub counts: Option<Vec<i32>>,
}

impl DeviceRow {
    /// Cloudflare's device object: the stored details, the dimensions, and for hourly rows the
    /// hour's averages in place of the last values.
    pub fn render(self) -> Value {
        let mut object = match serde_json::from_str(&self.details) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        if let (Some(sums), Some(counts)) = (&self.sums, &self.counts) {
            hourly::apply_averages(&mut object, sums, counts);
        }
        let dimensions = [
            self.colo,
            self.mode,
            self.platform,
            self.status,
            self.version,
        ];
        device_object(object, self.device_id, dimensions, self.ts)
    }
}

impl Snapshot {
    /// The snapshot as the API shows it once stored.
    pub fn render(&self) -> Value {
        let dimensions = [
            self.colo.clone(),
            self.mode.clone(),
            self.platform.clone(),
            self.status.clone(),
            self.version.clone(),
        ];
        device_object(
            self.details.clone(),
            self.device_id,
            dimensions,
            self.timestamp,
        )
    }
}

/// Cloudflare's device object: `details` with the device id, the dimensions (in the order
/// of [`DIMENSIONS`]) and the timestamp.
fn device_object(
    mut object: Map<String, Value>,
    device_id: Uuid,
    dimensions: [String; 5],
    ts: DateTime<Utc>,
) -> Value {
    object.insert("deviceId".into(), Value::String(device_id.to_string()));
    for (name, value) in DIMENSIONS.into_iter().zip(dimensions) {
        object.insert(name.into(), Value::String(value));
    }
    let ts = serde_json::to_value(Timestamp(ts)).expect("timestamp serializes");
    object.insert("timestamp".into(), ts);
    Value::Object(object)
}
