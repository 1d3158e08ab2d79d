//! The agent's device fleet-status reports: one snapshot at start and then about
//! once a minute. A failed report is only logged: it never stops or delays the heartbeats.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::system;
use crate::remote::Remote;

pub const FLEET_PATH: &str = "/v1/fleet-status/devices";

/// What the agent says about its device besides the measurements.
#[derive(Clone, Debug)]
pub struct Device {
    pub id: Uuid,
    pub colo: String,
}

impl Device {
    /// One snapshot with the fleet-status field names; a measurement that cannot be read is left out.
    pub fn snapshot(&self, cpu_pct: Option<f64>) -> Value {
        let mut snap = Map::new();
        let mut put = |k: &str, v: Value| {
            snap.insert(k.to_owned(), v);
        };
        put("deviceId", json!(self.id));
        put("colo", json!(self.colo));
        put("mode", json!("tunnel"));
        put("platform", json!(std::env::consts::OS));
        put("status", json!("connected"));
        put("version", json!(env!("CARGO_PKG_VERSION")));
        put(
            "timestamp",
            json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        if let Some(cpu) = cpu_pct {
            put("cpuPct", json!(cpu));
        }
        if let Some((used, available)) = system::memory() {
            put("ramUsedPct", json!(used));
            put("ramAvailableKb", json!(available));
        }
        if let Some(disk) = system::disk_usage_pct() {
            put("diskUsagePct", json!(disk));
        }
        Value::Object(snap)
    }
}

/// How the last report went, so that only a change is logged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    Refused,
    NoRoute,
    Unreachable,
}

/// Reports `device` every `every` until `stop` fires.
pub async fn report(remote: Remote, device: Device, every: Duration, stop: CancellationToken) {
    // CPU use is a delta: take a first sample a moment before the first snapshot.
    let mut before = system::cpu_times();
    if pause(&stop, Duration::from_millis(500)).await {
        return;
    }
    let mut last: Option<Outcome> = None;
    // A server without the route is said once, not on every flap of the network.
    let mut said_no_route = false;
    loop {
        let now = system::cpu_times();
        let cpu = before.zip(now).and_then(|(b, n)| system::cpu_pct(b, n));
        before = now;
        let snapshot = device.snapshot(cpu);
        let sent = tokio::select! {
            _ = stop.cancelled() => return,
            sent = remote.send(Method::POST, FLEET_PATH, Some(&snapshot), &[]) => sent,
        };
        let outcome = match &sent {
            Ok(a) if a.is_success() => Outcome::Stored,
            Ok(a) if a.status == StatusCode::NOT_FOUND => Outcome::NoRoute,
            Ok(_) => Outcome::Refused,
            Err(_) => Outcome::Unreachable,
        };
        if last != Some(outcome) {
            match (&sent, outcome) {
                (_, Outcome::Stored) => {
                    tracing::info!(device_id = %device.id, "device fleet status reported")
                }
                (Ok(_), Outcome::NoRoute) if !said_no_route => {
                    said_no_route = true;
                    tracing::warn!(
                        "this server has no fleet-status route (404); device status is not reported"
                    )
                }
                (Ok(_), Outcome::NoRoute) => {}
                (Ok(a), _) => {
                    tracing::warn!(detail = %a.detail(), status = a.status.as_u16(), "device fleet status refused")
                }
                // The heartbeats already say when the server is unreachable.
                (Err(_), _) => {}
            }
            last = Some(outcome);
        }
        if pause(&stop, every).await {
            return;
        }
    }
}

/// Sleeps `d`; `true` when `stop` fired first.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_has_every_required_field() {
        let device = Device {
            id: Uuid::new_v4(),
            colo: "LOCAL".into(),
        };
        let snap = device.snapshot(Some(12.5));
        for field in [
            "deviceId",
            "colo",
            "mode",
            "platform",
            "status",
            "version",
            "timestamp",
        ] {
            assert!(snap[field].is_string(), "{field}: {snap}");
        }
        assert_eq!(snap["cpuPct"], 12.5);
        assert!(snap["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
