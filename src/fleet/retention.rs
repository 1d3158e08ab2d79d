//! Retention: a supervised background task that deletes raw snapshots older than 7 days,
//! and hourly rows whose hour ended more than 7 days ago.
//!
//! Each sweep deletes in bounded batches (one short statement each, `SKIP LOCKED`, so several
//! replicas share the work and no statement holds locks long enough to stall ingest), until
//! a batch comes back short. A failed sweep is logged and retried on the next tick (see
//! [`crate::tasks`]).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::store;
use crate::error::Error;
use crate::tasks::Periodic;

/// The retention task; cheap to clone.
#[derive(Clone)]
pub struct Retention {
    pub pool: PgPool,
    pub interval: Duration,
    /// How many rows one statement deletes.
    pub batch: i64,
}

impl Periodic for Retention {
    const NAME: &'static str = "fleet retention";

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn tick(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let (snapshots, hours) = sweep(&self.pool, self.batch, shutdown).await?;
        if snapshots + hours > 0 {
            tracing::info!(snapshots, hours, "fleet retention deleted old rows");
        }
        Ok(())
    }
}

/// Deletes everything past retention, `batch` rows per statement; (snapshots, hours) deleted.
pub async fn sweep(
    pool: &PgPool,
    batch: i64,
    shutdown: &CancellationToken,
) -> Result<(u64, u64), sqlx::Error> {
    let mut totals = (0, 0);
    loop {
        let mut conn = pool.acquire().await?;
        let snapshots = store::delete_old_snapshots(&mut conn, batch).await?;
        let hours = store::delete_old_hours(&mut conn, batch).await?;
        totals.0 += snapshots;
        totals.1 += hours;
        let short = (snapshots as i64) < batch && (hours as i64) < batch;
        if short || shutdown.is_cancelled() {
            return Ok(totals);
        }
    }
}
