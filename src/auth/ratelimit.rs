//! A fixed-window rate limiter for login attempts, per key (a client address, an email),
//! counted in PostgreSQL (`migrations/0018_login_attempts.sql`) so that every replica on
//! the database shares one count.

use std::time::Duration;

use sqlx::PgConnection;

use super::tokens::digest;
use crate::time::millis;

/// The window login attempts are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// How many attempts a key may make per window, and the window.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub attempts: u32,
    pub window: Duration,
}

/// Counts an attempt for each of `keys` (stored as their SHA-256); `Ok(Err(seconds))` when one of them is over the
/// limit, with when the next attempt is allowed. Keys are taken in order, so that two
/// attempts never wait for each other's rows in opposite orders.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn attempt(
    conn: &mut PgConnection,
    keys: &[String],
    limit: Limit,
) -> Result<Result<(), u64>, sqlx::Error> {
    let mut keys: Vec<Vec<u8>> = keys.iter().map(|k| digest(k)).collect();
    keys.sort();
    keys.dedup();
    let wait_ms = sqlx::query_scalar!(
        r#"WITH counted AS (
               INSERT INTO login_attempts AS a (key, window_start, attempts)
               SELECT key, now(), 1 FROM unnest($1::bytea[]) AS k(key) ORDER BY key
               ON CONFLICT (key) DO UPDATE SET
                   window_start = CASE WHEN a.window_start <= now() - $2::bigint * interval '1 millisecond'
                                       THEN now() ELSE a.window_start END,
                   attempts = CASE WHEN a.window_start <= now() - $2::bigint * interval '1 millisecond'
                                   THEN 1 ELSE a.attempts + 1 END
               RETURNING window_start, attempts
           )
           SELECT (extract(epoch FROM max(window_start) FILTER (WHERE attempts > $3)
                                      + $2::bigint * interval '1 millisecond' - now()) * 1000)::bigint
           FROM counted"#,
        &keys,
        millis(limit.window),
        i32::try_from(limit.attempts).unwrap_or(i32::MAX),
    )
    .fetch_one(conn)
    .await?;
    Ok(match wait_ms {
        None => Ok(()),
        Some(ms) => Err(u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1)),
    })
}

/// Deletes the counts of windows that ended before `window` ago; how many.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn prune(conn: &mut PgConnection, window: Duration) -> Result<u64, sqlx::Error> {
    let pruned = sqlx::query!(
        "DELETE FROM login_attempts WHERE window_start <= now() - $1::bigint * interval '1 millisecond'",
        millis(window),
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(pruned)
}
