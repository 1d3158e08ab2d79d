//! `Idempotency-Key` for tunnel creation, honoured for 24 hours.
//!
//! The key is claimed in the creating transaction: a concurrent retry with the same key waits
//! on the unique key until the first commits, then finds what it created. A failed creation
//! rolls back its claim, so a retry runs again.

use sqlx::PgConnection;
use uuid::Uuid;

pub enum Claim {
    /// First use of the key: go ahead and create.
    New,
    /// The key was used before, for a request with this hash, which created this tunnel.
    Used {
        request_hash: Vec<u8>,
        tunnel_id: Option<Uuid>,
    },
}

#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn claim(
    conn: &mut PgConnection,
    account_id: Uuid,
    key: &str,
    request_hash: &[u8],
) -> Result<Claim, sqlx::Error> {
    sqlx::query!(
        "DELETE FROM idempotency_keys
         WHERE account_id = $1 AND key = $2 AND created_at < now() - interval '24 hours'",
        account_id,
        key
    )
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query!(
        "INSERT INTO idempotency_keys (account_id, key, request_hash) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, key) DO NOTHING",
        account_id,
        key,
        request_hash
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::New);
    }
    let row = sqlx::query!(
        "SELECT request_hash, tunnel_id FROM idempotency_keys WHERE account_id = $1 AND key = $2",
        account_id,
        key
    )
    .fetch_one(conn)
    .await?;
    Ok(Claim::Used {
        request_hash: row.request_hash,
        tunnel_id: row.tunnel_id,
    })
}

#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn complete(
    conn: &mut PgConnection,
    account_id: Uuid,
    key: &str,
    tunnel_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE idempotency_keys SET tunnel_id = $3 WHERE account_id = $1 AND key = $2",
        account_id,
        key,
        tunnel_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets up to `limit` keys older than 24 hours.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn purge_expired(conn: &mut PgConnection, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM idempotency_keys
             WHERE created_at < now() - interval '24 hours' LIMIT $1))",
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
