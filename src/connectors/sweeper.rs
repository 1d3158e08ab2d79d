//! The connector sweeper: a supervised background task that deletes connectors and
//! connections whose reconnect grace has run out. A connector is reported disconnected
//! (`connector.disconnected.v1`) only then, so a connector that drops and comes back within
//! the grace causes no event at all.
//!
//! Reads never depend on it (they compute "gone" from timestamps), so its pace only bounds
//! how long dead rows take space. Deleting is idempotent, so several replicas may sweep the
//! same database; a failed sweep is logged and retried on the next tick (see [`crate::tasks`]).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::store::{self, Clocks};
use crate::error::Error;
use crate::events::{self, Actor, NewEvent};
use crate::tasks::Periodic;

/// The sweeper task; cheap to clone.
#[derive(Clone)]
pub struct Sweeper {
    pub pool: PgPool,
    pub interval: Duration,
    pub clocks: Clocks,
}

impl Sweeper {
    /// Deletes what is past its grace now, logging `connector.disconnected.v1` for each
    /// connector; how many rows went.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let connectors = store::sweep_connectors(&mut tx, self.clocks).await?;
        let connections = store::sweep_connections(&mut tx, self.clocks).await?;
        let events: Vec<NewEvent> = connectors
            .iter()
            .map(|gone| gone.event(Actor::Reaper))
            .collect();
        events::store::append(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(connectors.len() as u64 + connections)
    }
}

impl Periodic for Sweeper {
    const NAME: &'static str = "connector sweeper";

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn tick(&self, _shutdown: &CancellationToken) -> Result<(), Error> {
        let removed = self.sweep().await?;
        if removed > 0 {
            tracing::info!(removed, "connector sweeper removed rows past their grace");
        }
        Ok(())
    }
}
