//! Hostile and careless input to the webhook routes: every refusal is a 4xx problem that
//! names the field, nothing is stored, nothing answers 500.
mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn refused(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
    status: StatusCode,
    field: &str,
) {
    let answer = app
        .call(method.clone(), path, Some(token), Some(body.clone()))
        .await;
    let problem = problem_of(answer, status, "validation_failed").await;
    assert_eq!(problem["field"], field, "{method} {path} {body}: {problem}");
}

#[tokio::test]
async fn bad_urls_types_and_descriptions_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let long = format!("https://example.com/{}", "a".repeat(3000));
    for url in [
        "",
        "   ",
        "example.com/hook",
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "https://user:secret@example.com/",
        "http://exa mple.com/",
        "http://[::1/",
        &long,
        "https://example.com/\u{0}",
    ] {
        refused(
            &app,
            &user.token,
            Method::POST,
            "/v1/webhooks",
            json!({"url": url}),
            unprocessable,
            "url",
        )
        .await;
    }
    for types in [
        json!(["tunnel.failed"]),
        json!(["TUNNEL.FAILED.V1"]),
        json!(["webhook.ping.v1"]),
    ] {
        let body = json!({"url": "https://example.com/", "types": types});
        refused(
            &app,
            &user.token,
            Method::POST,
            "/v1/webhooks",
            body,
            unprocessable,
            "types",
        )
        .await;
    }
    for description in ["x".repeat(501), "bell\u{7}".to_owned()] {
        let body = json!({"url": "https://example.com/", "description": description});
        refused(
            &app,
            &user.token,
            Method::POST,
            "/v1/webhooks",
            body,
            unprocessable,
            "description",
        )
        .await;
    }
    // Wrong shapes are 422s of the JSON reader, naming the member.
    for body in [
        json!({"url": 5}),
        json!({"url": "https://example.com/", "types": "tunnel.failed.v1"}),
        json!({"url": "https://example.com/", "enabled": "yes"}),
        json!(["https://example.com/"]),
        json!({}),
    ] {
        let answer = app.post("/v1/webhooks", &user.token, body.clone()).await;
        problem_of(answer, unprocessable, "validation_failed").await;
    }
    let listed = json_of(app.get("/v1/webhooks", &user.token).await, StatusCode::OK).await;
    assert_eq!(listed, json!([]), "nothing was stored");

    // The same checks on PATCH.
    let hook = app
        .webhook(&user.token, json!({"url": "https://example.com/a"}))
        .await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    refused(
        &app,
        &user.token,
        Method::PATCH,
        &path,
        json!({"url": "gopher://x"}),
        unprocessable,
        "url",
    )
    .await;
    refused(
        &app,
        &user.token,
        Method::PATCH,
        &path,
        json!({"types": ["nope"]}),
        unprocessable,
        "types",
    )
    .await;
    let unchanged = json_of(app.get(&path, &user.token).await, StatusCode::OK).await;
    assert_eq!(unchanged["url"], "https://example.com/a");
    // `types: null` and `[]` mean every type; absent leaves them.
    let some = app
        .patch(&path, &user.token, json!({"types": ["tunnel.failed.v1"]}))
        .await;
    assert_eq!(
        json_of(some, StatusCode::OK).await["types"],
        json!(["tunnel.failed.v1"])
    );
    let same = app
        .patch(&path, &user.token, json!({"description": "d"}))
        .await;
    assert_eq!(
        json_of(same, StatusCode::OK).await["types"],
        json!(["tunnel.failed.v1"])
    );
    let all = app.patch(&path, &user.token, json!({"types": null})).await;
    assert_eq!(json_of(all, StatusCode::OK).await["types"], Value::Null);
}

#[tokio::test]
async fn bad_ids_unknown_ids_huge_bodies_and_missing_scopes_are_4xx() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let hook = app
        .webhook(&user.token, json!({"url": "https://example.com/a"}))
        .await;
    let id = hook["id"].as_str().unwrap();
    for path in [
        "/v1/webhooks/nope",
        "/v1/webhooks/1",
        "/v1/webhooks/nope/deliveries",
        "/v1/webhooks/%00",
    ] {
        let answer = app.get(path, &user.token).await;
        problem_of(answer, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
    let bad_delivery = format!("/v1/webhooks/{id}/deliveries/nope/redeliver");
    let answer = app.post(&bad_delivery, &user.token, json!({})).await;
    let problem = problem_of(answer, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("deliveryId"),
        "{problem}"
    );
    for query in [
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?after=-1",
        "?after=abc",
    ] {
        let answer = app
            .get(&format!("/v1/webhooks/{id}/deliveries{query}"), &user.token)
            .await;
        problem_of(answer, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
    let unknown = Uuid::new_v4();
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{unknown}")),
        (Method::PATCH, format!("/v1/webhooks/{unknown}")),
        (Method::DELETE, format!("/v1/webhooks/{unknown}")),
        (Method::POST, format!("/v1/webhooks/{unknown}/ping")),
        (
            Method::POST,
            format!("/v1/webhooks/{unknown}/rotate-secret"),
        ),
        (Method::GET, format!("/v1/webhooks/{unknown}/deliveries")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"enabled": false}));
        let answer = app.call(method, &path, Some(&user.token), body).await;
        problem_of(answer, StatusCode::NOT_FOUND, "not_found").await;
    }
    let huge = json!({"url": "https://example.com/", "description": "x".repeat(2 * 1024 * 1024)});
    let answer = app.post("/v1/webhooks", &user.token, huge).await;
    problem_of(answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let reader = app.api_token(&user, &["tunnels:read", "events:read"]).await;
    for (method, path) in [
        (Method::GET, "/v1/webhooks".to_owned()),
        (Method::POST, format!("/v1/webhooks/{id}/ping")),
    ] {
        let answer = app.call(method, &path, Some(&reader), None).await;
        problem_of(answer, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let answer = app.call(Method::GET, "/v1/webhooks", None, None).await;
    problem_of(answer, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Deleted, it is gone with its log.
    assert_eq!(
        app.delete(&format!("/v1/webhooks/{id}"), &user.token)
            .await
            .status(),
        204
    );
    let answer = app
        .get(&format!("/v1/webhooks/{id}/deliveries"), &user.token)
        .await;
    problem_of(answer, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn an_account_may_have_a_hundred_endpoints_and_no_more() {
    let app = TestApp::spawn().await;
    let (user, other) = (app.user().await, app.user().await);
    for i in 0..100 {
        let body = json!({"url": format!("https://example.com/{i}"), "enabled": false});
        app.webhook(&user.token, body).await;
    }
    let body = json!({"url": "https://example.com/101"});
    let answer = app.post("/v1/webhooks", &user.token, body.clone()).await;
    problem_of(answer, StatusCode::CONFLICT, "webhook_limit_reached").await;
    // Another account's limit is its own.
    app.webhook(&other.token, body).await;
}
