//! Dashboard sessions: a browser's sign-in, held as a random secret in a cookie.
//!
//! Signing in checks the password exactly as a login does (same rate limit). The session acts
//! for its user with every scope, as a login's access token does. Each session has its own
//! CSRF token, which the dashboard puts in every form and checks on every POST.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::service::Auth;
use super::{ratelimit, session_store as store, tokens, Principal, Scopes};
use crate::error::Error;
use crate::tasks::Periodic;

/// Length of a session secret and of a CSRF token, in base62 characters (~238 bits).
const SECRET_LEN: usize = 40;

/// A random secret of [`SECRET_LEN`] base62 characters.
pub fn random_secret() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), SECRET_LEN)
}

/// A session just started: the secret goes into the cookie and is never stored.
pub struct NewSession {
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

/// A live session.
#[derive(Clone, Debug)]
pub struct Session {
    pub principal: Principal,
    pub email: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether `sent` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, sent: &str) -> bool {
        constant_time_eq(self.csrf_token.as_bytes(), sent.as_bytes())
    }
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Signs in with an email and password (rate limited like a login) and starts a session.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn start_session(
        &self,
        email: &str,
        password: String,
        client: Option<&str>,
    ) -> Result<NewSession, Error> {
        let user = self.check_password(email, password, client).await?;
        let secret = random_secret();
        let mut conn = self.db.acquire().await?;
        let expires_at = store::insert(
            &mut conn,
            &tokens::digest(&secret),
            user.id,
            user.account_id,
            &random_secret(),
            self.settings.session_ttl,
        )
        .await?;
        tracing::info!(user_id = %user.id, "dashboard session started");
        Ok(NewSession { secret, expires_at })
    }

    /// The live session a cookie secret belongs to; `None` when it is unknown, ended or
    /// expired.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn session(&self, secret: &str) -> Result<Option<Session>, Error> {
        let mut conn = self.db.acquire().await?;
        let row = store::find(&mut conn, &tokens::digest(secret)).await?;
        Ok(row.map(|row| Session {
            principal: Principal {
                user_id: row.user_id,
                account_id: row.account_id,
                scopes: Scopes::all(),
                token_id: None,
            },
            email: row.email,
            csrf_token: row.csrf_token,
            expires_at: row.expires_at,
        }))
    }

    /// Ends the session (signing out); ending an unknown one is not an error.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn end_session(&self, secret: &str) -> Result<(), Error> {
        let mut conn = self.db.acquire().await?;
        if store::delete(&mut conn, &tokens::digest(secret)).await? {
            tracing::info!("dashboard session ended");
        }
        Ok(())
    }
}

/// Deletes expired sessions, and the login attempt counts of ended windows, now and then; a
/// periodic task.
#[derive(Clone)]
pub struct SessionSweep {
    pub pool: PgPool,
    pub interval: Duration,
}

impl Periodic for SessionSweep {
    const NAME: &'static str = "dashboard session sweep";

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn tick(&self, _shutdown: &CancellationToken) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        let deleted = store::delete_expired(&mut conn, 10_000).await?;
        if deleted > 0 {
            tracing::debug!(deleted, "expired dashboard sessions deleted");
        }
        let pruned = ratelimit::prune(&mut conn, ratelimit::LOGIN_WINDOW).await?;
        if pruned > 0 {
            tracing::debug!(pruned, "login attempt counts of ended windows deleted");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_distinct_and_compare_exactly() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), SECRET_LEN);
        assert_ne!(a, b);
        assert!(constant_time_eq(a.as_bytes(), a.clone().as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), &a.as_bytes()[1..]));
        assert!(!constant_time_eq(b"", a.as_bytes()));
    }
}
