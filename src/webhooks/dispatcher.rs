//! The dispatcher: a background task on every replica that delivers what the queue holds.
//!
//! It claims due deliveries (each the head of its endpoint's queue, so an endpoint gets its
//! events in order) with a lease, sends them concurrently, and records each attempt. A
//! notification (`warren_webhooks`, sent when deliveries are queued) wakes it at once;
//! otherwise it looks every `poll_interval`. A replica that dies mid-delivery loses nothing:
//! the lease runs out and another replica sends the delivery again (at-least-once). One that
//! is stopped finishes its attempts in flight first, for up to `drain`, and gives back the
//! leases of any it could not finish.

use std::collections::HashMap;
use std::future::pending;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::task::{self, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::queue::{self, Claimed, Outcome};
use super::send::{self, Attempt, Message};
use super::{signing, store, Settings};
use crate::telemetry::Meter;

const CHANNEL: &str = "warren_webhooks";

/// The dispatcher task; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    pool: PgPool,
    settings: Settings,
    meter: Meter,
}

impl Dispatcher {
    pub fn new(pool: PgPool, settings: Settings, meter: Meter) -> Self {
        Self {
            pool,
            settings,
            meter,
        }
    }

    /// Delivers until `shutdown`, then lets the deliveries in flight finish (see
    /// [`Dispatcher::drain`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = self.listen().await;
        let mut in_flight = InFlight::default();
        loop {
            let room = self
                .settings
                .concurrency
                .saturating_sub(in_flight.tasks.len());
            if room > 0 {
                match self.claim(room).await {
                    Ok(claimed) => {
                        for delivery in claimed {
                            in_flight.spawn(self.clone(), delivery);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "claiming webhook deliveries failed");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = in_flight.tasks.join_next_with_id(), if !in_flight.tasks.is_empty() => {
                    in_flight.finished(done, true);
                }
                _ = wake(&mut listener) => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        self.drain(in_flight).await;
        tracing::debug!("webhook dispatcher stopped");
    }

    /// Waits up to `settings.drain` for the deliveries in flight to finish and record their
    /// attempts (an attempt takes at most `settings.timeout`), then stops the rest and gives
    /// their leases back, so another replica sends them at once instead of after the lease.
    async fn drain(&self, mut in_flight: InFlight) {
        let deadline = tokio::time::sleep(self.settings.drain);
        tokio::pin!(deadline);
        while !in_flight.tasks.is_empty() {
            tokio::select! {
                _ = &mut deadline => break,
                Some(done) = in_flight.tasks.join_next_with_id() => in_flight.finished(done, true),
            }
        }
        in_flight.tasks.abort_all();
        // A task that finished before its abort has recorded its attempt; the others hold
        // their leases still.
        while let Some(done) = in_flight.tasks.join_next_with_id().await {
            in_flight.finished(done, false);
        }
        if in_flight.held.is_empty() {
            return;
        }
        let leases: Vec<(Uuid, Uuid)> = in_flight.held.into_values().collect();
        let released = async {
            let mut conn = self.pool.acquire().await?;
            queue::release(&mut conn, &leases).await
        };
        match released.await {
            Ok(n) => tracing::info!(
                released = n,
                "webhook deliveries still in flight at shutdown released"
            ),
            Err(err) => tracing::warn!(error = %err,
                "releasing webhook deliveries at shutdown failed; their leases will run out"),
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        match listener.listen(CHANNEL).await {
            Ok(()) => Some(listener),
            Err(err) => {
                tracing::info!(error = %err, "webhook dispatcher polls only: LISTEN failed");
                None
            }
        }
    }

    async fn claim(&self, room: usize) -> Result<Vec<Claimed>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let limit = i64::try_from(room).unwrap_or(i64::MAX);
        queue::claim(&mut conn, limit, self.settings.lease).await
    }

    /// One attempt of a claimed delivery, recorded.
    async fn deliver(self, claimed: Claimed) {
        let attempted_at = Utc::now();
        let attempt = match &claimed.body {
            Some(body) => self.send(&claimed, body).await,
            None => Attempt {
                error: Some("the event was deleted by retention before it was delivered".into()),
                ..Attempt::default()
            },
        };
        if claimed.body.is_some() {
            let result = if attempt.succeeded() {
                "succeeded"
            } else {
                "failed"
            };
            self.meter.record(|| {
                metrics::counter!("warren_webhook_attempts_total", "result" => result).increment(1);
                metrics::histogram!("warren_webhook_attempt_duration_seconds")
                    .record(attempt.latency.as_secs_f64());
            });
        }
        let gone = attempt.status == Some(410);
        let give_up = gone || claimed.body.is_none();
        let backoff = backoff(&self.settings, claimed.attempts + 1);
        if let Err(err) = self
            .record(&claimed, &attempt, attempted_at, give_up, gone, backoff)
            .await
        {
            tracing::warn!(delivery = %claimed.id, error = %err, "recording a webhook attempt failed");
        }
    }

    async fn send(&self, claimed: &Claimed, body: &[u8]) -> Attempt {
        let timestamp = Utc::now().timestamp();
        let mut secrets = vec![claimed.secret.as_str()];
        secrets.extend(claimed.previous_secret.as_deref());
        let signature = signing::signature_header(&secrets, &claimed.message_id, timestamp, body);
        let message = Message {
            url: &claimed.url,
            id: &claimed.message_id,
            timestamp,
            signature: &signature,
            body,
        };
        send::send(&message, self.settings.allow_private, self.settings.timeout).await
    }

    async fn record(
        &self,
        claimed: &Claimed,
        attempt: &Attempt,
        attempted_at: chrono::DateTime<Utc>,
        give_up: bool,
        gone: bool,
        backoff: Duration,
    ) -> Result<(), sqlx::Error> {
        let outcome = Outcome {
            succeeded: attempt.succeeded(),
            give_up,
            attempted_at,
            status_code: attempt.status.map(i32::from),
            latency_ms: i32::try_from(attempt.latency.as_millis()).unwrap_or(i32::MAX),
            error: attempt.error.as_deref(),
            response_body: attempt.body.as_deref(),
        };
        let mut tx = self.pool.begin().await?;
        let window = self.settings.retry_window;
        let settled = queue::settle(
            &mut tx,
            claimed.id,
            claimed.lease_token,
            backoff,
            window,
            &outcome,
        )
        .await?;
        let Some(settled) = settled else {
            tracing::info!(delivery = %claimed.id,
                "a webhook delivery was taken over (its lease ran out) or deleted mid-attempt");
            return Ok(());
        };
        tracing::debug!(delivery = %claimed.id, status = ?attempt.status, state = %settled.state,
            attempts = settled.attempts, "webhook attempt");
        let reason = match settled.state.as_str() {
            "failed" if gone => Some("the endpoint answered 410 Gone".to_owned()),
            "failed" if !give_up => Some(format!(
                "deliveries failed for the whole retry window ({} h); last error: {}",
                window.as_secs() / 3600,
                attempt.error.as_deref().unwrap_or("none")
            )),
            _ => None,
        };
        if let Some(reason) = &reason {
            store::disable(&mut tx, claimed.endpoint_id, reason).await?;
        }
        tx.commit().await?;
        if let Some(reason) = reason {
            tracing::info!(endpoint = %claimed.endpoint_id, %reason, "webhook endpoint disabled");
            self.meter.record(|| {
                metrics::counter!("warren_webhook_endpoints_disabled_total").increment(1)
            });
        }
        Ok(())
    }
}

/// The deliveries being sent, and the lease (delivery id, lease token) each task holds.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<()>,
    held: HashMap<task::Id, (Uuid, Uuid)>,
}

impl InFlight {
    fn spawn(&mut self, dispatcher: Dispatcher, delivery: Claimed) {
        let lease = (delivery.id, delivery.lease_token);
        let handle = self.tasks.spawn(dispatcher.deliver(delivery));
        self.held.insert(handle.id(), lease);
    }

    /// A task ended. Its lease is no longer held when it ran to the end (it recorded the
    /// attempt) or, with `any`, however it ended (a panic: the lease runs out).
    fn finished(&mut self, done: Result<(task::Id, ()), task::JoinError>, any: bool) {
        match done {
            Ok((id, ())) => {
                self.held.remove(&id);
            }
            Err(err) if any => {
                self.held.remove(&err.id());
            }
            Err(_) => {}
        }
    }
}

/// The next notification, or forever without a listener.
async fn wake(listener: &mut Option<PgListener>) {
    match listener {
        Some(l) => {
            if let Err(err) = l.recv().await {
                tracing::info!(error = %err, "webhook dispatcher lost its LISTEN; polling only");
                *listener = None;
            }
        }
        None => pending().await,
    }
}

/// The wait before attempt `attempt + 1` after `attempt` failed: the base doubled each time,
/// at most the maximum, with "equal jitter" (half of it fixed, half random) so endpoints that
/// failed together do not retry together.
pub fn backoff(settings: &Settings, attempt: i32) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let full = settings
        .backoff_base
        .saturating_mul(1 << doublings)
        .min(settings.backoff_max);
    let half = full / 2;
    half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum() {
        let settings = Settings::default();
        for attempt in 1..=40 {
            let full = (Duration::from_secs(5) * 2u32.pow((attempt as u32 - 1).min(20)))
                .min(settings.backoff_max);
            let wait = backoff(&settings, attempt);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
        assert!(backoff(&settings, 1) <= Duration::from_secs(5));
        assert!(backoff(&settings, 0) <= Duration::from_secs(5));
    }
}
