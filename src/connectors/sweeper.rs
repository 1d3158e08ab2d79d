//! The connector sweeper: a supervised background task that deletes connectors and
//! connections whose reconnect grace has run out.
//!
//! Reads never depend on it (they compute "gone" from timestamps), so its pace only bounds
//! how long dead rows take space. Deleting is idempotent, so several replicas may sweep the
//! same database; a failed sweep is logged and retried on the next tick.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::store::{self, Clocks};

pub async fn run(pool: PgPool, interval: Duration, clocks: Clocks, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match sweep(&pool, clocks).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                "connector sweeper removed rows past their grace"
            ),
            Err(err) => tracing::warn!(error = %err, "connector sweep failed; retrying next tick"),
        }
    }
    tracing::debug!("connector sweeper stopped");
}

pub async fn sweep(pool: &PgPool, clocks: Clocks) -> Result<u64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    store::sweep(&mut conn, clocks).await
}
