//! Background work: supervised tasks that stop on the shutdown signal, and the one loop every
//! periodic task (reaper, connector sweeper, retention) runs in.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// Work done on a fixed interval. A tick that fails is logged and the next one runs on
/// schedule; a tick that panics restarts the task after a pause (see [`supervise`]).
pub trait Periodic: Clone + Send + Sync + 'static {
    /// The task's name in logs.
    const NAME: &'static str;

    fn interval(&self) -> Duration;

    /// One round of the work. Long rounds should stop early once `shutdown` is cancelled.
    fn tick(&self, shutdown: &CancellationToken) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Starts `task` in `tasks`, ticking until `shutdown`.
pub fn spawn_periodic<P: Periodic>(tasks: &mut JoinSet<()>, shutdown: &CancellationToken, task: P) {
    tasks.spawn(supervise(P::NAME, shutdown.clone(), move |token| {
        run_every(task.clone(), token)
    }));
}

async fn run_every<P: Periodic>(task: P, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(task.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Err(err) = task.tick(&shutdown).await {
            tracing::warn!(task = P::NAME, error = %err, "background task failed; retrying next tick");
        }
    }
    tracing::debug!(task = P::NAME, "background task stopped");
}

/// Runs `step` (one bounded batch of deletions, answering how many rows it deleted) until a
/// batch comes back short of `batch` or `shutdown`; how many were deleted in all.
pub async fn in_batches<F, Fut>(
    batch: i64,
    shutdown: &CancellationToken,
    mut step: F,
) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let n = step().await?;
        total += n;
        if i64::try_from(n).unwrap_or(i64::MAX) < batch || shutdown.is_cancelled() {
            return Ok(total);
        }
    }
}

/// Runs a background task until `shutdown`, restarting it (after a pause) if it panics.
pub async fn supervise<F, Fut>(name: &'static str, shutdown: CancellationToken, task: F)
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let handle = tokio::spawn(task(shutdown.child_token()));
        match handle.await {
            Ok(()) => return,
            Err(err) if err.is_panic() && !shutdown.is_cancelled() => {
                tracing::error!(task = name, "background task panicked; restarting it");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(_) => return,
        }
    }
}
