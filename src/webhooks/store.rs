//! Endpoint SQL. Every function takes a connection; the service owns the transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::EndpointView;
use crate::time::{millis, Timestamp};

/// An endpoint as stored, secrets included (so no `Debug`: it is never logged).
#[derive(Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub account_id: Uuid,
    pub url: String,
    pub description: String,
    pub types: Option<Vec<String>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub secret: String,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Endpoint {
    /// As the API shows it; with its secret only when `reveal`.
    pub fn view(self, reveal: bool) -> EndpointView {
        EndpointView {
            id: self.id,
            url: self.url,
            description: self.description,
            types: self.types,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            disabled_at: self.disabled_at.map(Timestamp),
            secret: reveal.then_some(self.secret),
            previous_secret_expires_at: self
                .previous_secret_expires_at
                .filter(|t| *t > Utc::now())
                .map(Timestamp),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        }
    }
}

#[tracing::instrument(skip_all, err)]
pub async fn insert(
    conn: &mut PgConnection,
    account_id: Uuid,
    url: &str,
    description: &str,
    types: Option<&[String]>,
    enabled: bool,
    secret: &str,
) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"INSERT INTO webhook_endpoints (id, account_id, url, description, types, enabled, secret,
                                          disabled_reason, disabled_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7,
                   CASE WHEN $6 THEN NULL ELSE 'disabled through the API' END,
                   CASE WHEN $6 THEN NULL ELSE date_trunc('milliseconds', now()) END)
           RETURNING id, account_id, url, description, types, enabled, disabled_reason,
                     disabled_at, secret, previous_secret_expires_at,
                     created_at, updated_at"#,
        Uuid::new_v4(),
        account_id,
        url,
        description,
        types,
        enabled,
        secret,
    )
    .fetch_one(conn)
    .await
}

/// One of the account's endpoints, locked until the caller's transaction ends.
#[tracing::instrument(skip_all, err)]
pub async fn get(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, account_id, url, description, types, enabled, disabled_reason,
                  disabled_at, secret, previous_secret_expires_at,
                  created_at, updated_at
           FROM webhook_endpoints WHERE id = $1 AND account_id = $2
           FOR UPDATE"#,
        id,
        account_id,
    )
    .fetch_optional(conn)
    .await
}

/// How many endpoints the account has.
#[tracing::instrument(skip_all, err)]
pub async fn count(conn: &mut PgConnection, account_id: Uuid) -> Result<i64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM webhook_endpoints WHERE account_id = $1"#,
        account_id
    )
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// The account's endpoints, oldest first.
#[tracing::instrument(skip_all, err)]
pub async fn list(conn: &mut PgConnection, account_id: Uuid) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, account_id, url, description, types, enabled, disabled_reason,
                  disabled_at, secret, previous_secret_expires_at,
                  created_at, updated_at
           FROM webhook_endpoints WHERE account_id = $1
           ORDER BY created_at, id"#,
        account_id,
    )
    .fetch_all(conn)
    .await
}

/// Writes an endpoint's editable fields back.
#[tracing::instrument(skip_all, err)]
pub async fn save(conn: &mut PgConnection, e: &Endpoint) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"UPDATE webhook_endpoints
           SET url = $3, description = $4, types = $5, enabled = $6, disabled_reason = $7,
               disabled_at = $8, updated_at = date_trunc('milliseconds', now())
           WHERE id = $1 AND account_id = $2
           RETURNING id, account_id, url, description, types, enabled, disabled_reason,
                     disabled_at, secret, previous_secret_expires_at,
                     created_at, updated_at"#,
        e.id,
        e.account_id,
        e.url,
        e.description,
        e.types.as_deref(),
        e.enabled,
        e.disabled_reason,
        e.disabled_at,
    )
    .fetch_one(conn)
    .await
}

/// Deletes one of the account's endpoints (its deliveries with it); whether it was there.
#[tracing::instrument(skip_all, err)]
pub async fn delete(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND account_id = $2",
        id,
        account_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A new secret; the current one stays valid for `grace`.
#[tracing::instrument(skip_all, err)]
pub async fn rotate(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
    secret: &str,
    grace: Duration,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"UPDATE webhook_endpoints
           SET previous_secret = secret, secret = $3,
               previous_secret_expires_at = date_trunc('milliseconds', now())
                                            + $4::bigint * interval '1 millisecond',
               updated_at = date_trunc('milliseconds', now())
           WHERE id = $1 AND account_id = $2
           RETURNING id, account_id, url, description, types, enabled, disabled_reason,
                     disabled_at, secret, previous_secret_expires_at,
                     created_at, updated_at"#,
        id,
        account_id,
        secret,
        millis(grace),
    )
    .fetch_optional(conn)
    .await
}

/// Disables an endpoint for `reason` (the dispatcher's verdict), unless it already is.
#[tracing::instrument(skip_all, err)]
pub async fn disable(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE webhook_endpoints
         SET enabled = false, disabled_reason = $2,
             disabled_at = date_trunc('milliseconds', now()),
             updated_at = date_trunc('milliseconds', now())
         WHERE id = $1 AND enabled",
        id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The deliveries waiting to be sent, of every account, and how long the oldest has waited
/// since it was queued (see [`super::service::Webhooks::backlog`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlog {
    pub pending: i64,
    pub oldest: Duration,
}

/// The pending deliveries and the age of the oldest.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn backlog(conn: &mut PgConnection) -> Result<Backlog, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "pending!",
                  (extract(epoch FROM now() - min(created_at)) * 1000)::bigint AS oldest_ms
           FROM webhook_deliveries WHERE state = 'pending'"#
    )
    .fetch_one(conn)
    .await?;
    Ok(Backlog {
        pending: row.pending,
        oldest: Duration::from_millis(
            row.oldest_ms
                .and_then(|ms| u64::try_from(ms).ok())
                .unwrap_or(0),
        ),
    })
}
