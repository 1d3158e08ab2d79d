//! The device list: a page of one source, and how many rows match.
//!
//! Each source has one query shape: typed filters that are NULL when not given, and an
//! ORDER BY whose `CASE` on the sort key folds to a constant once the key is bound (every
//! list query is planned for its own values, see [`list`]). What is left is
//! `(dimension, time DESC, device_id)`, a total order (a device has one snapshot per
//! instant) that an index yields for every sort key, so a page reads about as many index
//! entries as it skips and shows, however wide the range:
//!
//! | `sortBy` | `raw` | `hourly` |
//! | --- | --- | --- |
//! | `timestamp` | `device_snapshots_account_ts_idx` | `device_hourly_account_hour_idx` |
//! | `device_id` | `device_snapshots_device_ts_key` | `device_hourly_pkey`, each device's hours sorted |
//! | a dimension | `device_snapshots_{dim}_idx`, same-instant ties sorted | `device_hourly_{dim}_idx` |
//!
//! `last_seen` first reduces its window (at most 60 minutes) to each device's latest
//! snapshot without its JSON details, then sorts those (one per device) and reads the
//! details of the page's rows alone.
//!
//! Filters narrow the index scan; one that matches few rows of a wide range makes the page
//! read the range until the page is full (an index on the filtered dimension is used when
//! PostgreSQL finds it cheaper).
//!
//! **`totalCount`.** Counting every match of a week costs as much as reading it, so the count
//! stops [`COUNT_AHEAD`] rows past the first row of the page asked for: it is exact when
//! fewer match, and otherwise a lower bound (`offset + COUNT_AHEAD + 1`, flagged
//! [`Total::exact`] `false`). As the horizon moves with the page, `totalPages` is greater
//! than `page` whenever a later page has rows: clients that page by `totalPages`, and those
//! that page until an empty page, both see every row.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::query::{ListQuery, Source};
use super::{hourly, DeviceRow, RETENTION};

/// How many matches past the first row of the page are counted exactly.
pub const COUNT_AHEAD: i64 = 10_000;

/// How many rows match: exactly, or at least `count` when `exact` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    pub exact: bool,
}

/// A page of the chosen source and how many rows match.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn list(
    conn: &mut PgConnection,
    account_id: Uuid,
    q: &ListQuery,
) -> Result<(Vec<DeviceRow>, Total), sqlx::Error> {
    // The filters are `$n IS NULL OR column = $n`: planned for the values at hand, the absent
    // ones fold away and the sort key's CASE becomes a column or a constant, so the index
    // order is used. A cached generic plan would keep every branch.
    sqlx::query!("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *conn)
        .await?;
    // Never show what retention is about to delete.
    let from = q.from.max(Utc::now() - RETENTION);
    let from = match q.source {
        Source::Hourly => hourly::hour_of(from),
        Source::Raw | Source::LastSeen => from,
    };
    let limit = q.offset() + COUNT_AHEAD + 1;
    let rows = page(conn, account_id, from, q).await?;
    let counted = count(conn, account_id, from, q, limit).await?;
    let total = Total {
        count: counted,
        exact: counted < limit,
    };
    Ok((rows, total))
}

/// A page of the source. `last_seen` is each device's latest snapshot in the window, and the
/// filters apply to that latest state (a device that was `connected` earlier but is
/// `disconnected` now is not listed under `status=connected`); the latest states are found and
/// sorted without their JSON details, which are read for the page's rows only. `hourly` lists the device-hours that start in
/// [hour of `from`, `to`].
async fn page(
    conn: &mut PgConnection,
    account_id: Uuid,
    from: DateTime<Utc>,
    q: &ListQuery,
) -> Result<Vec<DeviceRow>, sqlx::Error> {
    let f = &q.filters;
    match q.source {
        Source::Raw => sqlx::query_as!(
            DeviceRow,
            r#"SELECT device_id, ts, colo, mode, platform, status, version, details::text AS "details!",
                  NULL::float8[] AS sums, NULL::integer[] AS counts
           FROM device_snapshots
           WHERE account_id = $1 AND ts >= $2 AND ts <= $3
             AND ($4::text IS NULL OR colo = $4) AND ($5::uuid IS NULL OR device_id = $5)
             AND ($6::text IS NULL OR mode = $6) AND ($7::text IS NULL OR platform = $7)
             AND ($8::text IS NULL OR status = $8) AND ($9::text IS NULL OR version = $9)
           ORDER BY CASE $10::text WHEN 'colo' THEN colo WHEN 'mode' THEN mode WHEN 'platform' THEN platform
                                   WHEN 'status' THEN status WHEN 'version' THEN version END,
                    CASE WHEN $10::text = 'device_id' THEN device_id END,
                    ts DESC, device_id
           LIMIT $11 OFFSET $12"#,
            account_id, from, q.to, f.colo, f.device_id, f.mode, f.platform, f.status, f.version,
            q.sort_by, q.per_page, q.offset(),
        )
        .fetch_all(conn)
        .await,
        Source::LastSeen => sqlx::query_as!(
            DeviceRow,
            r#"WITH latest AS (
               SELECT DISTINCT ON (device_id) id, device_id, ts, colo, mode, platform, status, version
               FROM device_snapshots
               WHERE account_id = $1 AND ts >= $2 AND ts <= $3 AND ($5::uuid IS NULL OR device_id = $5)
               ORDER BY device_id, ts DESC
           ), page AS (
               SELECT * FROM latest
               WHERE ($4::text IS NULL OR colo = $4)
                 AND ($6::text IS NULL OR mode = $6) AND ($7::text IS NULL OR platform = $7)
                 AND ($8::text IS NULL OR status = $8) AND ($9::text IS NULL OR version = $9)
               ORDER BY CASE $10::text WHEN 'colo' THEN colo WHEN 'mode' THEN mode WHEN 'platform' THEN platform
                                       WHEN 'status' THEN status WHEN 'version' THEN version END,
                        CASE WHEN $10::text = 'device_id' THEN device_id END,
                        ts DESC, device_id
               LIMIT $11 OFFSET $12
           )
           SELECT p.device_id AS "device_id!", p.ts AS "ts!", p.colo AS "colo!", p.mode AS "mode!",
                  p.platform AS "platform!", p.status AS "status!", p.version AS "version!",
                  s.details::text AS "details!", NULL::float8[] AS sums, NULL::integer[] AS counts
           FROM page p JOIN device_snapshots s ON s.id = p.id
           ORDER BY CASE $10::text WHEN 'colo' THEN p.colo WHEN 'mode' THEN p.mode WHEN 'platform' THEN p.platform
                                   WHEN 'status' THEN p.status WHEN 'version' THEN p.version END,
                    CASE WHEN $10::text = 'device_id' THEN p.device_id END,
                    p.ts DESC, p.device_id"#,
            account_id, from, q.to, f.colo, f.device_id, f.mode, f.platform, f.status, f.version,
            q.sort_by, q.per_page, q.offset(),
        )
        .fetch_all(conn)
        .await,
        Source::Hourly => sqlx::query_as!(
            DeviceRow,
            r#"SELECT device_id, hour AS ts, colo, mode, platform, status, version, details::text AS "details!",
                  sums AS "sums?", counts AS "counts?"
           FROM device_hourly
           WHERE account_id = $1 AND hour >= $2 AND hour <= $3
             AND ($4::text IS NULL OR colo = $4) AND ($5::uuid IS NULL OR device_id = $5)
             AND ($6::text IS NULL OR mode = $6) AND ($7::text IS NULL OR platform = $7)
             AND ($8::text IS NULL OR status = $8) AND ($9::text IS NULL OR version = $9)
           ORDER BY CASE $10::text WHEN 'colo' THEN colo WHEN 'mode' THEN mode WHEN 'platform' THEN platform
                                   WHEN 'status' THEN status WHEN 'version' THEN version END,
                    CASE WHEN $10::text = 'device_id' THEN device_id END,
                    hour DESC, device_id
           LIMIT $11 OFFSET $12"#,
            account_id, from, q.to, f.colo, f.device_id, f.mode, f.platform, f.status, f.version,
            q.sort_by, q.per_page, q.offset(),
        )
        .fetch_all(conn)
        .await,
    }
}

/// How many rows of the source match, reading `limit` of them at the most.
async fn count(
    conn: &mut PgConnection,
    account_id: Uuid,
    from: DateTime<Utc>,
    q: &ListQuery,
    limit: i64,
) -> Result<i64, sqlx::Error> {
    let f = &q.filters;
    match q.source {
        Source::Raw => sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM (
               SELECT 1 FROM device_snapshots
               WHERE account_id = $1 AND ts >= $2 AND ts <= $3
                 AND ($4::text IS NULL OR colo = $4) AND ($5::uuid IS NULL OR device_id = $5)
                 AND ($6::text IS NULL OR mode = $6) AND ($7::text IS NULL OR platform = $7)
                 AND ($8::text IS NULL OR status = $8) AND ($9::text IS NULL OR version = $9)
               LIMIT $10) AS matching"#,
            account_id, from, q.to, f.colo, f.device_id, f.mode, f.platform, f.status, f.version, limit,
        )
        .fetch_one(conn)
        .await,
        Source::LastSeen => sqlx::query_scalar!(
            r#"WITH latest AS (
               SELECT DISTINCT ON (device_id) device_id, colo, mode, platform, status, version
               FROM device_snapshots
               WHERE account_id = $1 AND ts >= $2 AND ts <= $3 AND ($5::uuid IS NULL OR device_id = $5)
               ORDER BY device_id, ts DESC
           )
           SELECT count(*) AS "n!" FROM (
               SELECT 1 FROM latest
               WHERE ($4::text IS NULL OR colo = $4)
                 AND ($6::text IS NULL OR mode = $6) AND ($7::text IS NULL OR platform = $7)
                 AND ($8::text IS NULL OR status = $8) AND ($9::text IS NULL OR version = $9)
               LIMIT $10) AS matching"#,
            account_id, from, q.to, f.colo, f.device_id, f.mode, f.platform, f.status, f.version, limit,
        )
        .fetch_one(conn)
        .await,
        Source::Hourly => sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM (
               SELECT 1 FROM device_hourly
               WHERE account_id = $1 AND hour >= $2 AND hour <= $3
                 AND ($4::text IS NULL OR colo = $4) AND ($5::uuid IS NULL OR device_id = $5)
                 AND ($6::text IS NULL OR mode = $6) AND ($7::text IS NULL OR platform = $7)
                 AND ($8::text IS NULL OR status = $8) AND ($9::text IS NULL OR version = $9)
               LIMIT $10) AS matching"#,
            account_id, from, q.to, f.colo, f.device_id, f.mode, f.platform, f.status, f.version, limit,
        )
        .fetch_one(conn)
        .await,
    }
}
