//! Password hashing with argon2id, always off the async worker threads.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};

use crate::error::Error;

pub async fn hash(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    })
    .await
    .map_err(Error::internal)?
    .map_err(Error::Internal)
}

/// Checks `password` against `stored`. With no stored hash (unknown email) it still does the
/// same work against a fixed hash, so the answer takes as long either way.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| anyhow::anyhow!("stored password hash is unreadable: {e}"))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await
    .map_err(Error::internal)?
    .map_err(Error::Internal)
}

static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(b"warren-timing-equaliser", &salt)
        .expect("argon2 with default parameters hashes")
        .to_string()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_email_costs_the_same_argon2_work_as_a_wrong_password() {
        let stored = hash("the password".into()).await.unwrap();
        let real = PasswordHash::new(&stored).unwrap();
        let dummy = PasswordHash::new(&DUMMY_HASH).unwrap();
        assert_eq!(real.algorithm, dummy.algorithm);
        assert_eq!(real.version, dummy.version);
        assert_eq!(real.params, dummy.params);
        assert!(!verify("the password".into(), None).await.unwrap());
        assert!(!verify("wrong".into(), Some(stored.clone())).await.unwrap());
        assert!(verify("the password".into(), Some(stored)).await.unwrap());
    }
}
