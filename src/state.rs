//! The one state every handler of every adapter receives: the domain services, and what the
//! HTTP layer itself needs (the configuration, the database gate, the metrics registry).

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::auth::Auth;
use crate::config::Config;
use crate::connectors::Connectors;
use crate::db::gate::Gate;
use crate::events::Events;
use crate::fleet::Fleet;
use crate::telemetry::Meter;
use crate::tunnels::Tunnels;
use crate::webhooks::Webhooks;

/// Cheap to clone: one reference count. Every request clones it once per extractor that reads
/// it, and a clone of eight separate handles showed up in the heartbeat profile.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub auth: Auth,
    pub tunnels: Tunnels,
    pub connectors: Connectors,
    pub fleet: Fleet,
    pub events: Events,
    pub webhooks: Webhooks,
    pub gate: Gate,
    pub meter: Meter,
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
