//! Warren while its database is down: 503, not 500, and recovery without a restart.
mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use warren::db::embedded::EmbeddedPostgres;

/// A cluster of the test's own, which it may kill and restart: its scratch dir and URL.
async fn start(name: &str) -> (std::path::PathBuf, EmbeddedPostgres, String) {
    let dir = scratch_dir(name);
    let (pg, url) = own_cluster(&dir).await;
    (dir, pg, url)
}

async fn teardown(app: TestApp, pg: EmbeddedPostgres, dir: &std::path::Path) {
    app.stop().await;
    tokio::task::spawn_blocking(move || pg.kill())
        .await
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn readyz_and_the_api_answer_503_while_postgresql_is_down_and_recover_by_themselves() {
    let (dir, pg, url) = start("warren-outage").await;
    let app = TestApp::on_database(&url, |_| {}).await;
    let (user, id) = app.user_with_tunnel().await;
    let id = id.as_str();
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status(),
        StatusCode::OK
    );

    let pg = kill_cluster(pg).await;
    let started = Instant::now();
    let ready = app.send(app.client.get(app.url("/readyz"))).await;
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
    // The gate is closed: requests are refused without trying the database (no connection
    // attempts pile up), which the gauge shows, and a burst of them all get a clean 503.
    assert_eq!(metric(&app, "warren_database_reachable").await, Some(0.0));
    let burst = Instant::now();
    let answers = futures::future::join_all((0..200).map(|_| app.heartbeat(&user.token, id))).await;
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()["retry-after"], "1");
    }
    eprintln!(
        "200 heartbeats while PostgreSQL is down answered 503 in {:?}",
        burst.elapsed()
    );
    // The process itself is still up.
    assert_eq!(
        app.send(app.client.get(app.url("/healthz"))).await.status(),
        StatusCode::OK
    );

    let pg = restart_cluster(pg).await;
    let back = Instant::now();
    eventually(
        Duration::from_secs(5),
        "ready within 5 s of the database's return",
        || async {
            let status = app.send(app.client.get(app.url("/readyz"))).await.status();
            (status == StatusCode::OK).then_some(())
        },
    )
    .await;
    eprintln!("ready again {:?} after PostgreSQL returned", back.elapsed());
    let hb = json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;
    assert_eq!(hb["status"], "active");
    assert_eq!(metric(&app, "warren_database_reachable").await, Some(1.0));
    teardown(app, pg, &dir).await;
}

#[tokio::test]
async fn no_heartbeat_answered_200_is_lost_when_postgresql_dies_under_load() {
    let (dir, pg, url) = start("warren-pgkill").await;
    let app = TestApp::on_database(&url, |_| {}).await;
    let user = app.user().await;
    let token = app.api_token(&user, &["tunnels:heartbeat"]).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            app.tunnel(&user.token, json!({"requestedPort": 1})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Heartbeat load from 8 workers; remember the newest acknowledged renewal per tunnel.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        String,
    >::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, base, token, ids, acked, stop) = (
            app.client.clone(),
            app.base.clone(),
            token.clone(),
            ids.clone(),
            acked.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = w;
            let mut sent = 0;
            while !stop.is_cancelled() {
                n += 8;
                let id = &ids[n % ids.len()];
                sent += 1;
                let Ok(r) = try_send_checked(
                    client
                        .post(format!("{base}/v1/tunnels/{id}/heartbeat"))
                        .bearer_auth(&token),
                )
                .await
                else {
                    continue;
                };
                if r.status() == StatusCode::OK {
                    let body: serde_json::Value = r.json().await.unwrap();
                    let at = body["lease"]["lastHeartbeatAt"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    let mut map = acked.lock().unwrap();
                    let entry = map.entry(id.clone()).or_default();
                    if at > *entry {
                        *entry = at;
                    }
                }
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pg = kill_cluster(pg).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let mut sent = 0;
    for w in workers {
        sent += w.await.unwrap();
    }
    let pg = restart_cluster(pg).await;

    let acked = acked.lock().unwrap().clone();
    assert!(
        !acked.is_empty() && sent > acked.len(),
        "the load did not run"
    );
    let check = sqlx::PgPool::connect(&url).await.unwrap();
    for (id, at) in &acked {
        let stored: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT last_heartbeat_at FROM tunnels WHERE id = $1")
                .bind(uuid::Uuid::parse_str(id).unwrap())
                .fetch_one(&check)
                .await
                .unwrap();
        let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        assert!(
            stored.is_some_and(|s| s >= at),
            "tunnel {id}: acknowledged {at}, stored {stored:?}"
        );
    }
    check.close().await;
    teardown(app, pg, &dir).await;
}

#[tokio::test]
async fn the_first_heartbeat_after_a_postgresql_restart_is_renewed_not_refused() {
    // The batcher keeps its connection between batches; after a restart that connection is
    // dead, and the batch must be renewed on a fresh one rather than answered 503.
    let (dir, pg, url) = start("warren-restart").await;
    let app = TestApp::on_database(&url, |_| {}).await;
    let (user, id) = app.user_with_tunnel().await;
    let id = id.as_str();
    json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;

    let pg = restart_cluster(kill_cluster(pg).await).await;
    let hb = json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;
    assert_eq!(hb["status"], "active");
    assert_eq!(metric(&app, "warren_database_reachable").await, Some(1.0));
    teardown(app, pg, &dir).await;
}
