//! Event retention: a periodic task that deletes events older than
//! `WARREN_EVENT_RETENTION_DAYS`, in bounded batches (several replicas may run it: deleting
//! twice deletes nothing). A reader whose position falls in what was deleted is told so (see
//! [`super::store::gap_after`]).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::store;
use crate::error::Error;
use crate::tasks::{in_batches, Periodic};

/// The retention task; cheap to clone.
#[derive(Clone)]
pub struct Retention {
    pub pool: PgPool,
    pub interval: Duration,
    pub retention: Duration,
    /// How many events one statement deletes.
    pub batch: i64,
}

impl Periodic for Retention {
    const NAME: &'static str = "event retention";

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn tick(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let deleted = in_batches(self.batch, shutdown, || async {
            let mut conn = self.pool.acquire().await?;
            store::delete_older_than(&mut conn, self.retention, self.batch).await
        })
        .await?;
        if deleted > 0 {
            tracing::info!(deleted, "event retention deleted old events");
        }
        Ok(())
    }
}
