mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// A request as Cloudflare's clients send it: `Content-Type: application/json` always, even
/// on a GET or a DELETE without a body, and Bearer auth.
async fn cf(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    app.send(
        app.client
            .request(method, app.url(&format!("/client/v4{path}")))
            .bearer_auth(token)
            .header("content-type", "application/json"),
    )
    .await
}

struct Fixture {
    user: User,
    tunnel: String,
    client: Uuid,
    conn: Uuid,
}

/// A user with a tunnel and one connector that reported one connection.
async fn fixture(app: &TestApp) -> Fixture {
    let user = app.user().await;
    let tunnel = app
        .tunnel(&user.token, json!({"requestedPort": 8080}))
        .await;
    let tunnel = tunnel["id"].as_str().unwrap().to_owned();
    let (client, conn) = (Uuid::new_v4(), Uuid::new_v4());
    let body = json!({"connector": {
        "id": client, "arch": "linux_arm64", "version": "2026.2.1", "configVersion": 3,
        "features": ["ha-origin", "postquantum"], "runAt": "2026-03-05T10:30:00Z",
        "connections": [{"id": conn, "coloName": "DFW", "openedAt": "2026-03-05T10:30:01.5Z"}]
    }});
    let path = format!("/v1/tunnels/{tunnel}/heartbeat");
    json_of(
        app.call(Method::POST, &path, Some(&user.token), Some(body))
            .await,
        StatusCode::OK,
    )
    .await;
    Fixture {
        user,
        tunnel,
        client,
        conn,
    }
}

impl Fixture {
    fn base(&self) -> String {
        format!(
            "/accounts/{}/cfd_tunnel/{}",
            self.user.account_id, self.tunnel
        )
    }
}

#[tokio::test]
async fn compatible_routes_answer_the_seed_client_in_snake_case_inside_the_envelope() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let expected = json!({
        "id": f.client, "arch": "linux_arm64", "config_version": 3,
        "features": ["ha-origin", "postquantum"], "run_at": "2026-03-05T10:30:00.000Z",
        "version": "2026.2.1",
        "conns": [{
            "id": f.conn, "uuid": f.conn, "client_id": f.client, "client_version": "2026.2.1",
            "colo_name": "DFW", "is_pending_reconnect": false,
            "opened_at": "2026-03-05T10:30:01.500Z", "origin_ip": "127.0.0.1"
        }]
    });
    let listed = cf(
        &app,
        Method::GET,
        &format!("{}/connections", f.base()),
        &f.user.token,
    )
    .await;
    assert_eq!(envelope(listed, StatusCode::OK).await, json!([expected]));
    let path = format!("{}/connectors/{}", f.base(), f.client);
    let one = cf(&app, Method::GET, &path, &f.user.token).await;
    assert_eq!(envelope(one, StatusCode::OK).await, expected);
}

#[tokio::test]
async fn x_auth_email_and_key_are_accepted_beside_bearer() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let key = app.api_token(&f.user, &["tunnels:read"]).await;
    let url = app.url(&format!("/client/v4{}/connections", f.base()));
    let good = app
        .send(
            app.client
                .get(&url)
                .header("x-auth-email", f.user.email.to_uppercase())
                .header("x-auth-key", &key)
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(
        envelope(good, StatusCode::OK)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let wrong = app
        .send(
            app.client
                .get(&url)
                .header("x-auth-email", "someone@example.com")
                .header("x-auth-key", &key),
        )
        .await;
    envelope(wrong, StatusCode::UNAUTHORIZED).await;
    envelope(
        app.send(app.client.get(&url)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn compatible_cleanup_answers_200_for_one_connector_and_for_all() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let other = Uuid::new_v4();
    let beat = json!({"connector": {"id": other, "connections": []}});
    let path = format!("/v1/tunnels/{}/heartbeat", f.tunnel);
    json_of(
        app.call(Method::POST, &path, Some(&f.user.token), Some(beat))
            .await,
        StatusCode::OK,
    )
    .await;
    let connections = format!("{}/connections", f.base());

    let one = cf(
        &app,
        Method::DELETE,
        &format!("{connections}?client_id={}", f.client),
        &f.user.token,
    )
    .await;
    assert_eq!(envelope(one, StatusCode::OK).await, Value::Null);
    let left = envelope(
        cf(&app, Method::GET, &connections, &f.user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(left[0]["id"], other.to_string());
    assert_eq!(left.as_array().unwrap().len(), 1);

    let all = cf(&app, Method::DELETE, &connections, &f.user.token).await;
    assert_eq!(envelope(all, StatusCode::OK).await, Value::Null);
    let left = envelope(
        cf(&app, Method::GET, &connections, &f.user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(left, json!([]));
}

#[tokio::test]
async fn compatible_errors_keep_their_status_inside_the_envelope() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let token = &f.user.token;
    let connections = format!("{}/connections", f.base());
    let unknown = Uuid::new_v4();
    let cases = [
        (
            Method::GET,
            format!("{}/connectors/{unknown}", f.base()),
            StatusCode::NOT_FOUND,
            1005,
        ),
        (
            Method::GET,
            format!(
                "/accounts/{}/cfd_tunnel/{unknown}/connections",
                f.user.account_id
            ),
            StatusCode::NOT_FOUND,
            1005,
        ),
        (
            Method::GET,
            format!(
                "/accounts/{}/cfd_tunnel/nope/connections",
                f.user.account_id
            ),
            StatusCode::BAD_REQUEST,
            1001,
        ),
        (
            Method::DELETE,
            format!("{connections}?client_id={unknown}"),
            StatusCode::NOT_FOUND,
            1005,
        ),
        (
            Method::DELETE,
            format!("{connections}?client_id=nope"),
            StatusCode::BAD_REQUEST,
            1001,
        ),
        (
            Method::POST,
            connections.clone(),
            StatusCode::METHOD_NOT_ALLOWED,
            1006,
        ),
    ];
    for (method, path, status, code) in cases {
        let error = envelope(cf(&app, method, &path, token).await, status).await;
        assert_eq!(error["code"], code, "{path}: {error}");
    }
    let bad = envelope(
        cf(
            &app,
            Method::DELETE,
            &format!("{connections}?client_id=nope"),
            token,
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["source"]["pointer"], "/client_id");

    let reader = app.api_token(&f.user, &["tunnels:read"]).await;
    let denied = envelope(
        cf(&app, Method::DELETE, &connections, &reader).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(denied["code"].as_u64().unwrap() >= 1000);
    let agent = app.api_token(&f.user, &["tunnels:heartbeat"]).await;
    envelope(
        cf(&app, Method::GET, &connections, &agent).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn accounts_are_isolated_on_both_route_families() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let stranger = app.user().await;
    // The owner's account id in the path: 404, as if it did not exist.
    for path in [
        format!("{}/connections", f.base()),
        format!("{}/connectors/{}", f.base(), f.client),
    ] {
        envelope(
            cf(&app, Method::GET, &path, &stranger.token).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    envelope(
        cf(
            &app,
            Method::DELETE,
            &format!("{}/connections", f.base()),
            &stranger.token,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The stranger's own account id with the owner's tunnel: 404 too.
    let own = format!("/accounts/{}/cfd_tunnel/{}", stranger.account_id, f.tunnel);
    for (method, path) in [
        (Method::GET, format!("{own}/connections")),
        (Method::DELETE, format!("{own}/connections")),
        (Method::GET, format!("{own}/connectors/{}", f.client)),
    ] {
        envelope(
            cf(&app, method, &path, &stranger.token).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    // Native routes: problem+json 404.
    let native = app
        .get(
            &format!("/v1/tunnels/{}/connections", f.tunnel),
            &stranger.token,
        )
        .await;
    problem_of(native, StatusCode::NOT_FOUND, "not_found").await;
    // Nothing was removed.
    let listed = cf(
        &app,
        Method::GET,
        &format!("{}/connections", f.base()),
        &f.user.token,
    )
    .await;
    assert_eq!(
        envelope(listed, StatusCode::OK)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
