//! Device fleet status: the snapshots agents report, as the tests build and send them.

use std::fmt::Display;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{json_of, TestApp};

/// The native list and ingest route.
pub const DEVICES: &str = "/v1/fleet-status/devices";

/// A timestamp as the API writes them: RFC 3339, milliseconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A snapshot of `device` with the required fields only (SJC, proxy, windows, connected,
/// 1.0.0), taken `minutes_ago` before now.
pub fn snapshot(device: impl Display, minutes_ago: i64) -> Value {
    json!({
        "deviceId": device.to_string(),
        "colo": "SJC",
        "mode": "proxy",
        "platform": "windows",
        "status": "connected",
        "version": "1.0.0",
        "timestamp": rfc3339(Utc::now() - Duration::minutes(minutes_ago)),
    })
}

/// `base` with the fields of `extra` added or replaced.
pub fn with(mut base: Value, extra: Value) -> Value {
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    base
}

/// Reports a snapshot or a batch of them through the native route (201); the answer.
pub async fn ingest(app: &TestApp, token: &str, body: Value) -> Value {
    json_of(app.post(DEVICES, token, body).await, StatusCode::CREATED).await
}
