//! The dashboard in a real headless Chromium (see `common::browser`): signing in, a tunnel
//! appearing, going active and failing on screen without a reload, stopping one, tokens made
//! and revoked, forged and signed-out requests refused, another account's data never shown.
//! Each test returns with a notice when Chromium or chromedriver is missing (unless
//! `WARREN_REQUIRE_BROWSER=1`).

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::clock::age_tunnel;
use common::dashboard::tunnel_status;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[tokio::test]
async fn a_tunnel_appears_goes_active_and_fails_on_screen_without_a_reload_and_another_is_stopped()
{
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let user = app.user().await;
    browser.goto(&app.url("/tunnels")).await;
    assert!(
        browser.path().await.starts_with("/login?next="),
        "signed out, sent to sign in"
    );
    browser.sign_in(&app.base, &user.email).await;
    assert_eq!(browser.path().await, "/tunnels");
    assert!(browser.text("header").await.contains(&user.email));
    browser
        .wait_attr(Duration::from_secs(5), "#live-state", "data-state", "live")
        .await;
    browser
        .run("window.__notReloaded = true; return null")
        .await;

    // A tunnel created by an agent shows up.
    let tunnel = app
        .tunnel(
            &user.token,
            json!({"slug": "watched", "requestedPort": 8080}),
        )
        .await;
    let id = tunnel["id"].as_str().unwrap().to_owned();
    let badge = format!("tr[data-tunnel='{id}'] .badge");
    browser
        .wait_attr(Duration::from_secs(5), &badge, "data-status", "creating")
        .await;
    // Its first heartbeat makes it active.
    assert_eq!(
        app.heartbeat(&user.token, &id).await.status(),
        StatusCode::OK
    );
    browser
        .wait_attr(Duration::from_secs(5), &badge, "data-status", "active")
        .await;
    let heartbeat = browser
        .text(&format!("tr[data-tunnel='{id}'] time[data-ago]"))
        .await;
    assert!(heartbeat.ends_with("s ago"), "{heartbeat}");

    // Its lease runs out (moved into the past); the reaper fails it, and the screen follows
    // within 2 s.
    age_tunnel(
        &app.db,
        Uuid::parse_str(&id).unwrap(),
        Duration::from_secs(120),
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "the reaper fails the tunnel",
        || async { (tunnel_status(&app, &id).await == "failed").then_some(()) },
    )
    .await;
    let reaped = Instant::now();
    browser
        .wait_attr(Duration::from_secs(2), &badge, "data-status", "failed")
        .await;
    eprintln!("on screen {:?} after the reaper", reaped.elapsed());
    assert!(browser
        .text(&format!("tr[data-tunnel='{id}']"))
        .await
        .contains("lease expired"));
    assert_eq!(
        browser.run("return window.__notReloaded === true").await,
        json!(true)
    );

    // Another one is stopped from its page, after confirming.
    let other = app
        .tunnel(
            &user.token,
            json!({"slug": "to-stop", "requestedPort": 9000}),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_owned();
    app.heartbeat(&user.token, &other).await;
    browser.click(&format!("tr[data-tunnel='{other}'] a")).await;
    eventually(Duration::from_secs(5), "the tunnel's page", || async {
        (browser.path().await == format!("/tunnels/{other}")).then_some(())
    })
    .await;
    assert!(!browser
        .wait_for("#confirm-stop")
        .await
        .is_displayed()
        .await
        .unwrap());
    browser.click("details.confirm summary").await;
    browser.click("#confirm-stop").await;
    browser
        .wait_attr(
            Duration::from_secs(5),
            "h1 .badge",
            "data-status",
            "stopping",
        )
        .await;
    assert_eq!(tunnel_status(&app, &other).await, "stopping");
    let source = browser.client.source().await.unwrap();
    assert!(source.contains("Status of to-stop over the last 24 hours"));
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_token_is_created_with_its_scopes_shown_once_and_revoked() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let user = app.user().await;
    browser.goto(&app.url("/tokens")).await;
    browser.sign_in(&app.base, &user.email).await;
    assert_eq!(browser.path().await, "/tokens");
    browser.fill("#t-name", "browser agent").await;
    browser.click("input[value='tunnels:read']").await;
    browser.click("input[value='tunnels:heartbeat']").await;
    browser
        .wait_for("#t-expires")
        .await
        .select_by_value("30d")
        .await
        .unwrap();
    browser.click("form.stack button[type=submit]").await;
    let secret = browser.text("#new-token").await;
    assert!(secret.starts_with("wrn_"), "{secret}");
    assert!(browser
        .wait_for("button[data-copy]")
        .await
        .is_displayed()
        .await
        .unwrap());
    assert!(browser
        .text("table")
        .await
        .contains("tunnels:read, tunnels:heartbeat"));
    assert_eq!(
        app.get("/v1/tunnels", &secret).await.status(),
        StatusCode::OK
    );
    // Shown once: not on the page again.
    browser.goto(&app.url("/tokens")).await;
    assert!(!browser.client.source().await.unwrap().contains(&secret));

    browser.click("details.confirm summary").await;
    browser.click("details.confirm button.danger").await;
    eventually(
        Duration::from_secs(5),
        "the token is gone from the list",
        || async {
            browser
                .text("table")
                .await
                .contains("No API tokens yet")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        app.get("/v1/tunnels", &secret).await.status(),
        StatusCode::UNAUTHORIZED
    );
    browser.close().await;
    app.stop().await;
}

/// A page of another origin (same host, another port: the same site, so the browser even
/// sends the session cookie along) whose form posts itself to `action` at once.
async fn attacker(action: &str, csrf: Option<&str>) -> String {
    let field = csrf.map_or(String::new(), |v| {
        format!(r#"<input name="csrf" value="{v}">"#)
    });
    let html = format!(
        r#"<!doctype html><form id="f" method="post" action="{action}">{field}</form><script>document.getElementById("f").submit()</script>"#
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    base
}

/// Waits for the page that refuses a form without this session's CSRF token.
async fn refused(browser: &Browser) {
    eventually(
        Duration::from_secs(5),
        "the forged post is refused",
        || async {
            let text = browser.text("body").await;
            text.contains("did not come from this page").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn forged_posts_signed_out_pages_and_other_accounts_data_are_refused_in_the_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (owner, tunnel) = app.user_with_tunnel().await;
    let slug = json_of(
        app.get(&format!("/v1/tunnels/{tunnel}"), &owner.token)
            .await,
        StatusCode::OK,
    )
    .await["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    for page in [
        "/tunnels",
        &format!("/tunnels/{tunnel}"),
        "/devices",
        "/tokens",
        "/events",
        "/",
    ] {
        browser.goto(&app.url(page)).await;
        assert!(
            browser.path().await.starts_with("/login"),
            "{page} signed out"
        );
        assert!(!browser.client.source().await.unwrap().contains(&slug));
    }
    browser.sign_in(&app.base, &owner.email).await;

    // A form from another origin, without the token and with a wrong one.
    let stop = app.url(&format!("/tunnels/{tunnel}/stop"));
    for csrf in [None, Some("not-the-token")] {
        browser.goto(&attacker(&stop, csrf).await).await;
        refused(&browser).await;
        assert_eq!(tunnel_status(&app, &tunnel).await, "creating", "{csrf:?}");
    }
    // The same from the dashboard's own page, but without its token.
    browser.goto(&app.url("/tunnels")).await;
    let script = format!(
        r#"const f = document.createElement("form"); f.method = "post"; f.action = "/tunnels/{tunnel}/stop";
           document.body.appendChild(f); f.submit(); return null"#
    );
    browser.run(&script).await;
    refused(&browser).await;
    assert_eq!(tunnel_status(&app, &tunnel).await, "creating");

    // Another account sees none of it.
    browser.goto(&app.url("/tunnels")).await;
    browser.click("button.link").await; // sign out
    eventually(Duration::from_secs(5), "signed out", || async {
        browser.path().await.starts_with("/login").then_some(())
    })
    .await;
    let intruder = app.user().await;
    browser.sign_in(&app.base, &intruder.email).await;
    for page in ["/tunnels", "/events", "/tokens", "/devices"] {
        browser.goto(&app.url(page)).await;
        let source = browser.client.source().await.unwrap();
        assert!(
            !source.contains(&slug) && !source.contains(&tunnel),
            "{page}"
        );
    }
    browser.goto(&app.url(&format!("/tunnels/{tunnel}"))).await;
    assert!(browser.text("h1").await.contains("Not Found"));
    browser.close().await;
    app.stop().await;
}
