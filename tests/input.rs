//! Inputs schemathesis found mishandled: each now gets the answer the document promises.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_nul_in_a_query_value_is_a_400_naming_the_parameter_not_a_500() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let device = uuid::Uuid::new_v4();
    for path in [
        "/v1/fleet-status/devices?colo=a%00b".to_owned(),
        format!("/v1/devices/{device}/fleet-status/live?sinceMinutes=5&colo=%00"),
        format!(
            "/client/v4/accounts/{}/dex/fleet-status/devices?mode=%00",
            user.account_id
        ),
    ] {
        let response = app.get(&path, &user.token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        let named = body["field"]
            .as_str()
            .or(body["errors"][0]["source"]["pointer"].as_str());
        assert!(
            named.is_some_and(|f| f.ends_with("colo") || f.ends_with("mode")),
            "{body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_nul_in_a_stored_text_is_a_422_and_in_a_login_email_a_401() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = json!({"name": "a\u{0}b", "scopes": ["tunnels:read"]});
    let response = app.post("/v1/tokens", &user.token, token).await;
    problem_of(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    let tunnel = app.tunnel(&user.token, json!({"requestedPort": 80})).await;
    let path = format!("/v1/tunnels/{}", tunnel["id"].as_str().unwrap());
    let failed = json!({"status": "failed", "lastError": "boom\u{0}"});
    let response = app.patch(&path, &user.token, failed).await;
    let body = problem_of(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "lastError");

    let response = app.login(&format!("{}\u{0}", user.email), PASSWORD).await;
    problem_of(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn whole_numbers_written_with_a_fraction_are_read_as_integers() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let tunnel = app
        .tunnel(&user.token, json!({"requestedPort": 3000.0}))
        .await;
    assert_eq!(tunnel["requestedPort"], 3000);
    let token = json!({"name": "float", "scopes": ["tunnels:read"], "expiresInSecs": 60.0});
    json_of(
        app.post("/v1/tokens", &user.token, token).await,
        StatusCode::CREATED,
    )
    .await;
    let half = json!({"requestedPort": 3000.5});
    let response = app.post("/v1/tunnels", &user.token, half).await;
    problem_of(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_json_array_is_not_read_as_an_object_body() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let response = app
        .post("/v1/tunnels", &user.token, json!(["my-app", 3000]))
        .await;
    problem_of(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let listed = json_of(app.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
    assert_eq!(listed, json!([]), "nothing was created");

    let tunnel = app.tunnel(&user.token, json!({"requestedPort": 80})).await;
    let path = format!("/v1/tunnels/{}/heartbeat", tunnel["id"].as_str().unwrap());
    let response = app.post(&path, &user.token, json!([])).await;
    problem_of(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let id = tunnel["id"].as_str().unwrap();
    let shown = app.get(&format!("/v1/tunnels/{id}"), &user.token).await;
    let shown = json_of(shown, StatusCode::OK).await;
    assert_eq!(
        shown["status"], "creating",
        "the refused heartbeat renewed nothing"
    );
    app.stop().await;
}
