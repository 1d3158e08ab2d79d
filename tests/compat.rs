mod common;

use common::*;
use reqwest::StatusCode;

async fn envelope_error(response: reqwest::Response, status: StatusCode) -> serde_json::Value {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = json_of(response, status).await;
    assert_eq!(content_type, "application/json", "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(body["result"].is_null(), "{body}");
    assert_eq!(body["messages"], serde_json::json!([]), "{body}");
    let errors = body["errors"].as_array().expect("errors is an array");
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["code"].as_u64().unwrap() >= 1000, "{body}");
    assert!(
        errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test]
async fn unknown_compatible_routes_answer_404_in_the_envelope() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let path = format!("/client/v4/accounts/{}/no_such_thing", user.account_id);
    let response = app
        .send(
            app.client
                .get(app.url(&path))
                .bearer_auth(&user.token)
                .header("content-type", "application/json"),
        )
        .await;
    envelope_error(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn native_routes_keep_problem_json_beside_the_envelope() {
    let app = TestApp::spawn().await;
    let response = app.send(app.client.get(app.url("/v1/nothing"))).await;
    problem_of(response, StatusCode::NOT_FOUND, "not_found").await;
}
