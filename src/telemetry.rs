//! Tracing setup (`RUST_LOG`, default `info`; plain text or JSON lines) and each server's
//! metrics registry.

use std::io::IsTerminal;
use std::sync::Arc;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a file or a log collector.
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The metrics of one running Warren: a Prometheus registry of its own.
///
/// Each server owns one, so that two servers in one process (replicas under test) never read
/// each other's counters. Code that counts something records through it:
/// `meter.record(|| metrics::counter!("warren_…").increment(1))`; `GET /metrics` renders it.
#[derive(Clone)]
pub struct Meter(Arc<PrometheusRecorder>);

impl Meter {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("warren_http_request_duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("warren_heartbeat_batch_size".into()),
                    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("warren_webhook_attempt_duration_seconds".into()),
                    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        Self(Arc::new(recorder))
    }

    /// Runs `f` with this meter as the recorder of the `metrics` macros it calls.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.0, f)
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        let handle = self.0.handle();
        handle.run_upkeep();
        handle.render()
    }
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}
