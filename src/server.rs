//! Starting and stopping the service: the same code for `warren serve` and for the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::auth::cache::{self, TokenCache};
use crate::auth::jwt::JwtKeys;
use crate::auth::ratelimit::RateLimiter;
use crate::config::Config;
use crate::connectors::store::Clocks;
use crate::connectors::sweeper;
use crate::db::gate::{self, Gate};
use crate::fleet;
use crate::state::{AppState, Services};
use crate::tunnels::batcher::{Batcher, BatcherSettings};
use crate::tunnels::reaper;

/// The router for a state.
pub fn app(state: AppState) -> Router {
    crate::http::router(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A running Warren: the HTTP server and its supervised background tasks.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Server {
    /// Builds the state on `pool` (already migrated), binds `config.listen`, and starts
    /// serving and the background tasks.
    pub async fn start(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        crate::http::metrics::handle();
        let keys = JwtKeys::load(
            config.jwt_secret.as_deref(),
            &config.jwt_previous_secrets,
            &config.data_dir,
            config.access_token_ttl,
        )?;
        let config_attempts = config.login_attempts_per_minute;
        let (heartbeats, run_batcher) = Batcher::new(
            pool.clone(),
            BatcherSettings {
                lease_ttl: config.lease_ttl,
                max_batch: config.heartbeat_batch_max,
                max_in_flight: config.heartbeat_flushes_in_flight,
            },
        );
        let state = AppState::new(Services {
            db: pool,
            config: Arc::new(config),
            keys: Arc::new(keys),
            tokens: Arc::new(TokenCache::new()),
            login_limiter: Arc::new(RateLimiter::new(
                config_attempts,
                std::time::Duration::from_secs(60),
            )),
            heartbeats,
            gate: Gate::default(),
        });
        let listener = TcpListener::bind(state.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", state.config.listen))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let (db, config) = (state.db.clone(), state.config.clone());
        tasks.spawn(supervise("reaper", shutdown.clone(), move |token| {
            let settings = reaper::Settings {
                interval: config.reaper_interval,
                batch: config.reaper_batch,
                lease_ttl: config.lease_ttl,
                stall_after: reaper::Settings::stall_after(
                    config.lease_ttl,
                    config.reaper_interval,
                ),
                history_retention: config.history_retention,
            };
            reaper::run(db.clone(), settings, token)
        }));

        let (db, config) = (state.db.clone(), state.config.clone());
        let clocks = Clocks {
            lease_ttl: config.lease_ttl,
            grace: config.reconnect_grace,
        };
        tasks.spawn(supervise(
            "connector sweeper",
            shutdown.clone(),
            move |token| sweeper::run(db.clone(), config.connector_sweep_interval, clocks, token),
        ));

        let (db, config) = (state.db.clone(), state.config.clone());
        tasks.spawn(supervise(
            "fleet-retention",
            shutdown.clone(),
            move |token| {
                fleet::retention::run(
                    db.clone(),
                    config.fleet_retention_interval,
                    config.fleet_retention_batch,
                    token,
                )
            },
        ));

        let (db, gate) = (state.db.clone(), state.gate.clone());
        tasks.spawn(supervise(
            "database probe",
            shutdown.clone(),
            move |token| gate::probe(db.clone(), gate.clone(), token),
        ));

        let (db, tokens) = (state.db.clone(), state.tokens.clone());
        tasks.spawn(supervise(
            "token-revocations",
            shutdown.clone(),
            move |token| cache::listen(db.clone(), tokens.clone(), token),
        ));

        // The heartbeat batcher outlives the HTTP server's drain: requests still in flight
        // when SIGTERM comes wait for their batch, and the batcher flushes what is queued.
        let flush_stop = CancellationToken::new();
        let batcher = run_batcher(flush_stop.clone());

        let stop = shutdown.clone();
        let router = app(state.clone());
        tasks.spawn(async move {
            let until = stop.clone();
            if let Err(err) = serve(listener, router, async move { until.cancelled().await }).await
            {
                tracing::error!(error = %err, "HTTP server failed");
            }
            flush_stop.cancel();
            if let Err(err) = batcher.await {
                tracing::error!(error = %err, "the heartbeat batcher panicked");
            }
            // Whatever ended the server ends the background tasks too.
            stop.cancel();
        });
        tracing::info!(%addr, "warren is listening");
        Ok(Self {
            addr,
            state,
            shutdown,
            tasks,
        })
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, drains in-flight requests, stops the background tasks.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the server's token is cancelled and everything has finished.
    pub async fn stop_when_cancelled(mut self) {
        self.wait().await;
    }

    async fn wait(&mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(err) = result {
                tracing::error!(error = %err, "a background task panicked");
            }
        }
    }
}

/// Runs a background task until `shutdown`, restarting it (after a pause) if it panics.
async fn supervise<F, Fut>(name: &'static str, shutdown: CancellationToken, task: F)
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
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
            Err(_) => return,
        }
    }
}
