//! Delivery log retention: a periodic task that deletes, in bounded batches, the deliveries
//! (with their attempts) that settled longer ago than the event retention, and those still
//! waiting on a disabled endpoint whose events retention has deleted anyway.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::tasks::{in_batches, Periodic};
use crate::time::millis;

/// The retention task; cheap to clone.
#[derive(Clone)]
pub struct Retention {
    pub pool: PgPool,
    pub interval: Duration,
    pub retention: Duration,
    /// How many deliveries one statement deletes.
    pub batch: i64,
}

impl Periodic for Retention {
    const NAME: &'static str = "webhook delivery retention";

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn tick(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let deleted = in_batches(self.batch, shutdown, || async {
            let mut conn = self.pool.acquire().await?;
            delete_older_than(&mut conn, self.retention, self.batch).await
        })
        .await?;
        if deleted > 0 {
            tracing::info!(deleted, "webhook retention deleted old deliveries");
        }
        Ok(())
    }
}

/// Deletes up to `limit` deliveries past `retention`; how many.
#[tracing::instrument(skip_all, err)]
async fn delete_older_than(
    conn: &mut PgConnection,
    retention: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let settled = sqlx::query!(
        "DELETE FROM webhook_deliveries WHERE id = ANY (ARRAY(
             SELECT id FROM webhook_deliveries
             WHERE state <> 'pending' AND finished_at < now() - $1::bigint * interval '1 millisecond'
             LIMIT $2))",
        millis(retention),
        limit
    )
    .execute(&mut *conn)
    .await?;
    let waiting = sqlx::query!(
        "DELETE FROM webhook_deliveries WHERE id = ANY (ARRAY(
             SELECT d.id FROM webhook_endpoints e
             JOIN webhook_deliveries d ON d.endpoint_id = e.id AND d.state = 'pending'
             WHERE NOT e.enabled AND d.created_at < now() - $1::bigint * interval '1 millisecond'
             LIMIT $2))",
        millis(retention),
        limit
    )
    .execute(conn)
    .await?;
    Ok(settled.rows_affected() + waiting.rows_affected())
}
