//! What the dashboard's pages show, over plain HTTP: tunnels with their filters, a tunnel's
//! timeline and connectors, devices and their chart, tokens, the event feed and its live
//! stream; bad filters are a 4xx page; no secret reaches the logs.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::dashboard::Visitor;
use common::fleet::{ingest, snapshot, with};
use common::sse::Json;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn the_tunnel_list_filters_by_status_liveness_and_slug_and_keeps_the_filters_in_the_url() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    for slug in ["alpha-one", "alpha-two", "beta"] {
        app.tunnel(&user.token, json!({"slug": slug, "requestedPort": 3000}))
            .await;
    }
    let beta = app
        .tunnel(&user.token, json!({"slug": "gamma", "requestedPort": 3000}))
        .await;
    let gamma = beta["id"].as_str().unwrap();
    app.heartbeat(&user.token, gamma).await;
    let failed = json!({"status": "failed", "lastError": "port in use"});
    app.patch(&format!("/v1/tunnels/{gamma}"), &user.token, failed)
        .await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;

    let all = visitor.get("/tunnels").await;
    for slug in ["alpha-one", "alpha-two", "beta", "gamma"] {
        assert!(all.body.contains(&format!(">{slug}</a>")), "{slug}");
    }
    assert!(all.body.contains("port in use"));
    let alpha = visitor.get("/tunnels?q=alpha").await;
    assert!(alpha.body.contains(">alpha-one<") && alpha.body.contains(">alpha-two<"));
    assert!(!alpha.body.contains(">beta<"));
    assert!(
        alpha.body.contains(r#"value="alpha""#),
        "the search stays in the form"
    );
    let failed = visitor.get("/tunnels?status=failed").await;
    assert!(failed.body.contains(">gamma<") && !failed.body.contains(">beta<"));
    assert!(failed.body.contains(r#"<option value="failed" selected>"#));
    let live = visitor.get("/tunnels?live=live").await;
    assert!(!live.body.contains(">gamma<") && live.body.contains(">beta<"));
    let inactive = visitor.get("/tunnels?live=inactive").await;
    assert!(inactive.body.contains(">gamma<") && !inactive.body.contains(">beta<"));
    // The fragment the script fetches is the rows alone, with the same filters.
    let rows = visitor.fetch("/tunnels?q=alpha&fragment=1").await;
    assert!(rows.body.trim_start().starts_with("<tr"), "{}", rows.body);
    assert!(!rows.body.contains(">beta<"));
    assert!(
        alpha
            .body
            .contains(r#"data-fragment="/tunnels?q=alpha&#38;fragment=1""#),
        "{}",
        alpha.body
    );

    for bad in [
        "/tunnels?status=up",
        "/tunnels?live=maybe",
        "/tunnels?after=nonsense",
    ] {
        let page = visitor.get(bad).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    for missing in [
        "/tunnels/not-a-uuid",
        &format!("/tunnels/{}", Uuid::new_v4()),
    ] {
        assert_eq!(
            visitor.get(missing).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_tunnel_whose_lease_ran_out_is_found_and_shown_as_failed_before_the_reaper_gets_to_it() {
    let app = TestApp::spawn_with(|c| {
        c.lease_ttl = Duration::from_secs(3);
        c.reaper_interval = Duration::from_secs(3600);
    })
    .await;
    let user = app.user().await;
    let lapsed = app
        .tunnel(
            &user.token,
            json!({"slug": "lapsed", "requestedPort": 3000}),
        )
        .await;
    app.tunnel(&user.token, json!({"slug": "kept", "requestedPort": 3000}))
        .await;
    let id: Uuid = lapsed["id"].as_str().unwrap().parse().unwrap();
    common::clock::backdate(
        &app.db,
        "UPDATE tunnels SET lease_expires_at = lease_expires_at - $2 WHERE id = $1",
        id,
        Duration::from_secs(4),
    )
    .await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;

    let failed = visitor.get("/tunnels?status=failed").await;
    assert!(failed.body.contains(">lapsed<"), "{}", failed.body);
    assert!(!failed.body.contains(">kept<"));
    assert!(failed.body.contains("lease expired"));
    let live = visitor.get("/tunnels?live=live").await;
    assert!(!live.body.contains(">lapsed<") && live.body.contains(">kept<"));
    let status: String = sqlx::query_scalar("SELECT status FROM tunnels WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "failed", "the page that showed it expired it");
    app.stop().await;
}

#[tokio::test]
async fn a_tunnels_page_shows_its_timeline_uptime_and_connectors_and_stops_and_deletes_it() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let connector = Uuid::new_v4();
    let beat = json!({"connector": {"id": connector, "arch": "linux_arm64", "version": "2026.2.0",
        "connections": [{"id": Uuid::new_v4(), "coloName": "FRA"}]}});
    let path = format!("/v1/tunnels/{tunnel}/heartbeat");
    json_of(app.post(&path, &user.token, beat).await, StatusCode::OK).await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    let page = visitor.get(&format!("/tunnels/{tunnel}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        r#"<rect class="st-creating""#,
        r#"<rect class="st-active""#,
        "Uptime",
        &connector.to_string(),
        "linux_arm64",
        "2026.2.0",
        "127.0.0.1",
        "FRA",
        "Stop this tunnel",
    ] {
        assert!(page.body.contains(shown), "{shown} missing");
    }
    assert!(
        !page.body.contains("Delete from history"),
        "a live tunnel cannot be deleted"
    );
    let week = visitor.get(&format!("/tunnels/{tunnel}?range=7d")).await;
    assert!(week.body.contains("over the last 7 days"));
    assert_eq!(
        visitor
            .get(&format!("/tunnels/{tunnel}?range=1y"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    let stopped = visitor
        .post_from("/tunnels", &format!("/tunnels/{tunnel}/stop"), &[])
        .await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER);
    let again = visitor
        .post_from("/tunnels", &format!("/tunnels/{tunnel}/stop"), &[])
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "stopping twice: {}",
        again.body
    );
    assert!(again.body.contains("cannot go from"));
    let delete = format!("/tunnels/{tunnel}/delete");
    assert_eq!(
        visitor.post_from("/tunnels", &delete, &[]).await.status,
        StatusCode::CONFLICT
    );
    let done = json!({"status": "stopped"});
    app.patch(&format!("/v1/tunnels/{tunnel}"), &user.token, done)
        .await;
    let page = visitor.get(&format!("/tunnels/{tunnel}")).await;
    assert!(page.body.contains("Delete from history") && !page.body.contains("Stop this tunnel"));
    let deleted = visitor.post_from("/tunnels", &delete, &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.location(), "/tunnels");
    assert_eq!(
        visitor.get(&format!("/tunnels/{tunnel}")).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test]
async fn devices_are_listed_with_the_apis_filters_and_charted_by_status_hour_by_hour() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let (up, down) = (Uuid::new_v4(), Uuid::new_v4());
    let batch = json!([
        snapshot(up, 90),
        snapshot(up, 1),
        with(
            snapshot(down, 2),
            json!({"status": "disconnected", "colo": "FRA", "cpuPct": 12.5})
        ),
    ]);
    ingest(&app, &user.token, batch).await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    let page = visitor.get("/devices").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&up.to_string()) && page.body.contains(&down.to_string()));
    assert!(page.body.contains(r#"<svg class="bars""#));
    assert!(page.body.contains(r#"<rect class="st-connected""#));
    assert!(page.body.contains(r#"<rect class="st-disconnected""#));
    let fra = visitor.get("/devices?colo=FRA&sortBy=status").await;
    assert!(fra.body.contains(&down.to_string()) && !fra.body.contains(&up.to_string()));
    assert!(fra.body.contains(r#"<option value="status" selected>"#));
    let hourly = visitor.get("/devices?source=hourly&hours=168").await;
    assert_eq!(hourly.status, StatusCode::OK);
    assert!(hourly.body.contains("the last 7 days"));
    for bad in [
        "/devices?source=weekly",
        "/devices?perPage=500",
        "/devices?hours=5",
    ] {
        assert_eq!(
            visitor.get(bad).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let device = visitor.get(&format!("/devices/{down}")).await;
    assert_eq!(device.status, StatusCode::OK);
    for shown in ["cpuPct", "12.5", "FRA", "disconnected", "History"] {
        assert!(device.body.contains(shown), "{shown} missing");
    }
    let unknown = visitor.get(&format!("/devices/{}", Uuid::new_v4())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_token_made_in_the_dashboard_is_shown_once_works_and_is_revoked() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    let form = [
        ("name", "ci agent"),
        ("scope", "tunnels:read"),
        ("scope", "dex:read"),
        ("expires", "30d"),
    ];
    let created = visitor.post_from("/tokens", "/tokens", &form).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let start = created.body.find("wrn_").expect("the secret is shown");
    let secret: String = created.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert!(created.body.contains("tunnels:read, dex:read"));
    assert_eq!(
        app.get("/v1/tunnels", &secret).await.status(),
        StatusCode::OK
    );
    let listed = visitor.get("/tokens").await;
    assert!(
        listed.body.contains("ci agent") && !listed.body.contains(&secret),
        "shown once"
    );

    let invalid = visitor
        .post_from("/tokens", "/tokens", &[("name", "no scopes")])
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid
        .body
        .contains("Scopes must list at least one scope."));
    assert!(
        invalid.body.contains(r#"value="no scopes""#),
        "the form keeps what was typed"
    );
    let bad_life = [("name", "x"), ("scope", "dex:read"), ("expires", "forever")];
    assert_eq!(
        visitor
            .post_from("/tokens", "/tokens", &bad_life)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    let tokens = json_of(app.get("/v1/tokens", &user.token).await, StatusCode::OK).await;
    let id = tokens[0]["id"].as_str().unwrap();
    let revoked = visitor
        .post_from("/tokens", &format!("/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/v1/tunnels", &secret).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!visitor.get("/tokens").await.body.contains("ci agent"));
    app.stop().await;
}

#[tokio::test]
async fn the_event_feed_lists_newest_first_filters_and_follows_the_log_live() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    app.heartbeat(&user.token, &tunnel).await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    let feed = visitor.get("/events").await;
    let active = feed
        .body
        .find("<code>tunnel.active.v1</code>")
        .expect("the activation");
    let created = feed
        .body
        .find("<code>tunnel.created.v1</code>")
        .expect("the creation");
    assert!(active < created, "newest first");
    let only = visitor.get("/events?type=tunnel.created.v1").await;
    assert!(!only.body.contains("<code>tunnel.active.v1</code>"));
    assert_eq!(
        visitor.get("/events?type=nope").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        visitor.get("/events?subject=nope").await.status,
        StatusCode::BAD_REQUEST
    );

    let mut live = sse::SseReader::new(visitor.live().await);
    let stop = json!({"status": "stopping"});
    app.patch(&format!("/v1/tunnels/{tunnel}"), &user.token, stop)
        .await;
    let frame = live.event(Duration::from_secs(5), "the stop").await;
    assert_eq!(
        frame.json(),
        json!({"type": "tunnel.stopping.v1", "subject": tunnel})
    );
    assert!(frame.id.is_some(), "resumable");
    app.stop().await;
}

/// Every log line of this test binary, at every level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("trace,sqlx=trace,hyper=info,h2=info,rustls=info")
            .with_writer(move || Sink(sink.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_password_session_secret_csrf_token_or_api_token_reaches_the_logs() {
    let logs = logs();
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    let form = [("name", "logged"), ("scope", "tunnels:read")];
    let created = visitor.post_from("/tokens", "/tokens", &form).await;
    let start = created.body.find("wrn_").unwrap();
    let token: String = created.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let csrf = visitor.get("/tokens").await.csrf();
    let session = visitor.cookies["warren_session"].clone();
    let _ = visitor.post_from("/tokens", "/logout", &[]).await;
    app.stop().await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("dashboard session started"),
        "the logs were captured"
    );
    for secret in [PASSWORD, &session, &csrf, &token] {
        assert!(!text.contains(secret), "a secret is in the logs: {secret}");
    }
}
