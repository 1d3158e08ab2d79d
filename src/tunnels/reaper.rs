//! The reaper: a supervised background task that expires leases that ran out.
//!
//! Each tick expires due leases in bounded batches (`FOR UPDATE SKIP LOCKED`, so several
//! replicas on one database share the work without transitioning anything twice, and no
//! batch holds locks long enough to stall heartbeats). A failed tick is logged and retried on
//! the next one (see [`crate::tasks`]).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{clock, idempotency, leases, store};
use crate::error::Error;
use crate::tasks::Periodic;
use crate::telemetry::Meter;

/// How the reaper runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub interval: Duration,
    /// How many leases one statement expires.
    pub batch: i64,
    pub lease_ttl: Duration,
    /// A reaper that could not run for longer than this was down: the next tick gives every
    /// live lease one full TTL (the outage grace, see [`clock`]).
    pub stall_after: Duration,
    /// Stopped and failed tunnels older than this are deleted.
    pub history_retention: Duration,
}

impl Settings {
    /// An outage shorter than a third of the TTL cannot cost a healthy agent its lease (it
    /// renews every TTL/3 and its lease has two thirds left); a tick must also not count as a
    /// stall just because the reaper ticks slowly.
    pub fn stall_after(lease_ttl: Duration, interval: Duration) -> Duration {
        (lease_ttl / 3)
            .max(interval * 10)
            .max(Duration::from_secs(1))
    }
}

/// The reaper task; cheap to clone.
#[derive(Clone)]
pub struct Reaper {
    pool: PgPool,
    settings: Settings,
    /// The base domain the tunnels in the events are shown with.
    base_domain: Arc<str>,
    meter: Meter,
}

impl Reaper {
    pub fn new(pool: PgPool, settings: Settings, base_domain: &str, meter: Meter) -> Self {
        Self {
            pool,
            settings,
            base_domain: base_domain.into(),
            meter,
        }
    }

    /// Expires every due lease now: two workers (one per core of a small machine;
    /// `SKIP LOCKED` keeps their batches apart) each take batch after batch until one comes
    /// back short. How many expired.
    pub async fn sweep(&self, shutdown: &CancellationToken) -> Result<usize, sqlx::Error> {
        self.tick_clock().await?;
        let (a, b) = tokio::try_join!(self.drain(shutdown), self.drain(shutdown))?;
        // Housekeeping that rides along, one bounded batch a tick: idempotency keys past
        // their 24 hours, and tunnel history past its retention.
        let batch = self.settings.batch;
        let mut conn = self.pool.acquire().await?;
        idempotency::purge_expired(&mut conn, batch).await?;
        let pruned =
            store::prune_history(&mut conn, self.settings.history_retention, batch).await?;
        if pruned > 0 {
            tracing::info!(pruned, "reaper deleted tunnel history past its retention");
        }
        Ok(a + b)
    }

    /// Stamps the lease clock, giving the outage grace when the reaper could not run.
    async fn tick_clock(&self) -> Result<(), sqlx::Error> {
        let settings = self.settings;
        let mut tx = self.pool.begin().await?;
        let grace = clock::tick(&mut tx, settings.stall_after, settings.lease_ttl).await?;
        tx.commit().await?;
        if let Some(grace) = grace {
            tracing::warn!(
                outage_ms = grace.outage.as_millis() as u64,
                extended = grace.extended,
                "the reaper could not run for a while; every live lease gets one full TTL"
            );
            self.meter
                .record(|| metrics::counter!("warren_outage_graces_total").increment(1));
        }
        Ok(())
    }

    async fn drain(&self, shutdown: &CancellationToken) -> Result<usize, sqlx::Error> {
        let batch = self.settings.batch;
        let mut total = 0;
        loop {
            let mut conn = self.pool.acquire().await?;
            let expired = leases::reap_batch(&mut conn, batch, &self.base_domain).await?;
            clock::touch(&mut conn).await?;
            total += expired.len();
            for (id, status) in &expired {
                tracing::debug!(tunnel_id = %id, status, "lease expired");
                self.meter.record(|| {
                    metrics::counter!("warren_reaper_transitions_total", "to" => status.clone())
                        .increment(1)
                });
            }
            if (expired.len() as i64) < batch || shutdown.is_cancelled() {
                return Ok(total);
            }
        }
    }
}

impl Periodic for Reaper {
    const NAME: &'static str = "reaper";

    fn interval(&self) -> Duration {
        self.settings.interval
    }

    async fn tick(&self, shutdown: &CancellationToken) -> Result<(), Error> {
        let expired = self.sweep(shutdown).await?;
        if expired > 0 {
            tracing::info!(expired, "reaper expired leases");
        }
        Ok(())
    }
}
