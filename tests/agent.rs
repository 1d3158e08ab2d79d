//! `warren agent`, run in-process against a real server with a short lease.
mod common;

use std::time::{Duration, Instant};

use common::clock::{age_tunnel, as_if_down_for};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warren::agent::{self, AgentConfig};

const TTL: Duration = Duration::from_secs(3);

async fn app_with_ttl(ttl: Duration) -> TestApp {
    TestApp::spawn_with(|c| c.lease_ttl = ttl).await
}

/// A user and the API token an agent runs with.
async fn agent_token(app: &TestApp) -> (User, String) {
    let user = app.user().await;
    let token = app
        .api_token(&user, &["tunnels:write", "tunnels:heartbeat", "dex:write"])
        .await;
    (user, token)
}

struct Running {
    task: JoinHandle<anyhow::Result<()>>,
    shutdown: CancellationToken,
}

fn start_agent(base: &str, token: &str, slug: &str) -> Running {
    let mut config = AgentConfig::new(base, token, 3000);
    config.slug = Some(slug.to_owned());
    config.max_backoff = Duration::from_millis(800);
    config.state_dir = scratch_dir("warren-agent-state");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(agent::run(config, shutdown.clone()));
    Running { task, shutdown }
}

async fn list(app: &TestApp, token: &str, include_inactive: bool) -> Vec<Value> {
    let path = format!("/v1/tunnels?includeInactive={include_inactive}");
    let body = json_of(app.get(&path, token).await, StatusCode::OK).await;
    body.as_array().unwrap().clone()
}

/// The live tunnel with this slug, once it is `active`.
async fn active(app: &TestApp, token: &str, slug: &str) -> Value {
    eventually(Duration::from_secs(15), "an active tunnel", || async {
        list(app, token, false)
            .await
            .into_iter()
            .find(|t| t["slug"] == slug && t["status"] == "active")
    })
    .await
}

async fn show(app: &TestApp, token: &str, id: &str) -> Value {
    json_of(
        app.get(&format!("/v1/tunnels/{id}"), token).await,
        StatusCode::OK,
    )
    .await
}

async fn finished(running: Running) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(15), running.task)
        .await
        .expect("the agent ends")
        .expect("the agent does not panic")
}

/// Stops the server for `cut`, and starts another on the same database and address. By the
/// database's clocks the outage lasts `lasted`: what it has beyond `cut` is moved into the
/// past rather than waited for.
async fn restart(app: TestApp, ttl: Duration, cut: Duration, lasted: Duration) -> TestApp {
    let (addr, url, db) = (app.addr, app.database_url.clone(), app.db.clone());
    app.stop().await;
    tokio::time::sleep(cut).await;
    if lasted > cut {
        as_if_down_for(&db, lasted - cut).await;
    }
    TestApp::on_database(&url, |c| {
        c.lease_ttl = ttl;
        c.listen = addr;
    })
    .await
}

/// Waits until the agent's heartbeats renew tunnel `id` on the restarted server, still active.
async fn renewed_after_restart(app: &TestApp, token: &str, id: &Value) {
    let id = id.as_str().unwrap();
    let before = show(app, token, id).await["lease"]["lastHeartbeatAt"].clone();
    let what = "a heartbeat after the restart";
    eventually(Duration::from_secs(10), what, || async {
        let t = show(app, token, id).await;
        let renewed = t["status"] == "active" && t["lease"]["lastHeartbeatAt"] != before;
        if renewed {
            Ok(())
        } else {
            Err(t)
        }
    })
    .await;
}

/// The agent is still running; cancelling it ends its tunnel `stopped`.
async fn cancel_and_expect_stopped(running: Running, app: &TestApp, token: &str, id: &Value) {
    assert!(
        !running.task.is_finished(),
        "the agent must still be running"
    );
    running.shutdown.cancel();
    finished(running).await.unwrap();
    let t = show(app, token, id.as_str().unwrap()).await;
    assert_eq!(t["status"], "stopped", "{t}");
    assert!(t["stoppedAt"].is_string());
}

#[tokio::test]
async fn the_agent_creates_its_tunnel_heartbeats_at_the_servers_interval_and_reports_its_connector()
{
    let app = app_with_ttl(TTL).await;
    let (user, token) = agent_token(&app).await;
    let running = start_agent(&app.base, &token, "agent-basic");
    let tunnel = active(&app, &user.token, "agent-basic").await;
    assert_eq!(tunnel["requestedPort"], 3000);
    let id = tunnel["id"].as_str().unwrap().to_owned();

    // TTL 3 s → the server asks for a heartbeat every second; the agent's own default (5 s)
    // would leave the lease to run out.
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(4500) {
        let t = show(&app, &user.token, &id).await;
        assert_eq!(t["status"], "active", "{t}");
        seen.insert(t["lease"]["lastHeartbeatAt"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(seen.len() >= 4, "heartbeats seen: {seen:?}");

    let clients = json_of(
        app.get(&format!("/v1/tunnels/{id}/connections"), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    let clients = clients.as_array().unwrap();
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert!(clients[0]["arch"].as_str().unwrap().contains('_'));
    assert_eq!(clients[0]["version"], env!("CARGO_PKG_VERSION"));
    cancel_and_expect_stopped(running, &app, &user.token, &json!(id)).await;
}

#[tokio::test]
async fn cancelling_the_agent_ends_its_tunnel_stopped() {
    let app = app_with_ttl(TTL).await;
    let (user, token) = agent_token(&app).await;
    let running = start_agent(&app.base, &token, "agent-cancel");
    let id = active(&app, &user.token, "agent-cancel").await["id"].clone();
    cancel_and_expect_stopped(running, &app, &user.token, &id).await;
}

#[tokio::test]
async fn a_user_stopping_the_tunnel_makes_the_agent_confirm_stopped_and_exit() {
    let app = app_with_ttl(TTL).await;
    let (user, token) = agent_token(&app).await;
    let running = start_agent(&app.base, &token, "agent-asked");
    let id = active(&app, &user.token, "agent-asked").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let asked = app
        .patch(
            &format!("/v1/tunnels/{id}"),
            &user.token,
            json!({"status": "stopping"}),
        )
        .await;
    assert_eq!(json_of(asked, StatusCode::OK).await["status"], "stopping");
    finished(running).await.unwrap();
    assert_eq!(show(&app, &user.token, &id).await["status"], "stopped");
}

#[tokio::test]
async fn the_agent_keeps_its_tunnel_across_a_server_restart() {
    let ttl = Duration::from_secs(10);
    let app = app_with_ttl(ttl).await;
    let (user, token) = agent_token(&app).await;
    let running = start_agent(&app.base, &token, "agent-restart");
    let id = active(&app, &user.token, "agent-restart").await["id"].clone();
    let cut = Duration::from_secs(2);
    let app = restart(app, ttl, cut, cut).await;
    renewed_after_restart(&app, &user.token, &id).await;
    cancel_and_expect_stopped(running, &app, &user.token, &id).await;
}

#[tokio::test]
async fn a_tunnel_that_expired_during_a_network_cut_is_recreated_with_the_same_slug() {
    let app = app_with_ttl(TTL).await;
    let (user, token) = agent_token(&app).await;
    let link = Proxy::start(app.addr).await;
    let running = start_agent(&link.base, &token, "agent-cut");
    let old = active(&app, &user.token, "agent-cut").await["id"].clone();
    // The agent cannot reach Warren (which stays up) for longer than the lease: the lease
    // moves a TTL into the past, again should a heartbeat that was in flight when the link
    // was cut have renewed it, until it has run out.
    link.cut();
    let old_id = Uuid::parse_str(old.as_str().unwrap()).unwrap();
    eventually(TTL * 3, "the lease to run out during the cut", || async {
        let t = show(&app, &user.token, old.as_str().unwrap()).await;
        if t["status"] == "failed" {
            return Some(());
        }
        age_tunnel(&app.db, old_id, TTL).await;
        None
    })
    .await;
    link.restore();
    let new = eventually(Duration::from_secs(15), "a recreated tunnel", || async {
        list(&app, &user.token, false)
            .await
            .into_iter()
            .find(|t| t["slug"] == "agent-cut" && t["status"] == "active" && t["id"] != old)
    })
    .await;
    let old = show(&app, &user.token, old.as_str().unwrap()).await;
    assert_eq!(old["status"], "failed");
    assert_eq!(old["lastError"], "lease expired");
    cancel_and_expect_stopped(running, &app, &user.token, &new["id"]).await;
}

/// Warren itself was down for longer than the lease: the outage grace keeps the tunnel, and
/// the agent carries on with the same one.
#[tokio::test]
async fn an_agent_keeps_its_tunnel_through_a_warren_outage_longer_than_the_lease() {
    let app = app_with_ttl(TTL).await;
    let (user, token) = agent_token(&app).await;
    let running = start_agent(&app.base, &token, "agent-outage");
    let id = active(&app, &user.token, "agent-outage").await["id"].clone();
    let lasted = TTL + Duration::from_secs(2);
    let app = restart(app, TTL, Duration::from_secs(1), lasted).await;
    renewed_after_restart(&app, &user.token, &id).await;
    cancel_and_expect_stopped(running, &app, &user.token, &id).await;
}

#[tokio::test]
async fn an_agent_restarted_after_a_crash_adopts_its_live_tunnel() {
    let app = app_with_ttl(TTL).await;
    let (user, token) = agent_token(&app).await;
    let crashed = start_agent(&app.base, &token, "agent-adopt");
    let id = active(&app, &user.token, "agent-adopt").await["id"].clone();
    // A crash: no cleanup, the lease still runs.
    crashed.task.abort();
    let running = start_agent(&app.base, &token, "agent-adopt");
    // Well past the lease: only the second agent's heartbeats keep the same tunnel alive.
    tokio::time::sleep(TTL + Duration::from_secs(2)).await;
    let live = list(&app, &user.token, false).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["id"], id);
    assert_eq!(live[0]["status"], "active");
    cancel_and_expect_stopped(running, &app, &user.token, &id).await;
}

#[tokio::test]
async fn an_agent_whose_token_is_refused_ends_with_the_servers_reason() {
    let app = app_with_ttl(TTL).await;
    let running = start_agent(&app.base, "wrn_not-a-real-token", "agent-refused");
    let err = finished(running).await.unwrap_err();
    assert!(
        err.to_string().contains("refused the agent's token"),
        "{err:#}"
    );
}

#[tokio::test]
async fn the_agent_reports_its_device_fleet_status() {
    let app = app_with_ttl(TTL).await;
    let (user, token) = agent_token(&app).await;
    let mut config = AgentConfig::new(&app.base, &token, 3000);
    config.slug = Some("agent-fleet".to_owned());
    config.colo = "FRA".to_owned();
    config.state_dir = scratch_dir("warren-agent-state");
    let device = agent::system::device_id(&config.state_dir);
    let shutdown = CancellationToken::new();
    let running = Running {
        task: tokio::spawn(agent::run(config, shutdown.clone())),
        shutdown,
    };
    let id = active(&app, &user.token, "agent-fleet").await["id"].clone();
    let path = format!("/v1/fleet-status/devices?deviceId={device}");
    let snapshot = eventually(Duration::from_secs(10), "a fleet snapshot", || async {
        let body = json_of(app.get(&path, &user.token).await, StatusCode::OK).await;
        body["result"].as_array().and_then(|r| r.first().cloned())
    })
    .await;
    assert_eq!(snapshot["deviceId"], device.to_string(), "{snapshot}");
    assert_eq!(snapshot["colo"], "FRA", "{snapshot}");
    assert_eq!(snapshot["mode"], "tunnel", "{snapshot}");
    assert_eq!(snapshot["status"], "connected", "{snapshot}");
    assert_eq!(snapshot["version"], env!("CARGO_PKG_VERSION"), "{snapshot}");
    // Measured from the OS (this test runs on Linux).
    for field in ["cpuPct", "ramUsedPct", "ramAvailableKb", "diskUsagePct"] {
        assert!(snapshot[field].is_number(), "{field}: {snapshot}");
    }
    cancel_and_expect_stopped(running, &app, &user.token, &id).await;
}
