//! Waiting for something that happens on its own time (a background task's tick, another
//! process, a server coming back): poll with a deadline, never a fixed sleep. Waiting for the
//! database clock to pass a deadline is not among them: move the stored timestamps instead.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// What a poll of [`eventually`] found: `Some`/`Ok` ends the wait with its value; `None`, or
/// `Err` with what was seen instead (shown if the wait times out), polls again.
pub trait Polled {
    type Found;
    fn found(self) -> Result<Self::Found, String>;
}

impl<T> Polled for Option<T> {
    type Found = T;
    fn found(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl<T, E: Display> Polled for Result<T, E> {
    type Found = T;
    fn found(self) -> Result<T, String> {
        self.map_err(|seen| format!("; last seen: {seen}"))
    }
}

/// Polls `check` until it finds what it looks for, and returns that; panics naming `what` once
/// `limit` has passed. The pause between polls is a fiftieth of the limit (10 to 100 ms) and
/// never runs past the deadline, so the last poll is at the deadline, not after it.
pub async fn eventually<P, F, Fut>(limit: Duration, what: &str, mut check: F) -> P::Found
where
    P: Polled,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let deadline = Instant::now() + limit;
    let pause = (limit / 50).clamp(Duration::from_millis(10), Duration::from_millis(100));
    loop {
        let seen = match check().await.found() {
            Ok(found) => return found,
            Err(seen) => seen,
        };
        let now = Instant::now();
        assert!(
            now < deadline,
            "timed out after {limit:?} waiting for: {what}{seen}"
        );
        tokio::time::sleep(pause.min(deadline - now)).await;
    }
}
