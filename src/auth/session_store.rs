//! Dashboard session SQL. A session is found by the SHA-256 of its cookie secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::time::millis;

/// A live session as stored.
pub struct SessionRow {
    pub user_id: Uuid,
    pub account_id: Uuid,
    pub email: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a session that ends `ttl` from now; when it ends.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn insert(
    conn: &mut PgConnection,
    secret_hash: &[u8],
    user_id: Uuid,
    account_id: Uuid,
    csrf_token: &str,
    ttl: Duration,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO dashboard_sessions (secret_hash, user_id, account_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 millisecond')
         RETURNING expires_at",
        secret_hash,
        user_id,
        account_id,
        csrf_token,
        millis(ttl),
    )
    .fetch_one(conn)
    .await
}

/// The unexpired session with this secret hash.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn find(
    conn: &mut PgConnection,
    secret_hash: &[u8],
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as!(
        SessionRow,
        "SELECT s.user_id, s.account_id, u.email, s.csrf_token, s.expires_at
         FROM dashboard_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.secret_hash = $1 AND s.expires_at > now()",
        secret_hash
    )
    .fetch_optional(conn)
    .await
}

/// Deletes the session; whether there was one.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete(conn: &mut PgConnection, secret_hash: &[u8]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM dashboard_sessions WHERE secret_hash = $1",
        secret_hash
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes up to `limit` expired sessions; how many.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete_expired(conn: &mut PgConnection, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM dashboard_sessions WHERE secret_hash = ANY (ARRAY(
             SELECT secret_hash FROM dashboard_sessions WHERE expires_at <= now() LIMIT $1))",
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
