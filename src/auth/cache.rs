//! An in-memory cache of API-token lookups (token hash → principal), so the heartbeat path
//! costs no database round trip for authentication.
//!
//! Revocation takes effect at once on the process that revoked (it evicts before answering)
//! and, through PostgreSQL `LISTEN/NOTIFY` (a trigger on `api_tokens` notifies on every
//! delete), on every other process as soon as the notification arrives. While the listener
//! is not connected, notifications could be missed, so the cache is emptied and bypassed
//! until it is connected again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::Principal;

pub const CHANNEL: &str = "warren_token_revoked";
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone)]
struct Entry {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<Vec<u8>, Entry>>,
    listening: AtomicBool,
    /// Bumped by every eviction: a lookup that started before one may not fill the cache,
    /// since what it read may already be revoked.
    epoch: AtomicU64,
}

impl TokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached principal of a live token; `None` on a miss, an expired entry, or while
    /// the cache cannot be trusted.
    pub fn get(&self, hash: &[u8]) -> Option<Principal> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(hash)?;
        match entry.expires_at {
            Some(at) if at <= Utc::now() => None,
            _ => Some(entry.principal.clone()),
        }
    }

    /// Where a database lookup starts; pass it to [`TokenCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches what a lookup begun at `epoch` found, unless something was evicted since.
    pub fn insert(
        &self,
        epoch: u64,
        hash: Vec<u8>,
        principal: Principal,
        expires_at: Option<DateTime<Utc>>,
    ) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&hash) {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                principal,
                expires_at,
            },
        );
    }

    pub fn evict(&self, hash: &[u8]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(hash);
    }

    fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn set_listening(&self, on: bool) {
        if !on {
            self.clear();
        }
        self.listening.store(on, Ordering::Release);
    }
}

/// Keeps the cache honest: listens for revocations until `shutdown`.
pub async fn listen(pool: PgPool, cache: std::sync::Arc<TokenCache>, shutdown: CancellationToken) {
    loop {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "token revocation listener cannot connect; cache bypassed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        cache.set_listening(true);
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => {
                    cache.set_listening(false);
                    return;
                }
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => match hex::decode(notification.payload()) {
                    Ok(hash) => cache.evict(&hash),
                    Err(_) => cache.clear(),
                },
                // The connection dropped: anything may have been missed meanwhile.
                Ok(None) | Err(_) => {
                    cache.set_listening(false);
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
