//! Time passing without waiting for it. Everything Warren decides by the clock (a lease run
//! out, a connection's reconnect grace, an outage of the reaper) compares stored timestamps
//! with PostgreSQL's `now()`; a test moves those timestamps into the past with SQL on its own
//! database instead of sleeping until `now()` has passed them. Each helper panics unless it
//! changed a row, so a backdate that misses cannot let a test pass by accident.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

/// Runs `sql`, an UPDATE that moves timestamps into the past, with `$1` bound to `id` and `$2`
/// to `by` (an interval); the number of rows it changed, at least one.
pub async fn backdate(db: &PgPool, sql: &str, id: Uuid, by: Duration) -> u64 {
    changing(db, sql, sqlx::query(sql).bind(id).bind(by)).await
}

/// Runs `query` (the text `sql`); the number of rows it changed, which must not be none.
async fn changing(db: &PgPool, sql: &str, query: Query<'_, Postgres, PgArguments>) -> u64 {
    let changed = query
        .execute(db)
        .await
        .unwrap_or_else(|err| panic!("backdating with {sql}: {err}"))
        .rows_affected();
    assert!(changed > 0, "the backdate changed no row: {sql}");
    changed
}

/// Everything about tunnel `id` happened `by` earlier: its creation, its last heartbeat, the
/// end of its lease and its stop. (Its status does not change: a live lease moved into the
/// past has run out, and the next read or reaper tick expires it.)
pub async fn age_tunnel(db: &PgPool, id: Uuid, by: Duration) {
    backdate(
        db,
        "UPDATE tunnels SET created_at = created_at - $2,
                last_heartbeat_at = last_heartbeat_at - $2,
                lease_expires_at = lease_expires_at - $2,
                stopped_at = stopped_at - $2
         WHERE id = $1",
        id,
        by,
    )
    .await;
}

/// Connector `id` was last seen (heartbeated) `by` earlier.
pub async fn age_connector(db: &PgPool, id: Uuid, by: Duration) {
    let sql = "UPDATE connectors SET last_seen_at = last_seen_at - $2 WHERE id = $1";
    backdate(db, sql, id, by).await;
}

/// Connection `id` was dropped from its connector's report `by` earlier.
pub async fn age_dropped_connection(db: &PgPool, id: Uuid, by: Duration) {
    let sql = "UPDATE connections SET dropped_at = dropped_at - $2
               WHERE id = $1 AND dropped_at IS NOT NULL";
    backdate(db, sql, id, by).await;
}

/// As if no Warren had run on this database for another `by`: the reaper's clock, and every
/// live tunnel's heartbeat and lease, move `by` into the past. Run it while no server is up.
pub async fn as_if_down_for(db: &PgPool, by: Duration) {
    let clock = "UPDATE lease_clock SET reaper_ran_at = reaper_ran_at - $1
                 WHERE reaper_ran_at IS NOT NULL";
    let leases = "UPDATE tunnels SET last_heartbeat_at = last_heartbeat_at - $1,
                         lease_expires_at = lease_expires_at - $1
                  WHERE status IN ('creating', 'active', 'stopping')";
    for sql in [clock, leases] {
        changing(db, sql, sqlx::query(sql).bind(by)).await;
    }
}

/// The outage grace, if one was given, has ended: no lease is held past its own end any more.
pub async fn end_grace(db: &PgPool) {
    sqlx::query("UPDATE lease_clock SET grace_until = LEAST(grace_until, now())")
        .execute(db)
        .await
        .expect("ending the grace");
}

/// A timestamp of the API (an RFC 3339 string).
pub fn at(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    text.parse()
        .unwrap_or_else(|err| panic!("not a time: {text} ({err})"))
}
