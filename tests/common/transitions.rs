//! What the transition log (`tunnel_transitions`, written by the trigger on every status
//! change) and the lease clock say happened.

use sqlx::PgPool;
use uuid::Uuid;

/// How many times these tunnels entered `failed`.
pub async fn failures(db: &PgPool, ids: &[String]) -> i64 {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.parse().unwrap()).collect();
    sqlx::query_scalar(
        "SELECT count(*) FROM tunnel_transitions WHERE tunnel_id = ANY($1) AND to_status = 'failed'",
    )
    .bind(&ids)
    .fetch_one(db)
    .await
    .unwrap()
}

/// How many (tunnel, status) pairs the log holds more than once: a tunnel transitioned twice.
pub async fn transitioned_twice(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM tunnel_transitions
                               GROUP BY tunnel_id, to_status HAVING count(*) > 1) d",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// Whether a reaper on this database ever gave the outage grace.
pub async fn graced(db: &PgPool) -> bool {
    sqlx::query_scalar("SELECT last_grace_at IS NOT NULL FROM lease_clock")
        .fetch_one(db)
        .await
        .unwrap()
}
