//! The reaper: a supervised background task that expires leases that ran out.
//!
//! Each tick stamps the lease clock, then one pass over the live set finds the due leases,
//! which are expired in bounded batches (`FOR UPDATE SKIP LOCKED`, so several replicas on one
//! database share the work without transitioning anything twice, and no batch holds locks
//! long enough to stall heartbeats). Leases only ever move later (a heartbeat, a new tunnel
//! and the outage grace all give at least what was there), so when the pass found nothing
//! due, the earliest live lease is a bound: no pass is needed before it ends. The pass
//! writes that moment into the lease clock ([`clock::skip_passes`], at most
//! [`Settings::idle_max`] ahead) and every replica's tick skips its pass until then, which
//! keeps the scan of a million live rows off the database most of the time, however many
//! replicas there are. A failed tick is logged and retried
//! on the next one (see [`crate::tasks`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{clock, idempotency, leases, store};
use crate::error::Error;
use crate::tasks::Periodic;
use crate::telemetry::Meter;

/// The most leases one tick expires; the rest wait for the next tick.
const MAX_PER_TICK: i32 = 1_000_000;

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
    /// The longest the reaper skips its pass over the live set when it knows that no lease
    /// ends sooner; zero makes it look on every tick.
    pub idle_max: Duration,
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

    /// A quarter of the TTL at most: a tunnel created in a transaction that began before a
    /// pass and committed after it holds a lease from that earlier start, and this leaves it
    /// three quarters of a TTL to commit in without its expiry being late.
    pub fn idle_max(lease_ttl: Duration, configured: Duration) -> Duration {
        configured.min(lease_ttl / 4)
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

    /// One tick: stamps the clock, expires the due leases unless a pass (of any replica)
    /// showed that none can be due yet, and does the housekeeping. How many leases expired.
    async fn sweep(&self, shutdown: &CancellationToken) -> Result<usize, sqlx::Error> {
        let tick = self.tick_clock().await?;
        let expired = if !tick.skip_pass {
            self.expire_due(shutdown).await?
        } else {
            0
        };
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
        Ok(expired)
    }

    /// One pass over the live set, then two workers (one per core of a small machine) take
    /// batch after batch of the due leases; `SKIP LOCKED` keeps their batches, and other
    /// replicas' reapers, apart. How many expired.
    async fn expire_due(&self, shutdown: &CancellationToken) -> Result<usize, sqlx::Error> {
        self.meter
            .record(|| metrics::counter!("warren_reaper_passes_total").increment(1));
        let due = {
            let mut conn = self.pool.acquire().await?;
            leases::due_leases(&mut conn, MAX_PER_TICK).await?
        };
        let mut batches: Vec<&[Uuid]> = due
            .ids
            .chunks(self.settings.batch.max(1) as usize)
            .collect();
        // Replicas that read the same due leases start on different batches.
        batches.shuffle(&mut rand::thread_rng());
        let next = AtomicUsize::new(0);
        let (a, b) = tokio::try_join!(
            self.drain(&batches, &next, shutdown),
            self.drain(&batches, &next, shutdown)
        )?;
        if let Some(idle) = idle_after(&due, a + b, &self.settings) {
            let until = due.looked_at + chrono::Duration::from_std(idle).unwrap_or_default();
            let mut conn = self.pool.acquire().await?;
            clock::skip_passes(&mut conn, until).await?;
        }
        Ok(a + b)
    }

    /// Stamps the lease clock, giving the outage grace when the reaper could not run.
    async fn tick_clock(&self) -> Result<clock::Tick, sqlx::Error> {
        let settings = self.settings;
        let mut tx = self.pool.begin().await?;
        let tick = clock::tick(&mut tx, settings.stall_after, settings.lease_ttl).await?;
        tx.commit().await?;
        if let Some(grace) = tick.grace {
            tracing::warn!(
                outage_ms = grace.outage.as_millis() as u64,
                until = %grace.until,
                "the reaper could not run for a while; every live lease holds for one full TTL"
            );
            self.meter
                .record(|| metrics::counter!("warren_outage_graces_total").increment(1));
        }
        Ok(tick)
    }

    /// Takes the next batch not yet taken until none is left (or shutdown).
    async fn drain(
        &self,
        batches: &[&[Uuid]],
        next: &AtomicUsize,
        shutdown: &CancellationToken,
    ) -> Result<usize, sqlx::Error> {
        let mut total = 0;
        while let Some(ids) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
            if shutdown.is_cancelled() {
                break;
            }
            let mut conn = self.pool.acquire().await?;
            let expired = leases::reap_batch(&mut conn, ids, &self.base_domain).await?;
            clock::touch(&mut conn).await?;
            total += expired.len();
            for (id, status) in &expired {
                tracing::debug!(tunnel_id = %id, status, "lease expired");
                self.meter.record(|| {
                    metrics::counter!("warren_reaper_transitions_total", "to" => status.clone())
                        .increment(1)
                });
            }
        }
        Ok(total)
    }
}

/// How long after a pass that found `pass` and expired `expired` leases the next pass may be
/// skipped. Only a pass that left nothing behind (not a lease past the limit, a batch left
/// at shutdown, or a due row that another transaction held or renewed) may be trusted.
fn idle_after(pass: &leases::DueLeases, expired: usize, settings: &Settings) -> Option<Duration> {
    let all_done = pass.ids.len() < MAX_PER_TICK as usize && expired == pass.ids.len();
    let idle = pass
        .next_due_in
        .filter(|_| all_done)?
        .min(settings.idle_max);
    (idle > settings.interval).then_some(idle)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(idle_max: Duration) -> Settings {
        Settings {
            interval: Duration::from_millis(500),
            batch: 100,
            lease_ttl: Duration::from_secs(60),
            stall_after: Duration::from_secs(20),
            history_retention: Duration::from_secs(86_400),
            idle_max,
        }
    }

    fn pass(due: usize, next_due_in: Option<u64>) -> leases::DueLeases {
        leases::DueLeases {
            ids: (0..due).map(|_| Uuid::new_v4()).collect(),
            looked_at: chrono::Utc::now(),
            next_due_in: next_due_in.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_pass_that_left_nothing_behind_is_trusted_until_the_earliest_lease_ends() {
        let s = settings(Duration::from_secs(10));
        assert_eq!(
            idle_after(&pass(0, Some(4)), 0, &s),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            idle_after(&pass(3, Some(4)), 3, &s),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            idle_after(&pass(0, Some(45)), 0, &s),
            Some(Duration::from_secs(10)),
            "never longer than idle_max"
        );
    }

    #[test]
    fn a_pass_that_left_leases_behind_or_saw_none_live_is_not_trusted() {
        let s = settings(Duration::from_secs(10));
        assert_eq!(
            idle_after(&pass(3, Some(4)), 2, &s),
            None,
            "one was held or renewed"
        );
        assert_eq!(
            idle_after(&pass(0, None), 0, &s),
            None,
            "no lease live, or on hold"
        );
        assert_eq!(
            idle_after(&pass(0, Some(0)), 0, &s),
            None,
            "one ends before the next tick"
        );
        assert_eq!(
            idle_after(&pass(0, Some(40)), 0, &settings(Duration::ZERO)),
            None
        );
    }

    #[test]
    fn idle_max_is_at_most_a_quarter_of_the_ttl() {
        let ttl = Duration::from_secs(60);
        assert_eq!(
            Settings::idle_max(ttl, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(
            Settings::idle_max(ttl, Duration::from_secs(3600)),
            Duration::from_secs(15)
        );
        assert_eq!(Settings::idle_max(ttl, Duration::ZERO), Duration::ZERO);
    }
}
