//! Connector SQL. Every function takes a connection; the service owns the transaction.
//!
//! Pending reconnect and disappearance are never stored: they are computed from timestamps
//! against the database clock (see `migrations/0003_connectors.sql`), so they are exact at any
//! read, whatever the sweeper's pace, and several replicas agree.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Client, Connection, Report};
use crate::events::{Actor, EventType, NewEvent};
use crate::time::{millis, Timestamp};

/// Records a connector's report for a tunnel whose lease the caller has just renewed in the
/// same transaction (so the tunnel is live and its row locked): the connector row is upserted
/// and its `last_seen_at` (its liveness clock) bumped. `true` when the connector is new (it
/// had never reported, or its reconnect grace had run out and it was deleted).
///
/// * The connection rows are written only when the report differs from the previous one:
///   its fingerprint ([`Report::fingerprint`]) is stored on the connector row, and `prior`
///   reads the stored one from the statement's snapshot. (An unchanged report does not even
///   come here: the heartbeat batch renews the lease and bumps the connector's `last_seen_at`.)
/// * On a change, `reported` upserts the listed connections (clearing `dropped_at`, so a
///   connection that comes back is live again) and `dropped` stamps `dropped_at` on those the
///   connector no longer lists, which starts their reconnect grace.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn record_report(
    conn: &mut PgConnection,
    tunnel_id: Uuid,
    report: &Report,
    origin_ip: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let ids: Vec<Uuid> = report.connections.iter().map(|c| c.id).collect();
    let colos: Vec<Option<String>> = report
        .connections
        .iter()
        .map(|c| c.colo_name.clone())
        .collect();
    let opened: Vec<Option<DateTime<Utc>>> =
        report.connections.iter().map(|c| c.opened_at).collect();
    let inserted = sqlx::query!(
        r#"WITH prior AS (
               SELECT report_hash FROM connectors WHERE tunnel_id = $1 AND id = $2
           ),
           client AS (
               INSERT INTO connectors AS c (tunnel_id, id, arch, version, config_version, features,
                                            run_at, origin_ip, report_hash, first_seen_at, last_seen_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now())
               ON CONFLICT (tunnel_id, id) DO UPDATE SET
                   arch = EXCLUDED.arch, version = EXCLUDED.version,
                   config_version = EXCLUDED.config_version, features = EXCLUDED.features,
                   run_at = EXCLUDED.run_at, origin_ip = EXCLUDED.origin_ip,
                   report_hash = EXCLUDED.report_hash, last_seen_at = EXCLUDED.last_seen_at
               -- xmax is 0 on a row this statement inserted, not on one it updated
               RETURNING c.tunnel_id, c.id, (c.xmax = 0) AS inserted
           ),
           changed AS (
               SELECT client.tunnel_id, client.id FROM client
               WHERE NOT EXISTS (SELECT 1 FROM prior WHERE prior.report_hash = $9)
           ),
           reported AS (
               INSERT INTO connections AS k (tunnel_id, connector_id, id, colo_name, opened_at)
               SELECT changed.tunnel_id, changed.id, r.id, r.colo_name, r.opened_at
               FROM changed, unnest($10::uuid[], $11::text[], $12::timestamptz[]) AS r(id, colo_name, opened_at)
               ON CONFLICT (tunnel_id, connector_id, id) DO UPDATE SET
                   colo_name = EXCLUDED.colo_name, opened_at = EXCLUDED.opened_at, dropped_at = NULL
           ),
           dropped AS (
               UPDATE connections k SET dropped_at = now()
               FROM changed
               WHERE k.tunnel_id = changed.tunnel_id AND k.connector_id = changed.id
                 AND k.dropped_at IS NULL AND k.id <> ALL($10::uuid[])
           )
           SELECT inserted AS "inserted!" FROM client"#,
        tunnel_id,
        report.id,
        report.arch.as_deref(),
        report.version.as_deref(),
        report.config_version,
        &report.features,
        report.run_at,
        origin_ip,
        report.fingerprint(origin_ip),
        &ids,
        &colos as &[Option<String>],
        &opened as &[Option<DateTime<Utc>>],
    )
    .fetch_one(conn)
    .await?
    .inserted;
    Ok(inserted)
}

/// The clocks that decide pending and gone.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    pub lease_ttl: Duration,
    pub grace: Duration,
}

/// The tunnel's connectors that are not gone, with their connections that are not gone,
/// oldest connector first; only `connector` when given.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn list(
    conn: &mut PgConnection,
    account_id: Uuid,
    tunnel_id: Uuid,
    connector: Option<Uuid>,
    clocks: Clocks,
) -> Result<Vec<Client>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH t AS (
               SELECT id, status, stopped_at FROM tunnels WHERE id = $1 AND account_id = $2
           ),
           c AS (
               SELECT c.*, least(c.last_seen_at + $4::bigint * interval '1 millisecond', t.stopped_at) AS pending_since
               FROM connectors c JOIN t ON c.tunnel_id = t.id
               WHERE $3::uuid IS NULL OR c.id = $3
           )
           SELECT c.id, c.arch, c.version, c.config_version, c.features, c.run_at, c.origin_ip,
                  k.id AS "conn_id?", k.colo_name AS "colo_name?", k.opened_at AS "opened_at?",
                  least(k.dropped_at, c.pending_since) <= now() AS "pending?"
           FROM c
           LEFT JOIN connections k
             ON k.tunnel_id = c.tunnel_id AND k.connector_id = c.id
            AND least(k.dropped_at, c.pending_since) + $5::bigint * interval '1 millisecond' > now()
           WHERE c.pending_since + $5::bigint * interval '1 millisecond' > now()
           ORDER BY c.first_seen_at, c.id, k.opened_at NULLS LAST, k.id"#,
        tunnel_id,
        account_id,
        connector,
        millis(clocks.lease_ttl),
        millis(clocks.grace),
    )
    .fetch_all(conn)
    .await?;
    let mut clients: Vec<Client> = Vec::new();
    for row in rows {
        if clients.last().is_none_or(|c| c.id != row.id) {
            clients.push(Client {
                id: row.id,
                arch: row.arch.clone(),
                config_version: row.config_version,
                conns: Vec::new(),
                features: row.features.clone(),
                run_at: row.run_at.map(Timestamp),
                version: row.version.clone(),
            });
        }
        let (Some(client), Some(conn_id)) = (clients.last_mut(), row.conn_id) else {
            continue;
        };
        client.conns.push(Connection {
            id: conn_id,
            client_id: row.id,
            client_version: row.version,
            colo_name: row.colo_name,
            is_pending_reconnect: row.pending.unwrap_or(true),
            opened_at: row.opened_at.map(Timestamp),
            origin_ip: row.origin_ip,
            uuid: conn_id,
        });
    }
    Ok(clients)
}

/// A connector that was deleted, as it last reported itself (its connections went with it).
pub struct Gone {
    pub account_id: Uuid,
    pub tunnel_id: Uuid,
    pub connector: Client,
}

/// A deleted connector row.
struct GoneRow {
    account_id: Uuid,
    tunnel_id: Uuid,
    id: Uuid,
    arch: Option<String>,
    version: Option<String>,
    config_version: Option<i64>,
    features: Vec<String>,
    run_at: Option<DateTime<Utc>>,
}

impl From<GoneRow> for Gone {
    fn from(r: GoneRow) -> Self {
        Self {
            account_id: r.account_id,
            tunnel_id: r.tunnel_id,
            connector: Client::last_known(
                r.id,
                r.arch,
                r.version,
                r.config_version,
                r.features,
                r.run_at,
            ),
        }
    }
}

impl Gone {
    /// `connector.disconnected.v1`, about the tunnel, caused by `actor`.
    pub fn event(&self, actor: Actor) -> NewEvent {
        NewEvent::new(
            self.account_id,
            EventType::ConnectorDisconnected,
            self.tunnel_id,
            actor,
            &self.connector,
        )
    }
}

/// Removes the connector `connector`, or every connector of the tunnel, whatever their state;
/// the ones removed.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete(
    conn: &mut PgConnection,
    tunnel_id: Uuid,
    connector: Option<Uuid>,
) -> Result<Vec<Gone>, sqlx::Error> {
    let rows = sqlx::query_as!(
        GoneRow,
        "DELETE FROM connectors c USING tunnels t
         WHERE c.tunnel_id = $1 AND ($2::uuid IS NULL OR c.id = $2) AND t.id = c.tunnel_id
         RETURNING t.account_id, c.tunnel_id, c.id, c.arch, c.version, c.config_version,
                   c.features, c.run_at",
        tunnel_id,
        connector
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Gone::from).collect())
}

/// Deletes the connectors whose reconnect grace has run out; the ones deleted.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn sweep_connectors(
    conn: &mut PgConnection,
    clocks: Clocks,
) -> Result<Vec<Gone>, sqlx::Error> {
    let rows = sqlx::query_as!(
        GoneRow,
        r#"DELETE FROM connectors c USING tunnels t
           WHERE t.id = c.tunnel_id
             AND least(c.last_seen_at + $1::bigint * interval '1 millisecond', t.stopped_at)
                 + $2::bigint * interval '1 millisecond' <= now()
           RETURNING t.account_id, c.tunnel_id, c.id, c.arch, c.version, c.config_version,
                     c.features, c.run_at"#,
        millis(clocks.lease_ttl),
        millis(clocks.grace),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Gone::from).collect())
}

/// Deletes the connections whose reconnect grace has run out; how many.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn sweep_connections(
    conn: &mut PgConnection,
    clocks: Clocks,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM connections k WHERE k.dropped_at <= now() - $1::bigint * interval '1 millisecond'",
        millis(clocks.grace),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
