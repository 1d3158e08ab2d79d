//! The reaper: a supervised background task that expires leases that ran out.
//!
//! Each tick expires due leases in bounded batches (`FOR UPDATE SKIP LOCKED`, so several
//! replicas on one database share the work without transitioning anything twice, and no
//! batch holds locks long enough to stall heartbeats). A failed tick is logged and retried on
//! the next one; the task ends when `shutdown` is cancelled.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{idempotency, store};

/// What the reaper does besides expiring leases.
#[derive(Clone, Copy, Debug)]
pub struct Housekeeping {
    /// Stopped and failed tunnels older than this are deleted.
    pub history_retention: Duration,
}

pub async fn run(
    pool: PgPool,
    interval: Duration,
    batch: i64,
    housekeeping: Housekeeping,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match sweep(&pool, batch, housekeeping, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "reaper expired leases"),
            Err(err) => tracing::warn!(error = %err, "reaper sweep failed; retrying next tick"),
        }
    }
    tracing::debug!("reaper stopped");
}

/// Expires every due lease: two workers (one per core of a small machine; `SKIP LOCKED` keeps
/// their batches apart) each take batch after batch until one comes back short.
pub async fn sweep(
    pool: &PgPool,
    batch: i64,
    housekeeping: Housekeeping,
    shutdown: &CancellationToken,
) -> Result<usize, sqlx::Error> {
    let (a, b) = tokio::try_join!(drain(pool, batch, shutdown), drain(pool, batch, shutdown))?;
    // Housekeeping that rides along, one bounded batch a tick: idempotency keys past their
    // 24 hours, and tunnel history past its retention.
    let mut conn = pool.acquire().await?;
    idempotency::purge_expired(&mut conn, batch).await?;
    let pruned = store::prune_history(&mut conn, housekeeping.history_retention, batch).await?;
    if pruned > 0 {
        tracing::info!(pruned, "reaper deleted tunnel history past its retention");
    }
    Ok(a + b)
}

async fn drain(
    pool: &PgPool,
    batch: i64,
    shutdown: &CancellationToken,
) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        let mut conn = pool.acquire().await?;
        let expired = store::reap_batch(&mut conn, batch).await?;
        total += expired.len();
        for (id, status) in &expired {
            tracing::debug!(tunnel_id = %id, status, "lease expired");
            metrics::counter!("warren_reaper_transitions_total", "to" => status.clone())
                .increment(1);
        }
        if (expired.len() as i64) < batch || shutdown.is_cancelled() {
            return Ok(total);
        }
    }
}
