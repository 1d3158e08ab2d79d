//! The dashboard's webhooks pages over plain HTTP, against real PostgreSQL and a real
//! receiver: an endpoint made in a form, its secret shown once, its delivery log, a test
//! ping, redelivery, disable/enable, rotation and delete; another account sees none of it.
mod common;

use std::time::Duration;

use common::dashboard::{Page, Visitor};
use common::receiver::Receiver;
use common::*;
use reqwest::StatusCode;
use warren::Config;

const WAIT: Duration = Duration::from_secs(15);

fn fast(c: &mut Config) {
    c.webhooks.allow_private = true;
    c.webhooks.backoff_base = Duration::from_millis(50);
    c.webhooks.poll_interval = Duration::from_millis(50);
}

/// The `whsec_…` secret a page shows.
fn secret_in(page: &Page) -> String {
    let start = page.body.find("whsec_").expect("the secret is shown");
    page.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "_+/=".contains(*c))
        .collect()
}

/// Reloads the endpoint's page until `done` holds for its body.
async fn page_until(visitor: &mut Visitor, path: &str, what: &str, done: impl Fn(&str) -> bool) {
    let started = std::time::Instant::now();
    loop {
        let page = visitor.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if done(&page.body) {
            return;
        }
        assert!(started.elapsed() < WAIT, "{what}: {}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_endpoint_made_in_the_dashboard_shows_its_secret_once_and_its_delivery_log() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    let mut visitor = Visitor::signed_in(&app, &user.email).await;

    let refused = visitor
        .post_from("/webhooks", "/webhooks", &[("url", "ftp://example.com/x")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"webhook-error\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("ftp://example.com/x"),
        "the form keeps what was typed"
    );

    let form = [
        ("url", receiver.url.as_str()),
        ("description", "pager"),
        ("type", "tunnel.created.v1"),
    ];
    let created = visitor.post_from("/webhooks", "/webhooks", &form).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = secret_in(&created);
    let endpoints = json_of(app.get("/v1/webhooks", &user.token).await, StatusCode::OK).await;
    let id = endpoints[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/webhooks/{id}");
    let listed = visitor.get("/webhooks").await;
    assert!(listed.body.contains(&receiver.url) && listed.body.contains("tunnel.created.v1"));
    assert!(!listed.body.contains(&secret), "the secret is shown once");
    assert!(!visitor.get(&path).await.body.contains(&secret));

    // A tunnel's creation is delivered and logged; a ping too; then redelivered on request.
    app.tunnel_ids(&user.token, 1).await;
    receiver.wait_for(1, WAIT).await;
    page_until(&mut visitor, &path, "the delivery logged", |b| {
        b.contains("tunnel.created.v1") && b.contains("succeeded") && b.contains("HTTP 200")
    })
    .await;
    let pinged = visitor.post_from(&path, &format!("{path}/ping"), &[]).await;
    assert_eq!(pinged.status, StatusCode::SEE_OTHER);
    assert_eq!(pinged.location(), path);
    receiver.wait_for(2, WAIT).await;
    let log = json_of(
        app.get(&format!("/v1/webhooks/{id}/deliveries"), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    let first = log.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = visitor
        .post_from(&path, &format!("{path}/deliveries/{first}/redeliver"), &[])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    let got = receiver.wait_for(3, WAIT).await;
    assert_eq!(got[2].header("webhook-id"), got[0].header("webhook-id"));

    // Off, on, a new secret shown once, then gone.
    let off = visitor
        .post_from(&path, &format!("{path}/enabled"), &[("enabled", "false")])
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    let endpoint = json_of(
        app.get(&format!("/v1/webhooks/{id}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(endpoint["enabled"], false);
    assert!(!visitor.get(&path).await.body.contains("Send a test ping"));
    visitor
        .post_from(&path, &format!("{path}/enabled"), &[("enabled", "true")])
        .await;
    let rotated = visitor
        .post_from(&path, &format!("{path}/rotate"), &[])
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_secret = secret_in(&rotated);
    assert_ne!(new_secret, secret);
    assert!(rotated.body.contains("24 hours"));
    let deleted = visitor
        .post_from(&path, &format!("{path}/delete"), &[])
        .await;
    assert_eq!(deleted.location(), "/webhooks");
    assert_eq!(visitor.get(&path).await.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn another_accounts_endpoints_are_neither_shown_nor_touched_and_forms_need_their_csrf() {
    let app = TestApp::spawn_with(fast).await;
    let owner = app.user().await;
    let receiver = Receiver::start().await;
    let endpoint = app
        .webhook(
            &owner.token,
            serde_json::json!({"url": receiver.url, "description": "owners-hook"}),
        )
        .await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let intruder = app.user().await;
    let mut visitor = Visitor::signed_in(&app, &intruder.email).await;

    let listed = visitor.get("/webhooks").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.body.contains(&id) && !listed.body.contains("owners-hook"));
    assert_eq!(
        visitor.get(&format!("/webhooks/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    for action in ["ping", "rotate", "delete"] {
        let page = visitor
            .post_from("/webhooks", &format!("/webhooks/{id}/{action}"), &[])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{action}");
    }
    let page = visitor
        .post_from(
            "/webhooks",
            &format!("/webhooks/{id}/enabled"),
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let owned = json_of(
        app.get(&format!("/v1/webhooks/{id}"), &owner.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(owned["enabled"], true);

    // A form posted without the session's CSRF token does nothing.
    let forged = visitor
        .post(
            "/webhooks",
            &[("csrf", "forged"), ("url", receiver.url.as_str())],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mine = json_of(
        app.get("/v1/webhooks", &intruder.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 0);
    app.stop().await;
}
