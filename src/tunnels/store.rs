//! Tunnel SQL. Every function takes a connection; the service owns the transaction.
//!
//! The database clock is the only lease clock: a lease holds while
//! `lease_expires_at > lease_cutoff()` (a SQL function, see `migrations/0012_lease_cutoff.sql`,
//! which also knows the outage grace), never compared with the application's time. A lease
//! that has run out is expired by [`expire_due`] before any read or change of that tunnel, so
//! an expired tunnel is never reported as live, even in the moment before the reaper gets to
//! it. Leases are renewed by one statement, [`renew_many`], for one heartbeat or a batch.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{Cursor, Status, Tunnel};
use crate::time::millis;

/// Which due leases [`expire_due`] expires; `None` fields do not filter.
#[derive(Default, Clone, Copy)]
pub struct Due<'a> {
    pub account_id: Option<Uuid>,
    pub id: Option<Uuid>,
    pub slug: Option<&'a str>,
}

/// Expires the leases that have run out among the tunnels `due` selects: `creating`/`active`
/// become `failed` ("lease expired"), `stopping` becomes `stopped`. `stoppedAt` is the moment
/// the lease ran out. Waits for rows another transaction holds, then re-checks them, so a
/// lease renewed meanwhile is left alone and no tunnel is transitioned twice.
#[tracing::instrument(skip_all, err)]
pub async fn expire_due(conn: &mut PgConnection, due: Due<'_>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE tunnels SET
               status = CASE WHEN status = 'stopping' THEN 'stopped' ELSE 'failed' END,
               last_error = CASE WHEN status = 'stopping' THEN last_error ELSE 'lease expired' END,
               stopped_at = lease_expires_at,
               last_heartbeat_at = NULL,
               lease_expires_at = NULL
           WHERE status IN ('creating', 'active', 'stopping')
             AND lease_expires_at <= (SELECT lease_cutoff())
             AND ($1::uuid IS NULL OR account_id = $1)
             AND ($2::uuid IS NULL OR id = $2)
             AND ($3::text IS NULL OR slug = $3)"#,
        due.account_id,
        due.id,
        due.slug,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// One batch of the reaper: up to `limit` due leases, skipping rows other transactions hold
/// (another replica's reaper, a heartbeat in flight), in no particular order (an order would
/// sort the whole live set for every batch). The statement writes the batch's transition log
/// itself, set-based, instead of the row trigger (`warren.transitions_logged` tells the
/// trigger so): it only ever moves live tunnels to `failed` or `stopped`.
#[tracing::instrument(skip_all, err)]
pub async fn reap_batch(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query!(r#"SELECT set_config('warren.transitions_logged', 'on', true) AS "on!""#)
        .fetch_one(&mut *tx)
        .await?;
    let rows = sqlx::query!(
        r#"WITH due AS (
               SELECT id, status FROM tunnels
               WHERE status IN ('creating', 'active', 'stopping')
                 AND lease_expires_at <= (SELECT lease_cutoff())
               LIMIT $1
               FOR UPDATE SKIP LOCKED
           ),
           moved AS (
               UPDATE tunnels t SET
                   status = CASE WHEN t.status = 'stopping' THEN 'stopped' ELSE 'failed' END,
                   last_error = CASE WHEN t.status = 'stopping' THEN t.last_error ELSE 'lease expired' END,
                   stopped_at = t.lease_expires_at,
                   last_heartbeat_at = NULL,
                   lease_expires_at = NULL
               WHERE t.id = ANY(ARRAY(SELECT id FROM due))
               RETURNING t.id, t.status
           ),
           logged AS (
               INSERT INTO tunnel_transitions (tunnel_id, from_status, to_status)
               SELECT moved.id, due.status, moved.status FROM moved JOIN due USING (id)
           )
           SELECT id, status FROM moved"#,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| (r.id, r.status)).collect())
}

pub struct NewTunnel<'a> {
    pub id: Uuid,
    pub account_id: Uuid,
    pub slug: &'a str,
    pub requested_port: i32,
    pub lease_ttl: Duration,
}

/// Inserts a `creating` tunnel with a fresh lease; `None` when a live tunnel holds the slug.
#[tracing::instrument(skip_all, err)]
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
#[tracing::instrument(skip_all, err)]
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
#[tracing::instrument(skip_all, err)]
pub async fn list(
    conn: &mut PgConnection,
    account_id: Uuid,
    include_inactive: bool,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Tunnel>, sqlx::Error> {
    sqlx::query_as!(
        Tunnel,
        r#"SELECT id, account_id, slug, status, requested_port, created_at,
                  last_heartbeat_at, lease_expires_at, stopped_at, last_error
           FROM tunnels
           WHERE account_id = $1 AND ($2 OR status IN ('creating', 'active', 'stopping'))
             AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
           ORDER BY created_at DESC, id DESC
           LIMIT $5"#,
        account_id,
        include_inactive,
        after.map(|c| c.created_at),
        after.map(|c| c.id),
        limit,
    )
    .fetch_all(conn)
    .await
}

#[tracing::instrument(skip_all, err)]
pub async fn get(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Tunnel>, sqlx::Error> {
    sqlx::query_as!(
        Tunnel,
        r#"SELECT id, account_id, slug, status, requested_port, created_at,
                  last_heartbeat_at, lease_expires_at, stopped_at, last_error
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
#[tracing::instrument(skip_all, err)]
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
               last_error = CASE WHEN $4 = 'failed' THEN $5 ELSE last_error END,
               stopped_at = CASE WHEN $6 THEN date_trunc('milliseconds', now()) END,
               last_heartbeat_at = CASE WHEN $6 THEN NULL ELSE last_heartbeat_at END,
               lease_expires_at = CASE WHEN $6 THEN NULL ELSE lease_expires_at END
           WHERE id = $1 AND account_id = $2 AND status = ANY($3)
             AND lease_expires_at > (SELECT lease_cutoff())
           RETURNING id, account_id, slug, status, requested_port, created_at,
                     last_heartbeat_at, lease_expires_at, stopped_at, last_error"#,
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
#[tracing::instrument(skip_all, err)]
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

/// How many tunnels are in each state (every state, zero included), for `/metrics`.
#[tracing::instrument(skip_all, err)]
pub async fn count_by_status(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT s.status AS "status!", count(t.id) AS "count!"
           FROM unnest(ARRAY['creating', 'active', 'stopping', 'stopped', 'failed']) AS s(status)
           LEFT JOIN tunnels t ON t.status = s.status
           GROUP BY s.status"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

/// One lease renewal: the tunnel, the account that asks, and the connector it reports, as its
/// id and [`crate::connectors::Report::fingerprint`].
#[derive(Clone, Debug)]
pub struct Renewal {
    pub account_id: Uuid,
    pub tunnel_id: Uuid,
    pub connector: Option<(Uuid, Vec<u8>)>,
}

/// A renewed tunnel, and the connectors of the batch whose liveness was bumped with it.
pub struct RenewedRow {
    pub tunnel: Tunnel,
    pub seen_connectors: Vec<Uuid>,
}

/// Renews many leases in one statement (a heartbeat batch, or one heartbeat): each tunnel must be live, its
/// lease unexpired and the renewal's account its owner, else it is left out of the answer.
/// Rows are locked in id order (see the statement for the one exception). A renewal that
/// carries a connector whose stored fingerprint equals the reported one (nothing changed)
/// bumps that connector's `last_seen_at` in the same statement; any other connector report
/// is left to the caller.
#[tracing::instrument(skip_all, err, fields(batch = renewals.len()))]
pub async fn renew_many(
    conn: &mut PgConnection,
    renewals: &[Renewal],
    lease_ttl: Duration,
) -> Result<Vec<RenewedRow>, sqlx::Error> {
    let ids: Vec<Uuid> = renewals.iter().map(|r| r.tunnel_id).collect();
    let accounts: Vec<Uuid> = renewals.iter().map(|r| r.account_id).collect();
    let reported: Vec<&Renewal> = renewals.iter().filter(|r| r.connector.is_some()).collect();
    let connector_tunnels: Vec<Uuid> = reported.iter().map(|r| r.tunnel_id).collect();
    let connector_ids: Vec<Uuid> = reported
        .iter()
        .filter_map(|r| r.connector.as_ref().map(|c| c.0))
        .collect();
    let fingerprints: Vec<Vec<u8>> = reported
        .iter()
        .filter_map(|r| r.connector.as_ref().map(|c| c.1.clone()))
        .collect();
    let rows = sqlx::query!(
        r#"WITH renewed AS (
               -- The input sorted by id drives a nested loop over the primary key, so rows
               -- are locked in id order (on a tiny table the plan may differ; should two
               -- batches then deadlock, the batcher retries the one PostgreSQL aborted).
               UPDATE tunnels t SET
                   status = CASE WHEN t.status = 'creating' THEN 'active' ELSE t.status END,
                   -- never backwards: a batch that started earlier but got the row lock later
                   -- must not undo a newer renewal another batch already acknowledged
                   last_heartbeat_at = GREATEST(t.last_heartbeat_at, date_trunc('milliseconds', now())),
                   lease_expires_at = GREATEST(t.lease_expires_at,
                       date_trunc('milliseconds', now()) + $3::bigint * interval '1 millisecond')
               FROM (SELECT DISTINCT id, account_id FROM unnest($1::uuid[], $2::uuid[]) AS a(id, account_id)
                     ORDER BY id) asked
               WHERE t.id = asked.id AND t.account_id = asked.account_id
                 AND t.status IN ('creating', 'active', 'stopping')
                 AND t.lease_expires_at > (SELECT lease_cutoff())
               RETURNING t.id, t.account_id, t.slug, t.status, t.requested_port, t.created_at,
                         t.last_heartbeat_at, t.lease_expires_at, t.stopped_at, t.last_error
           ),
           seen AS (
               UPDATE connectors c SET last_seen_at = now()
               FROM unnest($4::uuid[], $5::uuid[], $6::bytea[]) AS k(tunnel_id, connector_id, report_hash)
               WHERE c.tunnel_id = k.tunnel_id AND c.id = k.connector_id
                 AND c.report_hash = k.report_hash
                 AND k.tunnel_id IN (SELECT id FROM renewed)
               RETURNING c.tunnel_id, c.id
           )
           SELECT r.id AS "id!", r.account_id AS "account_id!", r.slug AS "slug!", r.status AS "status!",
                  r.requested_port AS "requested_port!", r.created_at AS "created_at!",
                  r.last_heartbeat_at, r.lease_expires_at, r.stopped_at, r.last_error,
                  ARRAY(SELECT seen.id FROM seen WHERE seen.tunnel_id = r.id) AS "seen!: Vec<Uuid>"
           FROM renewed r"#,
        &ids,
        &accounts,
        millis(lease_ttl),
        &connector_tunnels,
        &connector_ids,
        &fingerprints,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RenewedRow {
            tunnel: Tunnel {
                id: r.id,
                account_id: r.account_id,
                slug: r.slug,
                status: r.status,
                requested_port: r.requested_port,
                created_at: r.created_at,
                last_heartbeat_at: r.last_heartbeat_at,
                lease_expires_at: r.lease_expires_at,
                stopped_at: r.stopped_at,
                last_error: r.last_error,
            },
            seen_connectors: r.seen,
        })
        .collect())
}

/// Deletes up to `limit` stopped or failed tunnels that stopped longer than `retention` ago.
#[tracing::instrument(skip_all, err)]
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
