//! Lease SQL: renewing leases (one heartbeat or a batch) and expiring those that ran out.
//!
//! The database clock is the only lease clock: a lease holds while
//! `lease_expires_at > lease_cutoff()` (a SQL function, see `migrations/0012_lease_cutoff.sql`,
//! which also knows the outage grace), never compared with the application's time. A lease
//! that has run out is expired by [`expire_due`] before any read or change of that tunnel, so
//! an expired tunnel is never reported as live, even in the moment before the reaper gets to
//! it. Leases are renewed by one statement, [`renew_many`], for one heartbeat or a batch.
//! Every transition these statements make logs its event in the same statement.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::Tunnel;
use crate::events::{Actor, EventType};
use crate::time::millis;

/// Which due leases [`expire_due`] expires; `None` fields do not filter.
#[derive(Default, Clone, Copy)]
pub struct Due<'a> {
    pub account_id: Option<Uuid>,
    pub id: Option<Uuid>,
    /// Any of these tunnels (a page that was read).
    pub ids: Option<&'a [Uuid]>,
    pub slug: Option<&'a str>,
}

impl Due<'_> {
    /// Tunnel `id`, if its lease ran out.
    pub fn tunnel(id: Uuid) -> Self {
        Self {
            id: Some(id),
            ..Self::default()
        }
    }
}

/// What the statements that end tunnels for their leases log: the event types and the
/// principal (Warren itself), and the base domain the logged tunnels are shown with.
struct Expiry<'a> {
    failed: &'static str,
    stopped: &'static str,
    reaper: serde_json::Value,
    base_domain: &'a str,
}

impl<'a> Expiry<'a> {
    fn new(base_domain: &'a str) -> Self {
        Self {
            failed: EventType::TunnelFailed.as_str(),
            stopped: EventType::TunnelStopped.as_str(),
            reaper: Actor::Reaper.to_json(),
            base_domain,
        }
    }
}

/// Expires the leases that have run out among the tunnels `due` selects: `creating`/`active`
/// become `failed` ("lease expired"), `stopping` becomes `stopped`, each with its event.
/// `stoppedAt` is the moment the lease ran out (no earlier than the outage grace's end). Waits for rows another transaction holds,
/// then re-checks them, so a lease renewed meanwhile is left alone and no tunnel is
/// transitioned twice.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn expire_due(
    conn: &mut PgConnection,
    due: Due<'_>,
    base_domain: &str,
) -> Result<u64, sqlx::Error> {
    let expiry = Expiry::new(base_domain);
    let expired = sqlx::query_scalar!(
        r#"WITH expired AS (
               UPDATE tunnels t SET
                   status = CASE WHEN status = 'stopping' THEN 'stopped' ELSE 'failed' END,
                   last_error = CASE WHEN status = 'stopping' THEN last_error ELSE 'lease expired' END,
                   stopped_at = lease_end(lease_expires_at, (SELECT lease_floor())),
                   last_heartbeat_at = NULL,
                   lease_expires_at = NULL
               WHERE status IN ('creating', 'active', 'stopping')
                 AND lease_expires_at <= (SELECT lease_cutoff())
                 AND ($1::uuid IS NULL OR account_id = $1)
                 AND ($2::uuid IS NULL OR id = $2)
                 AND ($3::text IS NULL OR slug = $3)
                 AND ($8::uuid[] IS NULL OR id = ANY($8))
               RETURNING t.id, t.account_id, t.status, tunnel_json(t, $4) AS data
           )
           SELECT append_events(
                      array_agg(account_id ORDER BY id),
                      array_agg(CASE WHEN status = 'stopped' THEN $6 ELSE $5 END ORDER BY id),
                      array_agg(id ORDER BY id),
                      array_agg($7::jsonb ORDER BY id),
                      array_agg(data ORDER BY id)) AS "expired!"
           FROM expired"#,
        due.account_id,
        due.id,
        due.slug,
        expiry.base_domain,
        expiry.failed,
        expiry.stopped,
        expiry.reaper,
        due.ids,
    )
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(expired).unwrap_or(0))
}

/// What one pass over the live set found: the tunnels whose leases have run out (up to the
/// limit asked, in no particular order), and how long until the earliest other lease ends.
#[derive(Debug)]
pub struct DueLeases {
    pub ids: Vec<Uuid>,
    /// When the pass looked (the database's clock).
    pub looked_at: DateTime<Utc>,
    /// `None` when no other lease is live or the earliest is already past (leases on hold,
    /// whose end is only counted from the grace the next tick gives). A lease ends no earlier
    /// than the outage grace.
    pub next_due_in: Option<Duration>,
}

/// One pass over the live set, which the reaper then expires batch by batch through the
/// primary key (a batch that searched the live set itself would pass over every row the
/// batches before it had ended, since those stay in the partial index until vacuum). No
/// lease index is kept, so that heartbeats stay HOT updates: the pass reads every live row,
/// and the earliest lease still running tells the reaper how long it may skip the next one.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn due_leases(conn: &mut PgConnection, limit: i32) -> Result<DueLeases, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT COALESCE((array_agg(id) FILTER (
                                WHERE lease_expires_at <= (SELECT lease_cutoff())))[1:$1],
                            '{}') AS "ids!",
                  (extract(epoch FROM min(lease_end(lease_expires_at, (SELECT lease_floor())))
                        FILTER (WHERE lease_expires_at > (SELECT lease_cutoff())) - now()) * 1000)::bigint
                      AS next_due_ms,
                  now() AS "looked_at!"
           FROM tunnels
           WHERE status IN ('creating', 'active', 'stopping')"#,
        limit
    )
    .fetch_one(conn)
    .await?;
    Ok(DueLeases {
        ids: row.ids,
        looked_at: row.looked_at,
        next_due_in: row
            .next_due_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis),
    })
}

/// One batch of the reaper: those of `ids` whose leases have still run out, skipping rows
/// other transactions hold (another replica's reaper, a heartbeat in flight; a lease renewed
/// since [`due_leases`] read it is left alone). The statement writes the batch's transition log
/// and events itself, set-based, instead of the row trigger (`warren.transitions_logged`
/// tells the trigger so): it only ever moves live tunnels to `failed` or `stopped`.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn reap_batch(
    conn: &mut PgConnection,
    ids: &[Uuid],
    base_domain: &str,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let expiry = Expiry::new(base_domain);
    let mut tx = conn.begin().await?;
    sqlx::query!(r#"SELECT set_config('warren.transitions_logged', 'on', true) AS "on!""#)
        .fetch_one(&mut *tx)
        .await?;
    let rows = sqlx::query!(
        r#"WITH due AS (
               SELECT id, status FROM tunnels
               WHERE id = ANY($1)
                 AND status IN ('creating', 'active', 'stopping')
                 AND lease_expires_at <= (SELECT lease_cutoff())
               FOR UPDATE SKIP LOCKED
           ),
           moved AS (
               UPDATE tunnels t SET
                   status = CASE WHEN t.status = 'stopping' THEN 'stopped' ELSE 'failed' END,
                   last_error = CASE WHEN t.status = 'stopping' THEN t.last_error ELSE 'lease expired' END,
                   stopped_at = lease_end(t.lease_expires_at, (SELECT lease_floor())),
                   last_heartbeat_at = NULL,
                   lease_expires_at = NULL
               WHERE t.id = ANY(ARRAY(SELECT id FROM due))
               RETURNING t.id, t.account_id, t.status, tunnel_json(t, $2) AS data
           ),
           logged AS (
               INSERT INTO tunnel_transitions (tunnel_id, from_status, to_status)
               SELECT moved.id, due.status, moved.status FROM moved JOIN due USING (id)
           ),
           emitted AS (
               SELECT append_events(
                          array_agg(account_id ORDER BY id),
                          array_agg(CASE WHEN status = 'stopped' THEN $4 ELSE $3 END ORDER BY id),
                          array_agg(id ORDER BY id),
                          array_agg($5::jsonb ORDER BY id),
                          array_agg(data ORDER BY id)) AS n
               FROM moved
           )
           SELECT id, status FROM moved, emitted"#,
        ids,
        expiry.base_domain,
        expiry.failed,
        expiry.stopped,
        expiry.reaper,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| (r.id, r.status)).collect())
}

/// One lease renewal: the tunnel, the account that asks, and the connector it reports, as its
/// id and [`crate::connectors::Report::fingerprint`].
#[derive(Clone, Debug)]
pub struct Renewal {
    pub account_id: Uuid,
    pub tunnel_id: Uuid,
    pub connector: Option<(Uuid, Vec<u8>)>,
    /// Who heartbeats: the principal of the event when this renewal activates the tunnel.
    pub actor: Actor,
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
/// is left to the caller. A renewal that moves a tunnel from `creating` to `active` logs
/// `tunnel.active.v1` in the same statement.
#[tracing::instrument(skip_all, err(level = "info"), fields(batch = renewals.len()))]
pub async fn renew_many(
    conn: &mut PgConnection,
    renewals: &[Renewal],
    lease_ttl: Duration,
    base_domain: &str,
) -> Result<Vec<RenewedRow>, sqlx::Error> {
    let ids: Vec<Uuid> = renewals.iter().map(|r| r.tunnel_id).collect();
    let accounts: Vec<Uuid> = renewals.iter().map(|r| r.account_id).collect();
    let principals: Vec<serde_json::Value> = renewals.iter().map(|r| r.actor.to_json()).collect();
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
                   activated_at = CASE WHEN t.status = 'creating' THEN now() ELSE t.activated_at END,
                   -- never backwards: a batch that started earlier but got the row lock later
                   -- must not undo a newer renewal another batch already acknowledged
                   last_heartbeat_at = GREATEST(t.last_heartbeat_at, date_trunc('milliseconds', now())),
                   lease_expires_at = GREATEST(t.lease_expires_at,
                       date_trunc('milliseconds', now()) + $3::bigint * interval '1 millisecond')
               FROM (SELECT DISTINCT ON (id, account_id) id, account_id
                     FROM unnest($1::uuid[], $2::uuid[]) AS a(id, account_id)
                     ORDER BY id, account_id) asked
               WHERE t.id = asked.id AND t.account_id = asked.account_id
                 AND t.status IN ('creating', 'active', 'stopping')
                 AND t.lease_expires_at > (SELECT lease_cutoff())
               RETURNING t.id, t.account_id, t.slug, t.status, t.requested_port, t.created_at,
                         t.last_heartbeat_at, t.lease_expires_at, t.stopped_at, t.last_error,
                         -- this statement moved it out of `creating`
                         CASE WHEN t.activated_at = now() THEN tunnel_json(t, $8) END AS activated
           ),
           activated AS (
               SELECT r.id, r.account_id, r.activated AS data, p.principal
               FROM renewed r
               JOIN (SELECT DISTINCT ON (id, account_id) id, account_id, principal
                     FROM unnest($1::uuid[], $2::uuid[], $7::jsonb[]) AS a(id, account_id, principal)
                     ORDER BY id, account_id) p ON p.id = r.id AND p.account_id = r.account_id
               WHERE r.activated IS NOT NULL
           ),
           emitted AS (
               SELECT append_events(array_agg(account_id ORDER BY id), array_agg($9::text ORDER BY id),
                                    array_agg(id ORDER BY id), array_agg(principal ORDER BY id),
                                    array_agg(data ORDER BY id)) AS n
               FROM activated
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
           FROM renewed r, emitted"#,
        &ids,
        &accounts,
        millis(lease_ttl),
        &connector_tunnels,
        &connector_ids,
        &fingerprints,
        &principals,
        base_domain,
        EventType::TunnelActive.as_str(),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RenewedRow {
            tunnel: tunnel_of!(r),
            seen_connectors: r.seen,
        })
        .collect())
}
