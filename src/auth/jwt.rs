//! Access tokens: HS256 JWTs with issuer, audience, expiry, subject, account and scopes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Principal, Scopes};
use crate::error::Error;

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

/// The signing key and the keys still accepted. Each key is known by its `kid` (a digest of
/// the secret), so after a rotation the tokens signed with a previous key keep working while
/// that key is listed in `WARREN_JWT_PREVIOUS_SECRETS` (until they expire, 15 minutes).
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("kid", &self.kid)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A key's id: the first 16 hex characters of the SHA-256 of the secret.
fn kid(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

impl JwtKeys {
    pub fn new(secret: &[u8], previous: &[&[u8]], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let decoding = std::iter::once(secret)
            .chain(previous.iter().copied())
            .map(|s| (kid(s), DecodingKey::from_secret(s)))
            .collect();
        Self {
            kid: kid(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding,
            validation,
            ttl,
        }
    }

    /// The configured secret, or the one kept in `data_dir` (generated on first use), and
    /// the previous secrets still accepted.
    pub fn load(
        configured: Option<&str>,
        previous: &[String],
        data_dir: &Path,
        ttl: Duration,
    ) -> anyhow::Result<Self> {
        let secret = match configured {
            Some(secret) => secret.to_owned(),
            None => load_or_generate_secret(data_dir)?,
        };
        if secret.len() < MIN_SECRET_LEN {
            bail!("WARREN_JWT_SECRET must be at least {MIN_SECRET_LEN} characters long");
        }
        let previous: Vec<&[u8]> = previous.iter().map(|s| s.as_bytes()).collect();
        Ok(Self::new(secret.as_bytes(), &previous, ttl))
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: Uuid, account_id: Uuid, scopes: Scopes) -> Result<String, Error> {
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
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        encode(&header, &claims, &self.encoding).map_err(Error::internal)
    }

    /// Verifies the key id, signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Principal, Error> {
        let refused = || Error::Unauthorized("the access token is invalid or expired".into());
        let header = decode_header(token).map_err(|_| refused())?;
        let key = self
            .decoding
            .get(header.kid.as_deref().unwrap_or(&self.kid))
            .ok_or_else(refused)?;
        let data = decode::<Claims>(token, key, &self.validation).map_err(|err| {
            tracing::debug!(error = %err, "access token refused");
            refused()
        })?;
        let account_id = Uuid::try_parse(&data.claims.acct).map_err(|_| refused())?;
        Ok(Principal {
            user_id: data.claims.sub,
            account_id,
            scopes: Scopes::from_names(&data.claims.scopes),
            token_id: None,
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
