//! Fleet-status SQL for writes, the live status and retention (the list is in
//! [`super::list`]). Every function takes a connection; the service owns the transaction.
//!
//! A batch is stored in two statements whatever its size: the snapshots through one
//! `INSERT … SELECT FROM UNNEST(arrays)`, then the device-hours they touch through one upsert.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::hourly::{self, array_literal};
use super::query::Filters;
use super::{DeviceRow, Snapshot, StatusCount};

/// Stores a validated batch for `account_id`; returns how many snapshots were new (a
/// snapshot of the same device and instant already stored is skipped, so retries are safe).
#[tracing::instrument(skip_all, err(level = "info"), fields(batch = batch.len()))]
pub async fn insert_batch(
    conn: &mut PgConnection,
    account_id: Uuid,
    batch: &[Snapshot],
) -> Result<usize, sqlx::Error> {
    let column = |f: fn(&Snapshot) -> String| batch.iter().map(f).collect::<Vec<_>>();
    let device_ids: Vec<Uuid> = batch.iter().map(|s| s.device_id).collect();
    let timestamps: Vec<DateTime<Utc>> = batch.iter().map(|s| s.timestamp).collect();
    let inserted = sqlx::query!(
        r#"INSERT INTO device_snapshots (account_id, device_id, ts, colo, mode, platform, status, version, details)
           SELECT $1, r.device_id, r.ts, r.colo, r.mode, r.platform, r.status, r.version, r.details::jsonb
           FROM UNNEST($2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::text[])
                AS r(device_id, ts, colo, mode, platform, status, version, details)
           ON CONFLICT (account_id, device_id, ts) DO NOTHING
           RETURNING device_id, ts"#,
        account_id,
        &device_ids,
        &timestamps,
        &column(|s| s.colo.clone()),
        &column(|s| s.mode.clone()),
        &column(|s| s.platform.clone()),
        &column(|s| s.status.clone()),
        &column(|s| s.version.clone()),
        &column(|s| serde_json::Value::Object(s.details.clone()).to_string()),
    )
    .fetch_all(&mut *conn)
    .await?;
    // Only what was actually stored counts towards the hour (each new snapshot once).
    let mut new: HashSet<(Uuid, DateTime<Utc>)> =
        inserted.into_iter().map(|r| (r.device_id, r.ts)).collect();
    let count = new.len();
    let fresh = batch
        .iter()
        .filter(|s| new.remove(&(s.device_id, s.timestamp)));
    upsert_hours(conn, account_id, hourly::fold(fresh)).await?;
    Ok(count)
}

/// Adds device-hours to the hourly rollup: the latest state wins, sums and counts add up.
async fn upsert_hours(
    conn: &mut PgConnection,
    account_id: Uuid,
    rows: Vec<hourly::HourRow<'_>>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let text = |f: &dyn Fn(&hourly::HourRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query!(
        r#"INSERT INTO device_hourly AS h
               (account_id, device_id, hour, last_ts, colo, mode, platform, status, version, details, sums, counts)
           SELECT $1, r.device_id, r.hour, r.last_ts, r.colo, r.mode, r.platform, r.status, r.version,
                  r.details::jsonb, r.sums::float8[], r.counts::integer[]
           FROM UNNEST($2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
                AS r(device_id, hour, last_ts, colo, mode, platform, status, version, details, sums, counts)
           ON CONFLICT (account_id, device_id, hour) DO UPDATE SET
               last_ts  = GREATEST(h.last_ts, EXCLUDED.last_ts),
               colo     = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.colo ELSE h.colo END,
               mode     = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.mode ELSE h.mode END,
               platform = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.platform ELSE h.platform END,
               status   = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.status ELSE h.status END,
               version  = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.version ELSE h.version END,
               details  = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.details ELSE h.details END,
               sums     = ARRAY(SELECT a + b FROM unnest(h.sums, EXCLUDED.sums) WITH ORDINALITY AS t(a, b, n)
                                ORDER BY n),
               counts   = ARRAY(SELECT a + b FROM unnest(h.counts, EXCLUDED.counts) WITH ORDINALITY AS t(a, b, n)
                                ORDER BY n)"#,
        account_id,
        &rows.iter().map(|r| r.device_id).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.hour).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.last.timestamp).collect::<Vec<_>>(),
        &text(&|r| r.last.colo.clone()),
        &text(&|r| r.last.mode.clone()),
        &text(&|r| r.last.platform.clone()),
        &text(&|r| r.last.status.clone()),
        &text(&|r| r.last.version.clone()),
        &text(&|r| serde_json::Value::Object(r.last.details.clone()).to_string()),
        &text(&|r| array_literal(&r.sums)),
        &text(&|r| array_literal(&r.counts)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The device's latest snapshot in [`from`, `to`], optionally only from these colos.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn live(
    conn: &mut PgConnection,
    account_id: Uuid,
    device_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    colos: Option<&[String]>,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    sqlx::query_as!(
        DeviceRow,
        r#"SELECT device_id, ts, colo, mode, platform, status, version, details::text AS "details!",
                  NULL::float8[] AS sums, NULL::integer[] AS counts
           FROM device_snapshots
           WHERE account_id = $1 AND device_id = $2 AND ts >= $3 AND ts <= $4
             AND ($5::text[] IS NULL OR colo = ANY($5))
           ORDER BY ts DESC
           LIMIT 1"#,
        account_id,
        device_id,
        from,
        to,
        colos,
    )
    .fetch_optional(conn)
    .await
}

/// How many devices were in each status, hour by hour from `from` (an hour's start), by
/// each device's last state in the hour; the filters as the list applies them.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn hourly_status_counts(
    conn: &mut PgConnection,
    account_id: Uuid,
    from: DateTime<Utc>,
    f: &Filters,
) -> Result<Vec<StatusCount>, sqlx::Error> {
    sqlx::query_as!(
        StatusCount,
        r#"SELECT hour, status, count(*) AS "devices!" FROM device_hourly
           WHERE account_id = $1 AND hour >= $2
             AND ($3::text IS NULL OR colo = $3) AND ($4::uuid IS NULL OR device_id = $4)
             AND ($5::text IS NULL OR mode = $5) AND ($6::text IS NULL OR platform = $6)
             AND ($7::text IS NULL OR status = $7) AND ($8::text IS NULL OR version = $8)
           GROUP BY hour, status
           ORDER BY hour, status"#,
        account_id,
        from,
        f.colo,
        f.device_id,
        f.mode,
        f.platform,
        f.status,
        f.version,
    )
    .fetch_all(conn)
    .await
}

/// Deletes up to `limit` raw snapshots older than the retention; how many it deleted.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete_old_snapshots(conn: &mut PgConnection, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM device_snapshots WHERE id IN (
             SELECT id FROM device_snapshots WHERE ts < now() - interval '7 days'
             LIMIT $1 FOR UPDATE SKIP LOCKED)",
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes up to `limit` hourly rows whose whole hour is older than the retention.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete_old_hours(conn: &mut PgConnection, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM device_hourly WHERE (account_id, device_id, hour) IN (
             SELECT account_id, device_id, hour FROM device_hourly
             WHERE hour + interval '1 hour' <= now() - interval '7 days'
             LIMIT $1 FOR UPDATE SKIP LOCKED)",
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
