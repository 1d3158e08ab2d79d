//! Starting and stopping the service: the same code for `warren serve` and for the tests.
//!
//! [`build_state`] wires the domain services from the configuration; [`Server::start`] binds
//! the listener, serves [`app`], and starts the background tasks beside it.

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
use crate::auth::{self, Auth};
use crate::config::Config;
use crate::connectors::store::Clocks;
use crate::connectors::{sweeper::Sweeper, Connectors};
use crate::db::gate::{self, Gate};
use crate::events::{self, hub::Hub, Events};
use crate::fleet::{retention::Retention, Fleet};
use crate::state::{AppState, Services};
use crate::tasks::{spawn_periodic, supervise};
use crate::telemetry::Meter;
use crate::tunnels::batcher::{Batcher, BatcherSettings};
use crate::tunnels::reaper::{self, Reaper};
use crate::tunnels::{self, Tunnels};
use crate::webhooks::{dispatcher::Dispatcher, Webhooks};

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

/// The heartbeat batcher's collector, to run beside the server (see [`Server::start`]).
pub type RunBatcher = Box<dyn FnOnce(CancellationToken) -> tokio::task::JoinHandle<()> + Send>;

/// The services for `config` on `pool` (already migrated), and the heartbeat batcher's
/// collector, which must run for heartbeats to be answered.
pub fn build_state(config: Config, pool: PgPool) -> anyhow::Result<(AppState, RunBatcher)> {
    let meter = Meter::new();
    let keys = JwtKeys::load(
        config.jwt_secret.as_deref(),
        &config.jwt_previous_secrets,
        &config.data_dir,
        config.access_token_ttl,
    )?;
    let auth = Auth::new(
        pool.clone(),
        keys,
        Arc::new(TokenCache::new()),
        auth::Settings {
            allow_registration: config.allow_registration,
            login_attempts_per_minute: config.login_attempts_per_minute,
            session_ttl: config.session_ttl,
        },
    );
    let (heartbeats, run_batcher) = Batcher::new(
        pool.clone(),
        BatcherSettings {
            lease_ttl: config.lease_ttl,
            max_batch: config.heartbeat_batch_max,
            max_in_flight: config.heartbeat_flushes_in_flight,
            base_domain: config.base_domain.clone(),
            meter: meter.clone(),
        },
    );
    let settings = tunnels::Settings {
        lease_ttl: config.lease_ttl,
        base_domain: config.base_domain.clone(),
        reconnect_grace: config.reconnect_grace,
    };
    let tunnels = Tunnels::new(pool.clone(), settings, heartbeats, meter.clone());
    let state = AppState::new(Services {
        connectors: Connectors::new(clocks(&config), tunnels.clone()),
        tunnels,
        fleet: Fleet::new(pool.clone()),
        events: Events::new(pool.clone(), Hub::new(pool.clone())),
        webhooks: Webhooks::new(pool.clone()),
        auth,
        gate: Gate::new(meter.clone()),
        db: pool,
        config: Arc::new(config),
        meter,
    });
    Ok((state, Box::new(run_batcher)))
}

fn clocks(config: &Config) -> Clocks {
    Clocks {
        lease_ttl: config.lease_ttl,
        grace: config.reconnect_grace,
    }
}

/// Starts the supervised background tasks of `state` in `tasks`, until `shutdown`.
pub fn spawn_tasks(state: &AppState, tasks: &mut JoinSet<()>, shutdown: &CancellationToken) {
    let (db, config) = (state.db.clone(), state.config.clone());
    let settings = reaper::Settings {
        interval: config.reaper_interval,
        batch: config.reaper_batch,
        lease_ttl: config.lease_ttl,
        stall_after: reaper::Settings::stall_after(config.lease_ttl, config.reaper_interval),
        history_retention: config.history_retention,
        idle_max: reaper::Settings::idle_max(config.lease_ttl, config.reaper_idle_max),
    };
    let reaper = Reaper::new(
        db.clone(),
        settings,
        &config.base_domain,
        state.meter.clone(),
    );
    spawn_periodic(tasks, shutdown, reaper);
    let sweeper = Sweeper {
        pool: db.clone(),
        interval: config.connector_sweep_interval,
        clocks: clocks(&config),
    };
    spawn_periodic(tasks, shutdown, sweeper);
    let retention = Retention {
        pool: db.clone(),
        interval: config.fleet_retention_interval,
        batch: config.fleet_retention_batch,
    };
    spawn_periodic(tasks, shutdown, retention);
    let event_retention = events::retention::Retention {
        pool: db.clone(),
        interval: config.event_retention_interval,
        retention: config.event_retention,
        batch: config.fleet_retention_batch,
    };
    spawn_periodic(tasks, shutdown, event_retention);
    let delivery_retention = crate::webhooks::retention::Retention {
        pool: db.clone(),
        interval: config.event_retention_interval,
        retention: config.event_retention,
        batch: config.fleet_retention_batch,
    };
    spawn_periodic(tasks, shutdown, delivery_retention);
    let sessions = auth::sessions::SessionSweep {
        pool: db.clone(),
        interval: config.session_sweep_interval,
    };
    spawn_periodic(tasks, shutdown, sessions);

    let dispatcher = Dispatcher::new(db.clone(), config.webhooks.clone(), state.meter.clone());
    tasks.spawn(supervise(
        "webhook dispatcher",
        shutdown.clone(),
        move |token| dispatcher.clone().run(token),
    ));
    let hub = state.events.hub();
    tasks.spawn(supervise(
        "event listener",
        shutdown.clone(),
        move |token| hub.clone().listen(token),
    ));
    let gate = state.gate.clone();
    let probe_db = db.clone();
    tasks.spawn(supervise(
        "database probe",
        shutdown.clone(),
        move |token| gate::probe(probe_db.clone(), gate.clone(), token),
    ));
    let revoked = state.auth.token_cache();
    tasks.spawn(supervise(
        "token revocations",
        shutdown.clone(),
        move |token| cache::listen(db.clone(), revoked.clone(), token),
    ));
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
        let (state, run_batcher) = build_state(config, pool)?;
        let listener = TcpListener::bind(state.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", state.config.listen))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        spawn_tasks(&state, &mut tasks, &shutdown);

        // The heartbeat batcher outlives the HTTP server's drain: requests still in flight
        // when SIGTERM comes wait for their batch, and the batcher flushes what is queued.
        let flush_stop = CancellationToken::new();
        let batcher = run_batcher(flush_stop.clone());
        let stop = shutdown.clone();
        let router = app(state.clone());
        let hub = state.events.hub();
        tasks.spawn(async move {
            let until = stop.clone();
            let draining = async move {
                until.cancelled().await;
                // Event streams never end by themselves: end them, so the drain can finish.
                hub.close();
            };
            if let Err(err) = serve(listener, router, draining).await {
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
