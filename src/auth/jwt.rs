//! Access tokens: HS256 JWTs with issuer, audience, expiry, subject, account and scopes.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Principal, Scopes};
use crate::http::error::AppError;

pub const ISSUER: &str = "warren";
pub const AUDIENCE: &str = "warren-api";
const SECRET_FILE: &str = "jwt-secret";
const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: Uuid,
    /// The account id, as 32 hex characters.
    acct: String,
    scopes: Vec<String>,
    iat: i64,
    exp: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// The configured secret, or the one kept in `data_dir` (generated on first use).
    pub fn load(configured: Option<&str>, data_dir: &Path, ttl: Duration) -> anyhow::Result<Self> {
        let secret = match configured {
            Some(secret) => secret.to_owned(),
            None => load_or_generate_secret(data_dir)?,
        };
        if secret.len() < MIN_SECRET_LEN {
            bail!("WARREN_JWT_SECRET must be at least {MIN_SECRET_LEN} characters long");
        }
        Ok(Self::new(secret.as_bytes(), ttl))
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        account_id: Uuid,
        scopes: Scopes,
    ) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id,
            acct: account_id.simple().to_string(),
            scopes: scopes.names(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    /// Verifies signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Principal, AppError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| {
            tracing::debug!(error = %err, "access token refused");
            AppError::Unauthorized("the access token is invalid or expired".into())
        })?;
        let account_id = Uuid::try_parse(&data.claims.acct)
            .map_err(|_| AppError::Unauthorized("the access token is invalid or expired".into()))?;
        Ok(Principal {
            user_id: data.claims.sub,
            account_id,
            scopes: Scopes::from_names(&data.claims.scopes),
        })
    }
}

fn load_or_generate_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(secret) => return Ok(secret.trim().to_owned()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = Alphanumeric.sample_string(&mut rand::thread_rng(), 64);
    crate::db::embedded::write_secret(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a JWT signing secret");
    Ok(secret)
}
