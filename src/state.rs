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

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub keys: Arc<JwtKeys>,
    pub tokens: Arc<TokenCache>,
    pub login_limiter: Arc<RateLimiter>,
    pub heartbeats: Batcher,
    pub gate: Gate,
}
