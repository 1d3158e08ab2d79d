//! API tokens: `wrn_` + 40 base62 characters, shown once, stored as their SHA-256.

use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Principal, Scopes};

pub const PREFIX: &str = "wrn_";
const SECRET_LEN: usize = 40;

/// A fresh token secret and its stored hash.
pub fn generate() -> (String, Vec<u8>) {
    let token = format!(
        "{PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), SECRET_LEN)
    );
    let hash = digest(&token);
    (token, hash)
}

pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub struct NewToken<'a> {
    pub account_id: Uuid,
    pub user_id: Uuid,
    pub name: &'a str,
    pub scopes: Scopes,
    pub hash: &'a [u8],
    pub expires_in_secs: Option<i64>,
}

#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn insert(
    conn: &mut PgConnection,
    new: NewToken<'_>,
) -> Result<TokenRecord, sqlx::Error> {
    sqlx::query_as!(
        TokenRecord,
        r#"INSERT INTO api_tokens (id, account_id, user_id, name, scopes, token_hash, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, date_trunc('milliseconds', now()),
                   date_trunc('milliseconds', now()) + make_interval(secs => $7::bigint))
           RETURNING id, name, scopes, created_at, expires_at"#,
        Uuid::new_v4(),
        new.account_id,
        new.user_id,
        new.name,
        &new.scopes.names(),
        new.hash,
        new.expires_in_secs,
    )
    .fetch_one(conn)
    .await
}

#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn list(
    conn: &mut PgConnection,
    account_id: Uuid,
) -> Result<Vec<TokenRecord>, sqlx::Error> {
    sqlx::query_as!(
        TokenRecord,
        "SELECT id, name, scopes, created_at, expires_at FROM api_tokens
         WHERE account_id = $1 ORDER BY created_at DESC, id DESC",
        account_id
    )
    .fetch_all(conn)
    .await
}

/// A deleted token: what it was, and its hash (to evict it from the cache).
pub struct Deleted {
    pub record: TokenRecord,
    pub hash: Vec<u8>,
}

/// Deletes the token; `None` when the account has no such token.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Deleted>, sqlx::Error> {
    let row = sqlx::query!(
        "DELETE FROM api_tokens WHERE id = $1 AND account_id = $2
         RETURNING id, name, scopes, created_at, expires_at, token_hash",
        id,
        account_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Deleted {
        record: TokenRecord {
            id: r.id,
            name: r.name,
            scopes: r.scopes,
            created_at: r.created_at,
            expires_at: r.expires_at,
        },
        hash: r.token_hash,
    }))
}

/// What a live token grants, and until when.
pub struct Grant {
    pub principal: Principal,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a live (not expired, not revoked) token grants.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn principal_for(
    conn: &mut PgConnection,
    hash: &[u8],
) -> Result<Option<Grant>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT id, user_id, account_id, scopes, expires_at FROM api_tokens
         WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > now())",
        hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Grant {
        principal: Principal {
            user_id: r.user_id,
            account_id: r.account_id,
            scopes: Scopes::from_names(&r.scopes),
            token_id: Some(r.id),
        },
        expires_at: r.expires_at,
    }))
}

/// As [`principal_for`], for Cloudflare's `X-Auth-Email` + `X-Auth-Key`: the key must be an
/// API token of the user with that email.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn principal_for_email_key(
    conn: &mut PgConnection,
    email: &str,
    key: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT t.id, t.user_id, t.account_id, t.scopes FROM api_tokens t
         JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND lower(u.email) = lower($2)
           AND (t.expires_at IS NULL OR t.expires_at > now())",
        digest(key),
        email
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Principal {
        user_id: r.user_id,
        account_id: r.account_id,
        scopes: Scopes::from_names(&r.scopes),
        token_id: Some(r.id),
    }))
}
