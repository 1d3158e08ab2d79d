//! Tunnel SQL. Every function takes a connection; the service owns the transaction. The
//! statements that renew and expire leases are in [`super::leases`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::search::Filters;
use super::{Cursor, Status, Tunnel};
use crate::time::millis;

pub struct NewTunnel<'a> {
    pub id: Uuid,
    pub account_id: Uuid,
    pub slug: &'a str,
    pub requested_port: i32,
    pub lease_ttl: Duration,
}

/// Inserts a `creating` tunnel with a fresh lease; `None` when a live tunnel holds the slug.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn insert(
    conn: &mut PgConnection,
    new: NewTunnel<'_>,
) -> Result<Option<Tunnel>, sqlx::Error> {
    sqlx::query_as!(
        Tunnel,
        r#"INSERT INTO tunnels (id, account_id, slug, status, requested_port, created_at, lease_expires_at)
           VALUES ($1, $2, $3, 'creating', $4, date_trunc('milliseconds', now()),
                   date_trunc('milliseconds', now()) + $5::bigint * interval '1 millisecond')
           ON CONFLICT (slug) WHERE status IN ('creating', 'active', 'stopping') DO NOTHING
           RETURNING id, account_id, slug, status, requested_port, created_at,
                     last_heartbeat_at, lease_expires_at, stopped_at, last_error"#,
        new.id,
        new.account_id,
        new.slug,
        new.requested_port,
        millis(new.lease_ttl),
    )
    .fetch_optional(conn)
    .await
}

/// The live tunnel holding `slug`: its id and account.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn live_holder(
    conn: &mut PgConnection,
    slug: &str,
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT id, account_id FROM tunnels
         WHERE slug = $1 AND status IN ('creating', 'active', 'stopping')",
        slug
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.id, r.account_id)))
}

/// A page of the account's tunnels, newest first; only live ones unless `include_inactive`.
/// Each with whether its lease has run out (the caller expires those and reads again).
///
/// The cursor is written as an index bound that holds for every page (a first page compares
/// with +infinity): a prepared statement's generic plan cannot use `$3 IS NULL OR ...` as an
/// index bound, and would walk the account's tunnels from the newest to reach a deep page.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn list(
    conn: &mut PgConnection,
    account_id: Uuid,
    include_inactive: bool,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<(Tunnel, bool)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, account_id, slug, status, requested_port, created_at,
                  last_heartbeat_at, lease_end(lease_expires_at, (SELECT lease_floor())) AS lease_expires_at,
                  stopped_at, last_error,
                  (status IN ('creating', 'active', 'stopping')
                   AND lease_expires_at <= (SELECT lease_cutoff())) AS "due!"
           FROM tunnels
           WHERE account_id = $1 AND ($2 OR status IN ('creating', 'active', 'stopping'))
             AND (created_at, id) < (COALESCE($3::timestamptz, 'infinity'),
                                     COALESCE($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
           ORDER BY created_at DESC, id DESC
           LIMIT $5"#,
        account_id,
        include_inactive,
        after.map(|c| c.created_at),
        after.map(|c| c.id),
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (tunnel_of!(r), r.due)).collect())
}

/// A page of the account's tunnels matching `filters`, newest first (see
/// [`super::Tunnels::search`]), each with whether its lease has run out, as [`list`] does. A
/// tunnel whose lease has run out is matched as the state its expiry moves it to (`failed`
/// or `stopped`), so a filter finds it before and after the expiry alike. The slug filter
/// matches any part of the slug.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn search(
    conn: &mut PgConnection,
    account_id: Uuid,
    filters: &Filters,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<(Tunnel, bool)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, account_id, slug, status, requested_port, created_at,
                  last_heartbeat_at, lease_end(lease_expires_at, (SELECT lease_floor())) AS lease_expires_at,
                  stopped_at, last_error,
                  (status IN ('creating', 'active', 'stopping')
                   AND lease_expires_at <= (SELECT lease_cutoff())) AS "due!"
           FROM tunnels
           WHERE account_id = $1
             AND ($2::text IS NULL OR $2 = CASE
                     WHEN status NOT IN ('creating', 'active', 'stopping')
                          OR lease_expires_at > (SELECT lease_cutoff()) THEN status
                     WHEN status = 'stopping' THEN 'stopped'
                     ELSE 'failed' END)
             AND ($3::bool IS NULL OR $3 = (status IN ('creating', 'active', 'stopping')
                                            AND lease_expires_at > (SELECT lease_cutoff())))
             AND ($4::text IS NULL OR strpos(slug, $4) > 0)
             AND (created_at, id) < (COALESCE($5::timestamptz, 'infinity'),
                                     COALESCE($6::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
           ORDER BY created_at DESC, id DESC
           LIMIT $7"#,
        account_id,
        filters.status.map(Status::as_str),
        filters.live,
        filters.slug.as_deref(),
        after.map(|c| c.created_at),
        after.map(|c| c.id),
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (tunnel_of!(r), r.due)).collect())
}

/// A row of the transition log.
pub struct LoggedTransition {
    pub from_status: String,
    pub to_status: String,
    pub at: DateTime<Utc>,
}

/// The account's tunnel's logged transitions, in order, and the database's now.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn transitions(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<(Vec<LoggedTransition>, DateTime<Utc>), sqlx::Error> {
    let rows = sqlx::query_as!(
        LoggedTransition,
        "SELECT tt.from_status, tt.to_status, tt.at FROM tunnel_transitions tt
         JOIN tunnels t ON t.id = tt.tunnel_id
         WHERE tt.tunnel_id = $1 AND t.account_id = $2
         ORDER BY tt.id",
        id,
        account_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let now = sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
        .fetch_one(conn)
        .await?;
    Ok((rows, now))
}

#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn get(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Tunnel>, sqlx::Error> {
    sqlx::query_as!(
        Tunnel,
        r#"SELECT id, account_id, slug, status, requested_port, created_at,
                  last_heartbeat_at, lease_end(lease_expires_at, (SELECT lease_floor())) AS lease_expires_at,
                  stopped_at, last_error
           FROM tunnels WHERE id = $1 AND account_id = $2"#,
        id,
        account_id
    )
    .fetch_optional(conn)
    .await
}

/// Moves the tunnel to `to` if it is in one of `from` with an unexpired lease: one
/// conditional UPDATE, so of two racing requests only one can win. Entering `stopped` or
/// `failed` sets `stoppedAt`, clears the lease and frees the slug.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn transition(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
    from: &[Status],
    to: Status,
    last_error: Option<&str>,
) -> Result<Option<Tunnel>, sqlx::Error> {
    let from: Vec<String> = from.iter().map(|s| s.as_str().to_owned()).collect();
    let terminal = !to.is_live();
    sqlx::query_as!(
        Tunnel,
        r#"UPDATE tunnels SET
               status = $4,
               activated_at = CASE WHEN $4 = 'active' THEN now() ELSE activated_at END,
               last_error = CASE WHEN $4 = 'failed' THEN $5 ELSE last_error END,
               stopped_at = CASE WHEN $6 THEN date_trunc('milliseconds', now()) END,
               last_heartbeat_at = CASE WHEN $6 THEN NULL ELSE last_heartbeat_at END,
               lease_expires_at = CASE WHEN $6 THEN NULL ELSE lease_expires_at END
           WHERE id = $1 AND account_id = $2 AND status = ANY($3)
             AND lease_expires_at > (SELECT lease_cutoff())
           RETURNING id, account_id, slug, status, requested_port, created_at,
                     last_heartbeat_at, lease_end(lease_expires_at, (SELECT lease_floor())) AS lease_expires_at,
                     stopped_at, last_error"#,
        id,
        account_id,
        &from,
        to.as_str(),
        last_error,
        terminal,
    )
    .fetch_optional(conn)
    .await
}

/// Deletes a `stopped` or `failed` tunnel; `false` when there is no such terminal tunnel.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete_terminal(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM tunnels WHERE id = $1 AND account_id = $2 AND status IN ('stopped', 'failed')",
        id,
        account_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many tunnels are in each state (every state, zero included), for `/metrics`. One
/// aggregate over the table: a third of the time that joining the states to it took.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn count_by_status(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(r#"SELECT status, count(*) AS "count!" FROM tunnels GROUP BY status"#)
        .fetch_all(conn)
        .await?;
    Ok(Status::ALL
        .iter()
        .map(|state| {
            let name = state.as_str();
            let count = rows
                .iter()
                .find(|r| r.status == name)
                .map_or(0, |r| r.count);
            (name.to_owned(), count)
        })
        .collect())
}

/// Deletes up to `limit` stopped or failed tunnels that stopped longer than `retention` ago.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn prune_history(
    conn: &mut PgConnection,
    retention: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM tunnels WHERE id = ANY (ARRAY(
             SELECT id FROM tunnels
             WHERE status IN ('stopped', 'failed')
               AND stopped_at < now() - $1::bigint * interval '1 millisecond'
             LIMIT $2))",
        millis(retention),
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
