//! Warren while its database is down: 503, not 500, and recovery without a restart.
mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use warren::db::embedded::EmbeddedPostgres;

#[tokio::test]
async fn readyz_and_the_api_answer_503_while_postgresql_is_down_and_recover_by_themselves() {
    // A cluster of this test's own, since it is stopped and started again.
    let dir = scratch_dir("warren-outage");
    let pg = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || EmbeddedPostgres::start(&dir).unwrap()
    })
    .await
    .unwrap();
    warren::db::ensure_database(&pg.url("postgres"), "warren")
        .await
        .unwrap();
    let url = pg.url("warren");
    let pool = warren::db::connect(&url, Duration::from_secs(10))
        .await
        .unwrap();
    warren::db::migrate(&pool).await.unwrap();
    pool.close().await;

    let app = TestApp::on_database(&url, |_| {}).await;
    let user = app.user().await;
    let t = app
        .tunnel(&user.token, json!({"requestedPort": 3000}))
        .await;
    let id = t["id"].as_str().unwrap();
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.kill().unwrap();
        pg
    })
    .await
    .unwrap();
    let started = Instant::now();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    problem_of(
        ready,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    let hb = app.heartbeat(&user.token, id).await;
    assert_eq!(hb.headers()["retry-after"], "1");
    problem_of(hb, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    problem_of(
        app.get("/v1/tunnels", &user.token).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answers while down must come fast: {:?}",
        started.elapsed()
    );
    // The process itself is still up.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    let back = Instant::now();
    loop {
        if app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
        {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not ready 5 s after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hb = json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;
    assert_eq!(hb["status"], "active");
    app.stop().await;
    tokio::task::spawn_blocking(move || pg.kill())
        .await
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
