//! The auth service: registration, login, and authenticating a request's credentials.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::TokenCache;
use super::jwt::JwtKeys;
use super::ratelimit::{self, Limit, LOGIN_WINDOW};
use super::{password, tokens, users, Principal, Scopes};
use crate::error::Error;

const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 1024;

/// What the auth rules depend on.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Whether anyone may register (the first user always may).
    pub allow_registration: bool,
    /// Login attempts allowed per client address, and per email, in a minute.
    pub login_attempts_per_minute: u32,
    /// How long a dashboard session lasts from sign-in.
    pub session_ttl: Duration,
}

/// The auth service; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pub(super) db: PgPool,
    keys: Arc<JwtKeys>,
    pub(super) cache: Arc<TokenCache>,
    pub(super) settings: Arc<Settings>,
}

/// A registered user.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub id: Uuid,
    pub email: String,
    /// 32 lowercase hex characters, as Cloudflare writes account ids.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub account_id: String,
}

/// An access token from a login.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedIn {
    /// A JWT (HS256) carrying every scope.
    pub access_token: String,
    #[schema(pattern = "^Bearer$")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl Auth {
    pub fn new(db: PgPool, keys: JwtKeys, cache: Arc<TokenCache>, settings: Settings) -> Self {
        Self {
            db,
            keys: Arc::new(keys),
            cache,
            settings: Arc::new(settings),
        }
    }

    /// The cache of API-token lookups, which the revocation listener keeps honest.
    pub fn token_cache(&self) -> Arc<TokenCache> {
        self.cache.clone()
    }

    /// Registers a user with a new account. Open to anyone only when the server allows
    /// registration; the very first user may always register.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn register(&self, email: &str, password: String) -> Result<Registered, Error> {
        let email = email.trim().to_owned();
        validate_email(&email)?;
        validate_password(&password)?;
        let hash = password::hash(password).await?;

        let mut tx = self.db.begin().await?;
        users::lock_registrations(&mut tx).await?;
        if !self.settings.allow_registration && users::any_user_exists(&mut tx).await? {
            return Err(Error::Forbidden(
                "registration is closed on this server (WARREN_ALLOW_REGISTRATION=false)".into(),
            ));
        }
        let user = users::create_with_account(&mut tx, &email, &hash).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(Registered {
            id: user.id,
            email: user.email,
            account_id: user.account_id.simple().to_string(),
        })
    }

    /// Exchanges an email and password for an access token (see [`Auth::check_password`]).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: Option<&str>,
    ) -> Result<LoggedIn, Error> {
        let user = self.check_password(email, password, client).await?;
        Ok(LoggedIn {
            access_token: self.keys.issue(user.id, user.account_id, Scopes::all())?,
            token_type: "Bearer",
            expires_in: self.keys.ttl().as_secs(),
        })
    }

    /// The user with this email and password. Attempts are limited per client address and
    /// per email, both counted on every attempt (in the database, so across replicas), so
    /// that neither guessing one account's password from many addresses nor many accounts'
    /// from one gets far. Every way of
    /// signing in (a login token, a dashboard session) goes through here.
    pub(super) async fn check_password(
        &self,
        email: &str,
        password: String,
        client: Option<&str>,
    ) -> Result<users::UserCredentials, Error> {
        let keys = [
            format!("ip:{}", client.unwrap_or_default()),
            format!("email:{}", email.trim().to_lowercase()),
        ];
        let limit = Limit {
            attempts: self.settings.login_attempts_per_minute,
            window: LOGIN_WINDOW,
        };
        let user = {
            let mut conn = self.db.acquire().await?;
            if let Err(retry_after) = ratelimit::attempt(&mut conn, &keys, limit).await? {
                return Err(Error::RateLimited { retry_after });
            }
            users::credentials_by_email(&mut conn, email.trim()).await?
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = password::verify(password, stored).await?;
        match (ok, user) {
            (true, Some(user)) => Ok(user),
            _ => Err(Error::Unauthorized(
                "the email or password is incorrect".into(),
            )),
        }
    }

    /// Authenticates a bearer token: an API token (`wrn_…`, looked up in the cache first) or
    /// an access token (a JWT). Never a password check: this is on the heartbeat path.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal, Error> {
        if !token.starts_with(tokens::PREFIX) {
            return self.keys.verify(token);
        }
        let hash = tokens::digest(token);
        if let Some(principal) = self.cache.get(&hash) {
            return Ok(principal);
        }
        let epoch = self.cache.epoch();
        let mut conn = self.db.acquire().await?;
        let grant = tokens::principal_for(&mut conn, &hash)
            .await?
            .ok_or_else(|| Error::Unauthorized("the API token is invalid or revoked".into()))?;
        let principal = grant.principal;
        self.cache
            .insert(epoch, hash, principal.clone(), grant.expires_at);
        Ok(principal)
    }

    /// Authenticates Cloudflare's `X-Auth-Email` + `X-Auth-Key`: the key must be an API
    /// token of the user with that email.
    pub async fn authenticate_email_key(&self, email: &str, key: &str) -> Result<Principal, Error> {
        let mut conn = self.db.acquire().await?;
        tokens::principal_for_email_key(&mut conn, email, key)
            .await?
            .ok_or_else(|| {
                Error::Unauthorized("X-Auth-Email and X-Auth-Key do not match an API token".into())
            })
    }
}

/// Plain syntax: `local@domain.tld`, no spaces, at most 254 characters.
fn validate_email(email: &str) -> Result<(), Error> {
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "email",
            "email must be an address such as `name@example.com`",
        ))
    }
}

fn validate_password(password: &str) -> Result<(), Error> {
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        return Err(Error::invalid(
            "password",
            format!("password must be at least {MIN_PASSWORD} characters long"),
        ));
    }
    if len > MAX_PASSWORD {
        return Err(Error::invalid(
            "password",
            format!("password must be at most {MAX_PASSWORD} characters long"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_syntax_is_checked() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@.co", "a@b.co.",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
