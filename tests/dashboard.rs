//! The web dashboard over plain HTTP: sessions and their cookie, CSRF on every form, what a
//! signed-out visitor gets, and that one account never sees another's data. (The pages in a
//! real browser are in `dashboard_browser.rs`.)

mod common;

use std::time::Duration;

use common::dashboard::{tunnel_status, Visitor};
use common::fleet::{ingest, snapshot};
use common::sse::Json;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

async fn sessions(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM dashboard_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn signing_in_starts_a_stored_session_with_an_httponly_lax_cookie_and_signing_out_ends_it() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.sign_in(&user.email, PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/tunnels");
    let cookie = page.set_cookie("warren_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_eq!(sessions(&app).await, 1);
    // Only the secret's hash is stored.
    let secret = visitor.cookies["warren_session"].clone();
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM dashboard_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(stored, secret.as_bytes());

    let tunnels = visitor.get("/tunnels").await;
    assert_eq!(tunnels.status, StatusCode::OK);
    assert!(tunnels.body.contains(&user.email));
    assert_eq!(tunnels.headers["cache-control"], "no-store");
    assert!(tunnels.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));

    let out = visitor.post_from("/tunnels", "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert!(out
        .set_cookie("warren_session")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(sessions(&app).await, 0, "signing out deletes the session");
    // The old cookie no longer opens anything.
    visitor.cookies.insert("warren_session".into(), secret);
    let again = visitor.get("/tunnels").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location(), "/login?next=%2Ftunnels");
    app.stop().await;
}

#[tokio::test]
async fn signing_out_ends_the_live_stream_the_session_had_open() {
    let app = TestApp::spawn_with(|c| {
        c.event_auth_recheck = Duration::from_millis(100);
        c.event_keep_alive = Duration::from_millis(100);
    })
    .await;
    let user = app.user().await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    let mut live = sse::SseReader::new(visitor.live().await);
    assert!(live.frame(Duration::from_secs(2)).await.is_some(), "open");
    let out = visitor.post_from("/tunnels", "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let started = tokio::time::Instant::now();
    while live.frame(Duration::from_secs(5)).await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stream outlived its session"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the stream outlived its session"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_trusted_https_proxy_or_when_configured() {
    let trusting = TestApp::spawn_with(|c| {
        c.trusted_proxies = warren::net::TrustedProxies::parse("127.0.0.1").unwrap()
    })
    .await;
    let user = trusting.user().await;
    let mut proxied = Visitor::new(&trusting);
    proxied.headers.push(("x-forwarded-proto", "https".into()));
    let page = proxied.sign_in(&user.email, PASSWORD).await;
    assert!(page
        .set_cookie("warren_session")
        .unwrap()
        .contains("; Secure"));
    let mut direct = Visitor::new(&trusting);
    let page = direct.sign_in(&user.email, PASSWORD).await;
    assert!(!page
        .set_cookie("warren_session")
        .unwrap()
        .contains("Secure"));
    trusting.stop().await;

    // From a peer that is not a trusted proxy, the header means nothing.
    let plain = TestApp::spawn().await;
    let user = plain.user().await;
    let mut claiming = Visitor::new(&plain);
    claiming.headers.push(("x-forwarded-proto", "https".into()));
    let page = claiming.sign_in(&user.email, PASSWORD).await;
    assert!(!page
        .set_cookie("warren_session")
        .unwrap()
        .contains("Secure"));
    plain.stop().await;

    let forced = TestApp::spawn_with(|c| c.secure_cookies = true).await;
    let user = forced.user().await;
    let page = Visitor::new(&forced).sign_in(&user.email, PASSWORD).await;
    assert!(page
        .set_cookie("warren_session")
        .unwrap()
        .contains("; Secure"));
    forced.stop().await;
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_the_login_rate_limit_applies() {
    let app = TestApp::spawn_with(|c| c.login_attempts_per_minute = 3).await;
    let user = app.user().await; // one attempt: the harness's own login
    let mut visitor = Visitor::new(&app);
    let wrong = visitor
        .sign_in(&user.email, "not the password at all")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The email or password is incorrect."));
    assert!(
        wrong.body.contains(&user.email),
        "the email stays in the form"
    );
    let _ = visitor.sign_in(&user.email, "still not the password").await;
    let limited = visitor.sign_in(&user.email, PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.body.contains("Too many attempts"));
    assert_eq!(sessions(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_sign_in_without_its_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut visitor = Visitor::new(&app);
    let form = [("email", user.email.as_str()), ("password", PASSWORD)];
    let page = visitor.post("/login", &form).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // A token, but not the one of this browser's cookie (a cross-site form).
    let _ = visitor.get("/login").await;
    let mut forged = vec![("csrf", "A".repeat(40))];
    forged.extend(form.iter().map(|(k, v)| (*k, v.to_string())));
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        visitor.post("/login", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(sessions(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn no_page_is_reachable_signed_out() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let device = Uuid::new_v4();
    ingest(&app, &user.token, snapshot(device, 0)).await;
    let token_id = Uuid::new_v4();
    let mut visitor = Visitor::new(&app);
    for path in [
        "/tunnels".to_owned(),
        "/tunnels?status=failed".to_owned(),
        format!("/tunnels/{tunnel}"),
        "/devices".to_owned(),
        format!("/devices/{device}"),
        "/tokens".to_owned(),
        "/events".to_owned(),
        "/webhooks".to_owned(),
        format!("/webhooks/{token_id}"),
    ] {
        let page = visitor.get(&path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            page.location().starts_with("/login?next=%2F"),
            "{path}: {}",
            page.location()
        );
        assert!(!page.body.contains(&tunnel), "{path}");
    }
    assert_eq!(visitor.get("/").await.location(), "/tunnels");
    assert_eq!(
        visitor.fetch("/tunnels?fragment=1").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(visitor.live().await.status(), StatusCode::UNAUTHORIZED);
    // A made-up cookie is no better than none, and is deleted.
    visitor
        .cookies
        .insert("warren_session".into(), "x".repeat(40));
    let page = visitor.get("/tokens").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page
        .set_cookie("warren_session")
        .unwrap()
        .contains("Max-Age=0"));
    for path in [
        format!("/tunnels/{tunnel}/stop"),
        format!("/tunnels/{tunnel}/delete"),
        "/tokens".to_owned(),
        format!("/tokens/{token_id}/revoke"),
        "/webhooks".to_owned(),
        format!("/webhooks/{token_id}/ping"),
        "/logout".to_owned(),
    ] {
        let page = visitor
            .post(
                &path,
                &[("csrf", "x"), ("name", "n"), ("scope", "dex:read")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/login", "{path}");
    }
    assert_eq!(tunnel_status(&app, &tunnel).await, "creating");
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tokens, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_form_posted_without_or_with_a_wrong_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let other = app.user().await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    let mut stranger = Visitor::signed_in(&app, &other.email).await;
    let theirs = stranger.get("/tokens").await.csrf();
    let stop = format!("/tunnels/{tunnel}/stop");
    for form in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", "wrong")],
        vec![("csrf", theirs.as_str())],
    ] {
        let page = visitor.post(&stop, &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(page.body.contains("did not come from this page"));
        let create = [
            form.clone(),
            vec![("name", "forged"), ("scope", "tunnels:read")],
        ]
        .concat();
        assert_eq!(
            visitor.post("/tokens", &create).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            visitor.post("/logout", &form).await.status,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(tunnel_status(&app, &tunnel).await, "creating");
    assert_eq!(sessions(&app).await, 2, "no forged sign-out");
    let tokens = app.get("/v1/tokens", &user.token).await;
    assert_eq!(json_of(tokens, StatusCode::OK).await, json!([]));

    let done = visitor.post_from("/tunnels", &stop, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("/tunnels/{tunnel}"));
    assert_eq!(tunnel_status(&app, &tunnel).await, "stopping");
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_when_it_expires_and_expired_sessions_are_swept() {
    let app = TestApp::spawn_with(|c| c.session_sweep_interval = Duration::from_millis(200)).await;
    let user = app.user().await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;
    assert_eq!(visitor.get("/events").await.status, StatusCode::OK);
    sqlx::query("UPDATE dashboard_sessions SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let page = visitor.get("/events").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fevents");
    eventually(
        Duration::from_secs(5),
        "the sweep deletes the session",
        || async { (sessions(&app).await == 0).then_some(()) },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn another_accounts_tunnels_devices_tokens_and_events_are_never_shown_nor_changed() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let tunnel = app
        .tunnel(
            &owner.token,
            json!({"slug": "owners-secret-app", "requestedPort": 8080}),
        )
        .await;
    let tunnel = tunnel["id"].as_str().unwrap().to_owned();
    let device = Uuid::new_v4();
    ingest(&app, &owner.token, snapshot(device, 0)).await;
    let token = app
        .post(
            "/v1/tokens",
            &owner.token,
            json!({"name": "owners-token", "scopes": ["dex:read"]}),
        )
        .await;
    let token_id = json_of(token, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let intruder = app.user().await;
    let mut visitor = Visitor::signed_in(&app, &intruder.email).await;

    for path in [
        "/tunnels?live=all",
        "/devices?source=raw",
        "/devices",
        "/tokens",
        "/events",
    ] {
        let page = visitor.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        for secret in [
            "owners-secret-app",
            &tunnel,
            &device.to_string(),
            "owners-token",
            &token_id,
        ] {
            assert!(!page.body.contains(secret), "{path} shows {secret}");
        }
    }
    for path in [format!("/tunnels/{tunnel}"), format!("/devices/{device}")] {
        assert_eq!(
            visitor.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in [
        format!("/tunnels/{tunnel}/stop"),
        format!("/tunnels/{tunnel}/delete"),
        format!("/tokens/{token_id}/revoke"),
    ] {
        let page = visitor.post_from("/tokens", &path, &[]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(tunnel_status(&app, &tunnel).await, "creating");
    let tokens = json_of(app.get("/v1/tokens", &owner.token).await, StatusCode::OK).await;
    assert_eq!(tokens.as_array().unwrap().len(), 1);

    // The intruder's live stream carries its own account's events only.
    let mut live = sse::SseReader::new(visitor.live().await);
    app.heartbeat(&owner.token, &tunnel).await;
    let own = app
        .tunnel(&intruder.token, json!({"requestedPort": 9}))
        .await;
    let frame = live
        .event(Duration::from_secs(5), "the intruder's own event")
        .await;
    assert_eq!(frame.json()["subject"], own["id"], "{frame:?}");
    assert_eq!(frame.json()["type"], "tunnel.created.v1");
    app.stop().await;
}
