//! The one state every handler receives.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::auth::cache::TokenCache;
use crate::auth::jwt::JwtKeys;
use crate::auth::ratelimit::RateLimiter;
use crate::config::Config;
use crate::db::gate::Gate;
use crate::tunnels::batcher::Batcher;

/// Cheap to clone: one reference count. Every request clones it once per extractor that reads
/// it, and a clone of eight separate handles showed up in the heartbeat profile.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub keys: Arc<JwtKeys>,
    pub tokens: Arc<TokenCache>,
    pub login_limiter: Arc<RateLimiter>,
    pub heartbeats: Batcher,
    pub gate: Gate,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
