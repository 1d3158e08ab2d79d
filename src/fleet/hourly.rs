//! The hourly source: one row per device and hour, maintained at ingest.
//!
//! What each field of an hourly row is:
//! - `timestamp` is the start of the hour (UTC), the row's identity with `deviceId`;
//! - the dimensions (`colo`, `mode`, `platform`, `status`, `version`) and every field not in
//!   [`AVERAGED`] are the hour's last state: those of its latest snapshot (booleans, text,
//!   IP details, per-app lists, RTT, and the tunnel counters, which are cumulative);
//! - the gauges in [`AVERAGED`] are the mean of the values reported during the hour, over
//!   the snapshots that carried them (an hour where none did keeps the field absent);
//!   integer metrics (`formatint64` in Cloudflare's schema) are rounded to the nearest integer.
//!
//! A batch is first folded per device and hour here, then upserted with running sums and
//! counts, so snapshots arriving across several requests average correctly.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use super::Snapshot;

/// The averaged metrics, in the order of the `sums`/`counts` columns, and whether each is an
/// integer. Never reorder: append only (stored arrays are positional).
pub const AVERAGED: [(&str, bool); 12] = [
    ("batteryPct", false),
    ("cpuPct", false),
    ("diskUsagePct", false),
    ("ramUsedPct", false),
    ("estimatedLossPct", false),
    ("wifiStrengthDbm", true),
    ("handshakeLatencyMs", true),
    ("networkRcvdBps", true),
    ("networkSentBps", true),
    ("diskReadBps", true),
    ("diskWriteBps", true),
    ("ramAvailableKb", true),
];

/// The part of a batch that falls in one device-hour.
pub struct HourRow<'a> {
    pub device_id: Uuid,
    pub hour: DateTime<Utc>,
    /// The latest snapshot of the batch in that hour.
    pub last: &'a Snapshot,
    pub sums: Vec<f64>,
    pub counts: Vec<i32>,
}

pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// Folds snapshots into device-hours, ordered by device and hour (a fixed lock order for
/// the upsert, so concurrent batches cannot deadlock on each other's rows).
pub fn fold<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Vec<HourRow<'a>> {
    let mut rows: BTreeMap<(Uuid, DateTime<Utc>), HourRow<'a>> = BTreeMap::new();
    for s in snapshots {
        let hour = hour_of(s.timestamp);
        let row = rows.entry((s.device_id, hour)).or_insert_with(|| HourRow {
            device_id: s.device_id,
            hour,
            last: s,
            sums: vec![0.0; AVERAGED.len()],
            counts: vec![0; AVERAGED.len()],
        });
        if s.timestamp > row.last.timestamp {
            row.last = s;
        }
        for (i, (name, _)) in AVERAGED.iter().enumerate() {
            if let Some(v) = s.details.get(*name).and_then(Value::as_f64) {
                row.sums[i] += v;
                row.counts[i] += 1;
            }
        }
    }
    rows.into_values().collect()
}

/// Replaces the last values of the averaged metrics with the hour's means.
pub fn apply_averages(object: &mut Map<String, Value>, sums: &[f64], counts: &[i32]) {
    for (i, (name, integer)) in AVERAGED.iter().enumerate() {
        let (Some(sum), Some(&count)) = (sums.get(i), counts.get(i)) else {
            continue;
        };
        if count == 0 {
            continue;
        }
        let mean = sum / f64::from(count);
        let value = if *integer {
            Value::Number(Number::from(mean.round() as i64))
        } else {
            Number::from_f64(mean).map_or(Value::Null, Value::Number)
        };
        object.insert((*name).to_owned(), value);
    }
}

/// A Postgres array literal (`{1,2.5}`) for passing a row's array through `UNNEST(text[])`.
pub fn array_literal<T: ToString>(values: &[T]) -> String {
    let items: Vec<String> = values.iter().map(ToString::to_string).collect();
    format!("{{{}}}", items.join(","))
}
