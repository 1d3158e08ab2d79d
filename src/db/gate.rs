//! The database gate: while the database is unreachable, requests are answered 503 at once.
//!
//! Without it every request would wait out the pool's acquire timeout, each retrying its own
//! connection: slow answers, piled-up connection attempts and queued requests holding memory.
//! The first request that finds the database gone closes the gate (its answer carries the
//! [`Unreachable`] marker); from then on the HTTP layer refuses database-backed requests
//! without touching the pool, and one probe task tries a fresh connection every
//! [`PROBE_EVERY`] until it succeeds and opens the gate again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Meter;

/// How often the probe tries the database while the gate is closed.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Marks a response that failed because the database could not be reached.
#[derive(Clone, Copy, Debug)]
pub struct Unreachable;

#[derive(Clone)]
pub struct Gate(Arc<Inner>);

struct Inner {
    closed: AtomicBool,
    wake: Notify,
    meter: Meter,
}

impl Gate {
    /// An open gate whose state `meter` shows as `warren_database_reachable`.
    pub fn new(meter: Meter) -> Self {
        Self(Arc::new(Inner {
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            meter,
        }))
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Closes the gate and wakes the probe; idempotent.
    pub fn close(&self) {
        if !self.0.closed.swap(true, Ordering::AcqRel) {
            tracing::warn!("the database is unreachable; answering 503 until it is back");
            self.0
                .meter
                .record(|| metrics::gauge!("warren_database_reachable").set(0.0));
            self.0.wake.notify_one();
        }
    }

    fn open(&self) {
        if self.0.closed.swap(false, Ordering::AcqRel) {
            tracing::info!("the database is reachable again");
        }
        self.0
            .meter
            .record(|| metrics::gauge!("warren_database_reachable").set(1.0));
    }

    async fn closed(&self) {
        loop {
            let notified = self.0.wake.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

/// The probe task: sleeps while the gate is open; while it is closed, tries a fresh
/// connection (never the pool, whose acquire would wait out its timeout) until one works.
pub async fn probe(pool: PgPool, gate: Gate, shutdown: CancellationToken) {
    gate.open();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = gate.closed() => {}
        }
        let options = pool.connect_options();
        let attempt = tokio::time::timeout(Duration::from_secs(1), async {
            let mut conn = PgConnection::connect_with(&options).await?;
            sqlx::query("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        });
        match attempt.await {
            Ok(Ok(())) => gate.open(),
            _ => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                }
            }
        }
    }
}
