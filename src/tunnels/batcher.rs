//! Group commit for heartbeats: the hot path.
//!
//! Every heartbeat request hands its renewal to the batcher and waits. A collector task takes
//! whatever renewals are waiting (up to `max_batch`), and a flush renews them all in ONE
//! conditional UPDATE ([`leases::renew_many`]). Each request is answered only after its batch
//! has committed, with its own tunnel's new row: a 200 still means durable, and a tunnel that
//! was not renewed (not live, lease run out, not the caller's) is reported back as `None` so
//! its request can answer 404/409 on its own.
//!
//! There is no fixed waiting window: while up to `max_in_flight` flushes are committing, new
//! renewals queue up, and the next batch takes them all. Under light load a heartbeat is
//! flushed at once; under heavy load batches grow with the commit latency.
//!
//! Flushes keep their connections between batches instead of going through the pool, whose
//! acquire pings the server first: that round trip was one more per batch on the hot path. A
//! kept connection may have died since (PostgreSQL restarted), so a batch that fails on one
//! because the server is unreachable is tried once more on a connection from the pool.
//!
//! Deadlocks: a batch locks its rows in tunnel-id order when PostgreSQL plans it as a nested
//! loop over the primary key, as it does on any table of some size, and two batches (from
//! this process or another replica) then cannot deadlock. On a tiny table PostgreSQL may scan
//! in heap order instead, and two batches can deadlock: the one PostgreSQL aborts steps aside
//! briefly and is tried again, up to three times. Renewing twice is harmless, since a renewal
//! only moves a lease forward. Every retry counts in `warren_heartbeat_batch_retries_total`,
//! labelled with its reason (`deadlock` or `reconnect`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::leases::{self, Renewal, RenewedRow};
use super::Tunnel;
use crate::error::{is_deadlock, is_unavailable, Error};
use crate::telemetry::Meter;

/// A renewed lease, and whether the reported connector rode along (it was unchanged).
#[derive(Clone, Debug)]
pub struct Renewed {
    pub tunnel: Tunnel,
    pub connector_seen: bool,
}

type Reply = oneshot::Sender<Result<Option<Renewed>, BatchError>>;

#[derive(Clone, Copy, Debug)]
enum BatchError {
    Unavailable,
    Failed,
}

impl From<BatchError> for Error {
    fn from(err: BatchError) -> Self {
        match err {
            BatchError::Unavailable => Error::Unavailable(sqlx::Error::PoolTimedOut),
            BatchError::Failed => Error::internal(anyhow::anyhow!("the heartbeat batch failed")),
        }
    }
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<(Renewal, Reply)>,
}

pub struct BatcherSettings {
    pub lease_ttl: Duration,
    /// The base domain the tunnels in the events are shown with.
    pub base_domain: String,
    pub max_batch: usize,
    pub max_in_flight: usize,
    pub meter: Meter,
}

impl Batcher {
    /// The handle and the collector task to run (until `stop`, then it drains the queue).
    pub fn new(
        pool: PgPool,
        settings: BatcherSettings,
    ) -> (
        Self,
        impl FnOnce(CancellationToken) -> tokio::task::JoinHandle<()>,
    ) {
        let (queue, rx) = mpsc::channel(settings.max_batch * 8);
        let run = move |stop: CancellationToken| tokio::spawn(collect(pool, settings, rx, stop));
        (Self { queue }, run)
    }

    /// Renews the lease; `Ok(None)` when nothing was renewed (see the module docs).
    pub async fn renew(&self, renewal: Renewal) -> Result<Option<Renewed>, Error> {
        let closed = || Error::Unavailable(sqlx::Error::PoolClosed);
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((renewal, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(Error::from)
    }
}

async fn collect(
    pool: PgPool,
    settings: BatcherSettings,
    mut rx: mpsc::Receiver<(Renewal, Reply)>,
    stop: CancellationToken,
) {
    let settings = Arc::new(settings);
    let kept = Kept::default();
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    loop {
        let first = tokio::select! {
            biased;
            item = rx.recv() => item,
            _ = stop.cancelled() => None,
        };
        let Some(first) = first else {
            break;
        };
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        // Everything that queued while we waited for a free flush rides along.
        let mut batch = vec![first];
        while batch.len() < settings.max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (pool, settings, kept) = (pool.clone(), settings.clone(), kept.clone());
        tokio::spawn(async move {
            flush(&pool, &kept, &settings, batch).await;
            drop(permit);
        });
    }
    // Shutting down: answer what is still queued, then wait for every flush to finish.
    rx.close();
    loop {
        let mut rest = Vec::new();
        while rest.len() < settings.max_batch {
            match rx.try_recv() {
                Ok(item) => rest.push(item),
                Err(_) => break,
            }
        }
        if rest.is_empty() {
            break;
        }
        flush(&pool, &kept, &settings, rest).await;
    }
    let _ = permits.acquire_many(settings.max_in_flight as u32).await;
}

/// How often a batch PostgreSQL aborted as a deadlock victim is tried again, and how long it
/// first waits (times the attempt).
const DEADLOCK_RETRIES: u32 = 3;
const DEADLOCK_BACKOFF: Duration = Duration::from_millis(10);

/// Connections flushes keep between batches (at most one per flush in flight).
type Kept = Arc<Mutex<Vec<PoolConnection<Postgres>>>>;

/// Renews the batch on a kept connection, or one from the pool; see the module docs for when
/// it is tried again.
async fn renew(
    pool: &PgPool,
    kept: &Kept,
    settings: &BatcherSettings,
    renewals: &[Renewal],
) -> Result<Vec<RenewedRow>, sqlx::Error> {
    let held = kept.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut fresh = held.is_none();
    let mut conn = match held {
        Some(conn) => conn,
        None => pool.acquire().await?,
    };
    let mut result = leases::renew_many(
        &mut conn,
        renewals,
        settings.lease_ttl,
        &settings.base_domain,
    )
    .await;
    let mut deadlocks = 0;
    while let Err(err) = &result {
        let reason = if is_deadlock(err) && deadlocks < DEADLOCK_RETRIES {
            // Step aside first, so the transaction that won can finish.
            deadlocks += 1;
            tracing::warn!("heartbeat batch chosen as a deadlock victim; trying it again");
            tokio::time::sleep(DEADLOCK_BACKOFF * deadlocks).await;
            "deadlock"
        } else if !fresh && is_unavailable(err) {
            fresh = true;
            drop(conn);
            conn = pool.acquire().await?;
            "reconnect"
        } else {
            break;
        };
        settings.meter.record(|| {
            metrics::counter!("warren_heartbeat_batch_retries_total", "reason" => reason)
                .increment(1)
        });
        result = leases::renew_many(
            &mut conn,
            renewals,
            settings.lease_ttl,
            &settings.base_domain,
        )
        .await;
    }
    if result.is_ok() {
        kept.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
    }
    result
}

async fn flush(
    pool: &PgPool,
    kept: &Kept,
    settings: &BatcherSettings,
    batch: Vec<(Renewal, Reply)>,
) {
    settings
        .meter
        .record(|| metrics::histogram!("warren_heartbeat_batch_size").record(batch.len() as f64));
    let renewals: Vec<Renewal> = batch.iter().map(|(r, _)| r.clone()).collect();
    let result = renew(pool, kept, settings, &renewals).await;
    match result {
        Ok(rows) => {
            let by_id: HashMap<Uuid, RenewedRow> =
                rows.into_iter().map(|r| (r.tunnel.id, r)).collect();
            for (renewal, reply) in batch {
                let row = by_id
                    .get(&renewal.tunnel_id)
                    .filter(|r| r.tunnel.account_id == renewal.account_id)
                    .map(|r| Renewed {
                        tunnel: r.tunnel.clone(),
                        connector_seen: renewal
                            .connector
                            .as_ref()
                            .is_some_and(|(id, _)| r.seen_connectors.contains(id)),
                    });
                let _ = reply.send(Ok(row));
            }
        }
        Err(err) => {
            let kind = match Error::from(err) {
                Error::Unavailable(err) => {
                    tracing::warn!(error = %err, "heartbeat batch: database unavailable");
                    BatchError::Unavailable
                }
                other => {
                    tracing::error!(error = ?other, "heartbeat batch failed");
                    BatchError::Failed
                }
            };
            for (_, reply) in batch {
                let _ = reply.send(Err(kind));
            }
        }
    }
}
