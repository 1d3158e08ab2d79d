//! A fixed-window rate limiter for login attempts, per key (a client address, an email).
//!
//! Each process counts its own attempts: with several replicas behind a load balancer the
//! effective limit is at most replicas × the setting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Pruned of finished windows once it holds this many keys.
const PRUNE_AT: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `key`; `Err(seconds)` says when the next one is allowed.
    pub fn attempt(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= PRUNE_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let (start, count) = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(*start));
            return Err(wait.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_beyond_the_limit_are_refused_until_the_window_ends() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.attempt("a").is_ok());
        assert!(limiter.attempt("a").is_ok());
        let wait = limiter.attempt("a").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limiter.attempt("b").is_ok(), "keys are counted apart");
    }
}
