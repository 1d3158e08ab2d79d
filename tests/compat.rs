mod common;

use common::*;
use reqwest::StatusCode;

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
