mod common;

use std::time::Duration;

use common::clock::age_tunnel;
use common::*;
use reqwest::StatusCode;

/// The value of the sample whose line starts with `series` (name and labels), 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let response = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_move_with_traffic_heartbeats_and_the_reaper() {
    let ttl = Duration::from_secs(30);
    let app = TestApp::spawn_with(|c| c.lease_ttl = ttl).await;
    let before = scrape(&app).await;
    let (user, id) = app.user_with_tunnel().await;
    let id = id.as_str();
    json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;
    problem_of(
        app.heartbeat(&user.token, &uuid::Uuid::new_v4().to_string())
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let live = scrape(&app).await;
    assert_eq!(
        sample(&live, r#"warren_tunnels{status="active"}"#),
        1.0,
        "{live}"
    );
    // The lease runs out (its times move a TTL into the past); the reaper fails it.
    age_tunnel(&app.db, id.parse().unwrap(), ttl).await;
    let reaped = r#"warren_reaper_transitions_total{to="failed"}"#;
    let after = eventually(
        Duration::from_secs(5),
        "the reaper to fail the lease",
        || async {
            let after = scrape(&app).await;
            (sample(&after, reaped) - sample(&before, reaped) >= 1.0).then_some(after)
        },
    )
    .await;

    let created = r#"warren_http_requests_total{method="POST",route="/v1/tunnels",status="201"}"#;
    assert_eq!(
        sample(&after, created) - sample(&before, created),
        1.0,
        "{after}"
    );
    let accepted = r#"warren_heartbeats_total{result="accepted"}"#;
    assert!(
        sample(&after, accepted) - sample(&before, accepted) >= 1.0,
        "{after}"
    );
    let refused = r#"warren_heartbeats_total{result="refused"}"#;
    assert!(
        sample(&after, refused) - sample(&before, refused) >= 1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, r#"warren_tunnels{status="failed"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, r#"warren_tunnels{status="active"}"#),
        0.0,
        "{after}"
    );
    assert!(
        after.contains("warren_http_request_duration_seconds_bucket"),
        "{after}"
    );
    assert!(
        sample(&after, r#"warren_db_pool_connections{state="open"}"#) >= 1.0,
        "{after}"
    );
}
