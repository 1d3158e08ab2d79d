//! `device.status_changed.v1`: a device whose reported status differs from its previous
//! snapshot's.
//!
//! "Previous" is in the device's own time: the new snapshots of a device that are later than
//! its latest stored one are walked in time order, each compared with the one before it (the
//! stored one first). A snapshot older than the latest stored one fills in history and
//! changes nothing now; a device's very first snapshot has nothing to differ from. Ingests of
//! the same device are serialized (an advisory lock per device, taken in device order) so
//! that two batches never compare against the same previous snapshot.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Snapshot;
use crate::auth::Principal;
use crate::events::{EventType, NewEvent};

/// The latest stored snapshot of each device: its time and status.
pub type Latest = HashMap<Uuid, (DateTime<Utc>, String)>;

/// Locks the batch's devices until the transaction ends, and reads their latest snapshots.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn lock_and_read(
    conn: &mut PgConnection,
    account_id: Uuid,
    batch: &[Snapshot],
) -> Result<Latest, sqlx::Error> {
    let mut devices: Vec<Uuid> = batch.iter().map(|s| s.device_id).collect();
    devices.sort();
    devices.dedup();
    let rows = sqlx::query!(
        r#"WITH locked AS (
               SELECT d.device_id, pg_advisory_xact_lock(hashtextextended('warren.device:' || d.device_id::text, 0))
               FROM unnest($2::uuid[]) WITH ORDINALITY AS d(device_id, n)
               ORDER BY d.n
           )
           SELECT l.device_id AS "device_id!", s.ts AS "ts!", s.status AS "status!"
           FROM locked l
           CROSS JOIN LATERAL (
               SELECT ts, status FROM device_snapshots
               WHERE account_id = $1 AND device_id = l.device_id
               ORDER BY ts DESC LIMIT 1
           ) s"#,
        account_id,
        &devices,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.device_id, (r.ts, r.status)))
        .collect())
}

/// The status changes the batch brings, in time order, as events caused by `caller`.
pub fn status_changes(caller: &Principal, batch: &[Snapshot], latest: &Latest) -> Vec<NewEvent> {
    let mut by_device: BTreeMap<Uuid, Vec<&Snapshot>> = BTreeMap::new();
    for snapshot in batch {
        by_device
            .entry(snapshot.device_id)
            .or_default()
            .push(snapshot);
    }
    let mut changes: Vec<&Snapshot> = Vec::new();
    for (device, mut snapshots) in by_device {
        snapshots.sort_by_key(|s| s.timestamp);
        snapshots.dedup_by_key(|s| s.timestamp);
        let stored = latest.get(&device);
        let mut previous = stored.map(|(_, status)| status.as_str());
        for snapshot in snapshots {
            if stored.is_some_and(|(ts, _)| snapshot.timestamp <= *ts) {
                continue;
            }
            if previous.is_some_and(|p| p != snapshot.status) {
                changes.push(snapshot);
            }
            previous = Some(&snapshot.status);
        }
    }
    changes.sort_by_key(|s| (s.timestamp, s.device_id));
    changes
        .into_iter()
        .map(|s| {
            NewEvent::new(
                caller.account_id,
                EventType::DeviceStatusChanged,
                s.device_id,
                caller.into(),
                s.render(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scopes;
    use chrono::Duration;
    use serde_json::Map;

    fn snapshot(device: Uuid, at: DateTime<Utc>, status: &str) -> Snapshot {
        Snapshot {
            device_id: device,
            timestamp: at,
            colo: "FRA".into(),
            mode: "warp".into(),
            platform: "linux".into(),
            status: status.into(),
            version: "1".into(),
            details: Map::new(),
        }
    }

    #[test]
    fn only_a_status_that_differs_from_the_one_before_it_is_a_change() {
        let caller = Principal {
            user_id: Uuid::new_v4(),
            account_id: Uuid::new_v4(),
            scopes: Scopes::all(),
            token_id: None,
        };
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t = Utc::now();
        let minute = Duration::minutes(1);
        let latest: Latest = [
            (a, (t, "connected".to_owned())),
            (b, (t, "connected".to_owned())),
        ]
        .into();
        let batch = vec![
            // a: connected → disconnected → disconnected → connected: two changes
            snapshot(a, t + minute * 3, "connected"),
            snapshot(a, t + minute, "disconnected"),
            snapshot(a, t + minute * 2, "disconnected"),
            // b: only history older than what is stored: nothing now
            snapshot(b, t - minute, "paused"),
            // c: first snapshots ever: the first has nothing to differ from
            snapshot(c, t, "connected"),
            snapshot(c, t + minute, "paused"),
        ];
        let events = status_changes(&caller, &batch, &latest);
        let seen: Vec<(Uuid, String)> = events
            .iter()
            .map(|e| (e.subject, e.data["status"].as_str().unwrap().to_owned()))
            .collect();
        let mut expected = vec![
            (a, "disconnected".to_owned()),
            (c, "paused".to_owned()),
            (a, "connected".to_owned()),
        ];
        // Same instant for a's first change and c's: ordered by device then.
        expected[..2].sort_by_key(|(d, _)| *d);
        assert_eq!(seen, expected);
    }
}
