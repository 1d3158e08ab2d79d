//! `warren agent`: the reference agent. It creates its tunnel (or adopts its own still-live
//! one after a crash), heartbeats at the interval the server asks for, reports its connector
//! and its device, recreates the tunnel with the same slug when the lease ran out during a
//! network cut, and ends the tunnel `stopped` when asked to stop (by a user through the API,
//! or by SIGINT/SIGTERM through `shutdown`).
//!
//! It holds no data-plane connections: it shows how an agent talks to the control plane, so
//! its connector reports `connections: []`.

pub mod client;
pub mod fleet;
pub mod system;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::remote::{Answer, Remote};
use client::{CallError, Client};

/// The header with the heartbeat interval in seconds, which agents follow.
pub const INTERVAL_HEADER: &str = "warren-heartbeat-interval";
/// The interval used until the server has said one.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How long shutting down may spend telling the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub server: String,
    pub token: String,
    pub port: u16,
    pub slug: Option<String>,
    /// The colo code in the device's fleet-status snapshots.
    pub colo: String,
    /// Where the device id is kept when `/etc/machine-id` is missing.
    pub state_dir: PathBuf,
    pub fleet_interval: Duration,
    pub max_backoff: Duration,
}

impl AgentConfig {
    pub fn new(server: &str, token: &str, port: u16) -> Self {
        Self {
            server: server.to_owned(),
            token: token.to_owned(),
            port,
            slug: None,
            colo: "LOCAL".to_owned(),
            state_dir: std::env::temp_dir().join("warren-agent"),
            fleet_interval: Duration::from_secs(60),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Runs the agent until its tunnel is stopped: by `shutdown` or by a user (`Ok`), or until
/// the server refuses its token or its request (`Err`).
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let remote = Remote::new(&config.server, Some(&config.token))?;
    let device = fleet::Device {
        id: system::device_id(&config.state_dir),
        colo: config.colo.clone(),
    };
    let fleet_stop = shutdown.child_token();
    let reporter = tokio::spawn(fleet::report(
        remote.clone(),
        device,
        config.fleet_interval,
        fleet_stop.clone(),
    ));
    let agent = Agent {
        client: Client::new(remote, config.max_backoff),
        connector: connector_report(),
        config,
    };
    let result = agent.run(&shutdown).await;
    fleet_stop.cancel();
    let _ = reporter.await;
    result
}

/// This process as a connector: a new id per process, started now.
fn connector_report() -> Value {
    json!({
        "id": Uuid::new_v4(),
        "arch": system::arch(),
        "version": env!("CARGO_PKG_VERSION"),
        "configVersion": 0,
        "features": ["ha-origin"],
        "runAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        // The reference agent holds no real data-plane connections.
        "connections": [],
    })
}

/// The tunnel the agent keeps alive.
struct Tunnel {
    id: String,
    slug: String,
    /// `None` for an adopted tunnel until its first heartbeat answer.
    status: Option<String>,
}

impl Tunnel {
    fn from_body(body: &Value) -> anyhow::Result<Self> {
        let text = |k: &str| body[k].as_str().map(str::to_owned);
        Ok(Self {
            id: text("id").context("the created tunnel has no id")?,
            slug: text("slug").context("the created tunnel has no slug")?,
            status: text("status"),
        })
    }

    /// Records the status a heartbeat answered, logging a change.
    fn observe(&mut self, status: &str) {
        if self.status.as_deref() != Some(status) {
            tracing::info!(tunnel_id = %self.id, slug = %self.slug, from = self.status.as_deref().unwrap_or("adopted"), to = status, "tunnel status changed");
            self.status = Some(status.to_owned());
        }
    }
}

/// What a heartbeat found.
enum Beat {
    Alive {
        interval: Option<Duration>,
    },
    /// The lease ran out (or the tunnel failed or was deleted): create it again.
    Lost(String),
    /// Someone stopped the tunnel for good.
    Stopped,
}

struct Agent {
    config: AgentConfig,
    client: Client,
    connector: Value,
}

impl Agent {
    async fn run(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut tunnel = match self.acquire(self.config.slug.as_deref(), shutdown).await {
            Err(Stop::Cancelled) => return Ok(()),
            other => other?,
        };
        let mut interval = DEFAULT_INTERVAL;
        loop {
            match self.heartbeat(&mut tunnel, shutdown).await {
                Ok(Beat::Alive { interval: asked }) => {
                    if let Some(asked) = asked.filter(|a| *a != interval) {
                        tracing::info!(
                            seconds = asked.as_secs(),
                            "following the server's heartbeat interval"
                        );
                        interval = asked;
                    }
                    if tunnel.status.as_deref() == Some("stopping") {
                        tracing::info!(tunnel_id = %tunnel.id, "the tunnel was asked to stop");
                        self.stop(&tunnel).await;
                        return Ok(());
                    }
                }
                Ok(Beat::Lost(why)) => {
                    tracing::warn!(tunnel_id = %tunnel.id, slug = %tunnel.slug, reason = %why, "tunnel lost; creating it again");
                    tunnel = match self.acquire(Some(&tunnel.slug), shutdown).await {
                        Err(Stop::Cancelled) => return Ok(()),
                        other => other?,
                    };
                    continue;
                }
                Ok(Beat::Stopped) => {
                    tracing::info!(tunnel_id = %tunnel.id, "the tunnel was stopped; exiting");
                    return Ok(());
                }
                Err(Stop::Cancelled) => {
                    self.stop(&tunnel).await;
                    return Ok(());
                }
                Err(Stop::Failed(err)) => return Err(err),
            }
            let pause = interval.mul_f64(rand::thread_rng().gen_range(0.8..=1.0));
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.stop(&tunnel).await;
                    return Ok(());
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Creates the tunnel, or adopts this account's live tunnel holding the slug.
    async fn acquire(
        &self,
        slug: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Tunnel, Stop> {
        let mut body = json!({ "requestedPort": self.config.port });
        if let Some(slug) = slug {
            body["slug"] = json!(slug);
        }
        // One key for every retry: an answer lost in a network cut does not make two tunnels.
        let key = Uuid::new_v4().to_string();
        let headers = [("idempotency-key", key.as_str())];
        let answer = self
            .client
            .call(Method::POST, "/v1/tunnels", Some(&body), &headers, cancel)
            .await?;
        match (answer.status, answer.code()) {
            (StatusCode::CREATED, _) => {
                let tunnel = Tunnel::from_body(&answer.body)?;
                tracing::info!(tunnel_id = %tunnel.id, slug = %tunnel.slug, port = self.config.port, "tunnel created");
                Ok(tunnel)
            }
            (StatusCode::CONFLICT, Some("slug_taken")) => {
                let Some(id) = answer.body["tunnelId"].as_str() else {
                    return Err(Stop::Failed(anyhow::anyhow!(
                        "{} (another account's tunnel holds it)",
                        answer.detail()
                    )));
                };
                tracing::info!(tunnel_id = %id, slug = ?slug, "adopting this account's live tunnel that holds the slug");
                Ok(Tunnel {
                    id: id.to_owned(),
                    slug: slug.unwrap_or_default().to_owned(),
                    status: None,
                })
            }
            _ => Err(Stop::Failed(answer.error().context("creating the tunnel"))),
        }
    }

    async fn heartbeat(
        &self,
        tunnel: &mut Tunnel,
        cancel: &CancellationToken,
    ) -> Result<Beat, Stop> {
        let body = json!({ "connector": self.connector });
        let path = format!("/v1/tunnels/{}/heartbeat", tunnel.id);
        let answer = self
            .client
            .call(Method::POST, &path, Some(&body), &[], cancel)
            .await?;
        if answer.status == StatusCode::OK {
            if let Some(status) = answer.body["status"].as_str() {
                tunnel.observe(status);
            }
            if let Some(slug) = answer.body["slug"].as_str() {
                slug.clone_into(&mut tunnel.slug);
            }
            return Ok(Beat::Alive {
                interval: interval_of(&answer),
            });
        }
        let status = answer.body["tunnelStatus"].as_str();
        if let Some(status) = status {
            tunnel.observe(status);
        }
        match (answer.status, answer.code(), status) {
            (StatusCode::CONFLICT, Some("tunnel_not_live"), Some("stopped")) => Ok(Beat::Stopped),
            (StatusCode::CONFLICT, Some("lease_expired" | "tunnel_not_live"), _)
            | (StatusCode::NOT_FOUND, _, _) => Ok(Beat::Lost(answer.detail())),
            _ => Err(Stop::Failed(answer.error().context("heartbeat refused"))),
        }
    }

    /// Ends the tunnel `stopped`: through `stopping` when it is still running.
    async fn stop(&self, tunnel: &Tunnel) {
        let never = CancellationToken::new();
        let path = format!("/v1/tunnels/{}", tunnel.id);
        let steps: &[&str] = match tunnel.status.as_deref() {
            Some("stopping") => &["stopped"],
            Some("stopped" | "failed") => &[],
            _ => &["stopping", "stopped"],
        };
        let work = async {
            let mut from = tunnel.status.as_deref().unwrap_or("adopted");
            for to in steps {
                let body = json!({ "status": to });
                match self
                    .client
                    .call(Method::PATCH, &path, Some(&body), &[], &never)
                    .await
                {
                    Ok(a) if a.is_success() => {
                        tracing::info!(tunnel_id = %tunnel.id, from, to, "tunnel status changed");
                        from = to;
                    }
                    Ok(a) => {
                        tracing::warn!(tunnel_id = %tunnel.id, to, detail = %a.detail(), "the server refused the transition")
                    }
                    Err(err) => {
                        tracing::warn!(tunnel_id = %tunnel.id, error = %err, "cannot stop the tunnel")
                    }
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, work).await.is_err() {
            tracing::warn!(tunnel_id = %tunnel.id, "gave up telling the server; the lease will expire");
        }
    }
}

/// `Warren-Heartbeat-Interval`, whole seconds ≥ 1.
fn interval_of(answer: &Answer) -> Option<Duration> {
    let secs: u64 = answer
        .headers
        .get(INTERVAL_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs >= 1).then(|| Duration::from_secs(secs))
}

/// Why the agent's loop ends early.
enum Stop {
    Cancelled,
    Failed(anyhow::Error),
}

impl From<CallError> for Stop {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Cancelled => Stop::Cancelled,
            err => Stop::Failed(err.into()),
        }
    }
}

impl From<anyhow::Error> for Stop {
    fn from(err: anyhow::Error) -> Self {
        Stop::Failed(err)
    }
}

impl From<Stop> for anyhow::Error {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Cancelled => anyhow::anyhow!("cancelled"),
            Stop::Failed(err) => err,
        }
    }
}
