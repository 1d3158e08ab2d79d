mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::fleet::{self, ingest};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// A snapshot from `colo`, with a CPU figure to find again.
fn snapshot(device: Uuid, minutes_ago: i64, colo: &str) -> Value {
    let extra = json!({"colo": colo, "cpuPct": 42.5});
    fleet::with(fleet::snapshot(device, minutes_ago), extra)
}

fn devices_path(user: &User) -> String {
    format!(
        "/client/v4/accounts/{}/dex/fleet-status/devices",
        user.account_id
    )
}

/// A GET as Cloudflare's clients send it: `Content-Type: application/json`, bearer auth.
async fn cf_get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.send(
        app.client
            .get(app.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json"),
    )
    .await
}

#[tokio::test]
async fn a_cloudflare_client_pages_through_the_device_list_until_an_empty_page() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let devices: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let batch: Vec<Value> = devices.iter().map(|d| snapshot(*d, 2, "SJC")).collect();
    ingest(&app, &user.token, Value::Array(batch)).await;

    let base = devices_path(&user);
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let path = format!("{base}?page={page}.0&per_page=2.0&sort_by=device_id&source=last_seen");
        let body = envelope_of(cf_get(&app, &path, &user.token).await, StatusCode::OK).await;
        let info = &body["result_info"];
        assert_eq!(
            (info["page"].as_i64(), info["per_page"].as_i64()),
            (Some(page), Some(2)),
            "{body}"
        );
        assert_eq!(
            (info["total_count"].as_i64(), info["total_pages"].as_i64()),
            (Some(5), Some(3)),
            "{body}"
        );
        let result = body["result"].as_array().unwrap();
        assert_eq!(info["count"].as_u64(), Some(result.len() as u64));
        if result.is_empty() {
            break;
        }
        seen.extend(
            result
                .iter()
                .map(|d| d["deviceId"].as_str().unwrap().to_owned()),
        );
        page += 1;
        assert!(page < 10, "the client never saw an empty page");
    }
    let mut expected: Vec<String> = devices.iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_cloudflare_list_takes_the_seed_filters_and_answers_errors_in_the_envelope() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let (sjc, fra) = (Uuid::new_v4(), Uuid::new_v4());
    let batch = json!([snapshot(sjc, 3, "SJC"), snapshot(fra, 3, "FRA")]);
    ingest(&app, &user.token, batch).await;
    let base = devices_path(&user);
    let from = (Utc::now() - Duration::minutes(30)).timestamp_millis();
    let body = envelope_of(
        cf_get(
            &app,
            &format!("{base}?colo=FRA&from={from}&source=raw"),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    let body = envelope_of(
        cf_get(&app, &format!("{base}?device_id={sjc}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["result"][0]["deviceId"], sjc.to_string());

    let error = envelope_error(
        cf_get(&app, &format!("{base}?per_page=51"), &user.token).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("per_page"),
        "{error}"
    );
    let error = envelope_error(
        cf_get(&app, &format!("{base}?sort_by=deviceId"), &user.token).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("sort_by"),
        "{error}"
    );
    let week_ago = (Utc::now() - Duration::hours(2)).timestamp_millis();
    envelope_error(
        cf_get(&app, &format!("{base}?from={week_ago}"), &user.token).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let other = app.user().await;
    envelope_error(
        cf_get(&app, &base, &other.token).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let anonymous = app.send(app.client.get(app.url(&base))).await;
    envelope_error(anonymous, StatusCode::UNAUTHORIZED).await;
    let tunnels_only = app.api_token(&user, &["tunnels:read"]).await;
    envelope_error(
        cf_get(&app, &base, &tunnels_only).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn the_cloudflare_live_status_is_a_bare_device_object() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let device = Uuid::new_v4();
    ingest(&app, &user.token, snapshot(device, 4, "SJC")).await;
    let path = |q: &str| {
        format!(
            "/client/v4/accounts/{}/dex/devices/{device}/fleet-status/live?{q}",
            user.account_id
        )
    };

    let body = envelope_of(
        cf_get(&app, &path("since_minutes=10.0"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["deviceId"], device.to_string());
    assert_eq!(body["colo"], "SJC");
    assert_eq!(body["cpuPct"], 42.5);
    assert_eq!(body["result"]["deviceId"], device.to_string());

    envelope_error(
        cf_get(&app, &path("since_minutes=2"), &user.token).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    envelope_error(
        cf_get(&app, &path("since_minutes=10&colo=FRA,LHR"), &user.token).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    envelope_of(
        cf_get(&app, &path("since_minutes=10&colo=FRA,SJC"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    let then = (Utc::now() - Duration::minutes(20)).to_rfc3339_opts(SecondsFormat::Millis, true);
    envelope_error(
        cf_get(
            &app,
            &path(&format!("since_minutes=10&time_now={then}")),
            &user.token,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let error = envelope_error(
        cf_get(&app, &path("since_minutes=61.0"), &user.token).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("since_minutes"),
        "{error}"
    );

    // Cloudflare's older scheme: X-Auth-Email with an API token as X-Auth-Key.
    let key = app.api_token(&user, &["dex:read"]).await;
    let response = app
        .send(
            app.client
                .get(app.url(&path("since_minutes=10")))
                .header("x-auth-email", &user.email)
                .header("x-auth-key", &key)
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(
        envelope_of(response, StatusCode::OK).await["deviceId"],
        device.to_string()
    );

    let other = app.user().await;
    let theirs = format!(
        "/client/v4/accounts/{}/dex/devices/{device}/fleet-status/live?since_minutes=10",
        other.account_id
    );
    envelope_error(
        cf_get(&app, &theirs, &other.token).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    envelope_error(
        cf_get(&app, &path("since_minutes=10"), &other.token).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}
