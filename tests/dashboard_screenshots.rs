//! Screenshots of the dashboard's main pages in a real browser, over a small made-up fleet:
//! checked to be PNGs every run, and written to `docs/` (which the README shows) when
//! `WARREN_UPDATE_SCREENSHOTS=1`. Returns with a notice when no browser is installed (see
//! `common::browser`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::fleet::{ingest, rfc3339};
use common::receiver::Receiver;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const EMAIL: &str = "ada@example.com";

/// Moves a tunnel's creation and logged transitions `hours` into the past (its lease stays).
async fn history(app: &TestApp, id: &str, created_hours: f64, transitions_hours: &[(&str, f64)]) {
    sqlx::query(
        "UPDATE tunnels SET created_at = now() - $2 * interval '1 hour' WHERE id = $1::uuid",
    )
    .bind(id)
    .bind(created_hours)
    .execute(&app.db)
    .await
    .unwrap();
    for (to, hours) in transitions_hours {
        sqlx::query(
            "UPDATE tunnel_transitions SET at = now() - $3 * interval '1 hour'
             WHERE tunnel_id = $1::uuid AND to_status = $2",
        )
        .bind(id)
        .bind(to)
        .bind(hours)
        .execute(&app.db)
        .await
        .unwrap();
        if *to == "failed" || *to == "stopped" {
            sqlx::query("UPDATE tunnels SET stopped_at = now() - $2 * interval '1 hour' WHERE id = $1::uuid")
                .bind(id)
                .bind(hours)
                .execute(&app.db)
                .await
                .unwrap();
        }
    }
}

async fn tunnel(app: &TestApp, token: &str, slug: &str, port: u16) -> String {
    let body = json!({"slug": slug, "requestedPort": port});
    app.tunnel(token, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn beat(app: &TestApp, token: &str, id: &str, body: Value) {
    let path = format!("/v1/tunnels/{id}/heartbeat");
    json_of(app.post(&path, token, body).await, StatusCode::OK).await;
}

async fn patch(app: &TestApp, token: &str, id: &str, body: Value) {
    json_of(
        app.patch(&format!("/v1/tunnels/{id}"), token, body).await,
        StatusCode::OK,
    )
    .await;
}

fn connector(version: &str, colos: &[&str]) -> Value {
    let conns: Vec<Value> = colos
        .iter()
        .map(|c| json!({"id": Uuid::new_v4(), "coloName": c, "openedAt": rfc3339(chrono::Utc::now())}))
        .collect();
    json!({"connector": {"id": Uuid::new_v4(), "arch": "linux_amd64", "version": version,
        "features": ["ha-origin"], "runAt": rfc3339(chrono::Utc::now()), "connections": conns}})
}

/// Tunnels in every state, with some history; a fleet of devices reporting for a day.
async fn fleet(app: &TestApp, token: &str) -> String {
    let api = tunnel(app, token, "api", 8080).await;
    beat(app, token, &api, connector("2026.3.1", &["FRA", "AMS"])).await;
    beat(app, token, &api, connector("2026.3.1", &["FRA", "CDG"])).await;
    history(app, &api, 18.0, &[("active", 17.9)]).await;
    let web = tunnel(app, token, "web", 3000).await;
    beat(app, token, &web, connector("2026.3.0", &["LHR"])).await;
    history(app, &web, 6.0, &[("active", 5.95)]).await;
    tunnel(app, token, "staging", 5173).await;
    let batch = tunnel(app, token, "batch-jobs", 9000).await;
    beat(app, token, &batch, json!({})).await;
    patch(
        app,
        token,
        &batch,
        json!({"status": "failed", "lastError": "lease expired"}),
    )
    .await;
    history(app, &batch, 20.0, &[("active", 19.8), ("failed", 3.0)]).await;
    let demo = tunnel(app, token, "old-demo", 4000).await;
    beat(app, token, &demo, json!({})).await;
    patch(app, token, &demo, json!({"status": "stopping"})).await;
    patch(app, token, &demo, json!({"status": "stopped"})).await;
    history(
        app,
        &demo,
        23.0,
        &[("active", 22.9), ("stopping", 10.1), ("stopped", 10.0)],
    )
    .await;

    let platforms = ["windows", "mac", "linux"];
    let colos = ["FRA", "AMS", "SJC", "LHR"];
    let mut snapshots = Vec::new();
    for d in 0..14u32 {
        let device = Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 + u128::from(d));
        for hour in 0..24u32 {
            let status = match (d, hour) {
                (3, 5..=9) | (7, 14..=15) | (11, 0..=2) => "disconnected",
                (5, 18..=23) => "paused",
                (d, h) if d > 11 && h > 20 => "disconnected",
                _ => "connected",
            };
            let minutes = i64::from(hour) * 60 + i64::from(d) + 1;
            snapshots.push(json!({
                "deviceId": device, "colo": colos[(d % 4) as usize], "mode": "warp",
                "platform": platforms[(d % 3) as usize], "status": status, "version": "2026.3.0",
                "timestamp": rfc3339(chrono::Utc::now() - chrono::Duration::minutes(minutes)),
                "deviceName": format!("laptop-{:02}", d + 1), "cpuPct": 12.5 + f64::from(d),
                "ramUsedPct": 40.0 + f64::from(hour), "batteryPct": 88.0,
            }));
        }
    }
    ingest(app, token, Value::Array(snapshots)).await;
    for (name, scopes) in [
        (
            "laptop agent",
            json!(["tunnels:write", "tunnels:heartbeat", "dex:write"]),
        ),
        ("grafana", json!(["tunnels:read", "dex:read"])),
    ] {
        let body = json!({"name": name, "scopes": scopes});
        json_of(
            app.post("/v1/tokens", token, body).await,
            StatusCode::CREATED,
        )
        .await;
    }
    api
}

async fn shoot(browser: &Browser, dir: &Path, name: &str) {
    // Let the script connect and tick, so the page is as a person sees it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

#[tokio::test]
async fn screenshots_of_the_main_pages() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn_with(|c| {
        c.base_domain = "tunnels.example.com".into();
        c.webhooks.allow_private = true;
        c.webhooks.poll_interval = Duration::from_millis(50);
    })
    .await;
    let receiver = Receiver::start().await;
    json_of(app.register(EMAIL, PASSWORD).await, StatusCode::CREATED).await;
    let login = json_of(app.login(EMAIL, PASSWORD).await, StatusCode::OK).await;
    let token = login["accessToken"].as_str().unwrap().to_owned();
    let hook = json!({"url": receiver.url, "description": "on-call pager",
                      "types": ["tunnel.failed.v1", "connector.disconnected.v1"]});
    let hook = app.webhook(&token, hook).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ping = app
        .post(&format!("/v1/webhooks/{hook}/ping"), &token, json!({}))
        .await;
    assert_eq!(ping.status(), StatusCode::ACCEPTED);
    let api = fleet(&app, &token).await;
    let update = std::env::var("WARREN_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let dir = if update {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs")
    } else {
        scratch_dir("warren-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    browser.client.set_window_size(1280, 1000).await.unwrap();

    browser.goto(&app.url("/login")).await;
    browser.fill("#email", EMAIL).await;
    shoot(&browser, &dir, "dashboard-sign-in").await;
    browser.sign_in(&app.base, EMAIL).await;
    shoot(&browser, &dir, "dashboard-tunnels").await;
    browser.goto(&app.url(&format!("/tunnels/{api}"))).await;
    shoot(&browser, &dir, "dashboard-tunnel").await;
    browser
        .goto(&app.url("/devices?source=hourly&hours=24&perPage=10"))
        .await;
    shoot(&browser, &dir, "dashboard-devices").await;
    browser
        .goto(&app.url("/devices/5eed0000-0000-4000-8000-000000000003"))
        .await;
    shoot(&browser, &dir, "dashboard-device").await;
    browser.goto(&app.url("/tokens")).await;
    browser.fill("#t-name", "ci deploy").await;
    browser.click("input[value='tunnels:read']").await;
    browser.click("form.stack button[type=submit]").await;
    browser.wait_for("#new-token").await;
    shoot(&browser, &dir, "dashboard-tokens").await;
    browser.goto(&app.url("/events")).await;
    shoot(&browser, &dir, "dashboard-events").await;
    receiver.wait_for(1, Duration::from_secs(15)).await;
    browser.goto(&app.url(&format!("/webhooks/{hook}"))).await;
    shoot(&browser, &dir, "dashboard-webhook").await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&app.url("/tunnels")).await;
    shoot(&browser, &dir, "dashboard-phone").await;
    browser.close().await;
    app.stop().await;
    if !update {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
