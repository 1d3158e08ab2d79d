//! The heartbeat pipeline's semantics (group commit): speed is measured by bench/, not here.
mod common;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::clock::age_connector;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn stored_heartbeats(app: &TestApp) -> HashMap<String, Option<DateTime<Utc>>> {
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, last_heartbeat_at FROM tunnels")
            .fetch_all(&app.db)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, at)| (id.to_string(), at))
        .collect()
}

fn at(v: &Value) -> DateTime<Utc> {
    v["lease"]["lastHeartbeatAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_heartbeat_answered_200_is_in_the_database() {
    let app = TestApp::spawn_with(|c| c.heartbeat_flushes_in_flight = 2).await;
    let user = app.user().await;
    let token = app.api_token(&user, &["tunnels:heartbeat"]).await;
    let ids = app.tunnel_ids(&user.token, 40).await;
    let requests = (0..400).map(|i| app.heartbeat(&token, &ids[i % ids.len()]));
    let responses = futures::future::join_all(requests).await;
    let mut latest: HashMap<String, DateTime<Utc>> = HashMap::new();
    for response in responses {
        let body = json_of(response, StatusCode::OK).await;
        let id = body["id"].as_str().unwrap().to_owned();
        let when = at(&body);
        let entry = latest.entry(id).or_insert(when);
        *entry = (*entry).max(when);
    }
    assert_eq!(
        latest.len(),
        ids.len(),
        "every request answered its own tunnel"
    );
    let stored = stored_heartbeats(&app).await;
    for (id, acknowledged) in latest {
        let stored = stored[&id].expect("renewed");
        assert!(
            stored >= acknowledged,
            "tunnel {id}: acknowledged {acknowledged}, stored {stored}"
        );
    }
}

#[tokio::test]
async fn a_batch_with_a_terminal_or_foreign_tunnel_refuses_only_that_request() {
    let app = TestApp::spawn_with(|c| c.heartbeat_flushes_in_flight = 1).await;
    let user = app.user().await;
    let other = app.user().await;
    let ids = app.tunnel_ids(&user.token, 20).await;
    let stopped = ids[7].clone();
    app.patch(
        &format!("/v1/tunnels/{stopped}"),
        &user.token,
        json!({"status": "stopping"}),
    )
    .await;
    app.patch(
        &format!("/v1/tunnels/{stopped}"),
        &user.token,
        json!({"status": "stopped"}),
    )
    .await;
    let foreign = app.tunnel(&other.token, json!({"requestedPort": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut requests = Vec::new();
    for id in &ids {
        requests.push((id.clone(), app.heartbeat(&user.token, id)));
    }
    requests.push((foreign.clone(), app.heartbeat(&user.token, &foreign)));
    let (names, futures): (Vec<_>, Vec<_>) = requests.into_iter().unzip();
    let responses = futures::future::join_all(futures).await;
    for (id, response) in names.into_iter().zip(responses) {
        if id == stopped {
            problem_of(response, StatusCode::CONFLICT, "tunnel_not_live").await;
        } else if id == foreign {
            problem_of(response, StatusCode::NOT_FOUND, "not_found").await;
        } else {
            assert_eq!(json_of(response, StatusCode::OK).await["status"], "active");
        }
    }
    let untouched: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_heartbeat_at FROM tunnels WHERE id = $1")
            .bind(Uuid::parse_str(&foreign).unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        untouched, None,
        "another account's heartbeat renewed the tunnel"
    );
}

#[tokio::test]
async fn stopping_the_server_answers_or_refuses_in_flight_heartbeats_and_loses_none_it_answered() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = app.api_token(&user, &["tunnels:heartbeat"]).await;
    let ids = app.tunnel_ids(&user.token, 30).await;
    let db = app.db.clone();
    let client = app.client.clone();
    let base = app.base.clone();
    let load = tokio::spawn(async move {
        let requests = (0..300).map(|i| {
            let url = format!("{base}/v1/tunnels/{}/heartbeat", ids[i % ids.len()]);
            try_send_checked(client.post(url).bearer_auth(&token))
        });
        futures::future::join_all(requests).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    app.stop().await;
    let responses = load.await.unwrap();
    let mut answered = 0;
    for response in responses.into_iter().flatten() {
        if response.status() != StatusCode::OK {
            continue;
        }
        let body: Value = response.json().await.unwrap();
        let id = Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
        let stored: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT last_heartbeat_at FROM tunnels WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap();
        assert!(
            stored.unwrap() >= at(&body),
            "an acknowledged heartbeat was lost"
        );
        answered += 1;
    }
    assert!(answered > 0, "no heartbeat was answered before the stop");
}

#[tokio::test]
async fn an_unchanged_connector_rides_the_batch_and_a_changed_one_is_still_written() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let id = app.tunnel_ids(&user.token, 1).await.remove(0);
    let connector = Uuid::new_v4();
    let report = |version: &str| {
        json!({"connector": {"id": connector, "arch": "linux_amd64", "version": version, "configVersion": 0,
            "features": ["ha-origin"], "runAt": "2026-03-05T10:30:00.000Z",
            "connections": [{"id": Uuid::new_v4(), "coloName": "FRA", "openedAt": "2026-03-05T10:30:01.000Z"}]}})
    };
    let first = report("2026.1.0");
    let path = format!("/v1/tunnels/{id}/heartbeat");
    json_of(
        app.post(&path, &user.token, first.clone()).await,
        StatusCode::OK,
    )
    .await;
    let seen = || async {
        let at: DateTime<Utc> =
            sqlx::query_scalar("SELECT last_seen_at FROM connectors WHERE id = $1")
                .bind(connector)
                .fetch_one(&app.db)
                .await
                .unwrap();
        at
    };
    // Last seen a minute ago, so that a bump cannot hide inside the clock's resolution.
    age_connector(&app.db, connector, std::time::Duration::from_secs(60)).await;
    let before = seen().await;
    json_of(app.post(&path, &user.token, first).await, StatusCode::OK).await;
    assert!(
        seen().await > before,
        "an unchanged connector's liveness was not bumped"
    );

    json_of(
        app.post(&path, &user.token, report("2026.2.0")).await,
        StatusCode::OK,
    )
    .await;
    let listed = json_of(
        app.get(&format!("/v1/tunnels/{id}/connections"), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed[0]["version"], "2026.2.0", "{listed}");
}

#[tokio::test]
async fn a_batch_that_postgresql_picks_as_a_deadlock_victim_is_tried_again_and_answered_200() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let t = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
        ids.push(Uuid::parse_str(t["id"].as_str().unwrap()).unwrap());
    }
    ids.sort();
    let (a, b, z) = (ids[0], ids[1], ids[2]);
    // On a table of three rows PostgreSQL scans it whole, in heap order; on a table of some
    // size the batch's plan is the nested loop over the primary key that locks in id order,
    // which this choreography relies on.
    sqlx::query(
        "INSERT INTO tunnels (id, account_id, slug, status, requested_port, lease_expires_at)
         SELECT gen_random_uuid(), account_id, 'filler-' || i, 'active', 1, now() + interval '1 day'
         FROM generate_series(1, 5000) i, (SELECT account_id FROM tunnels WHERE id = $1) owner",
    )
    .bind(a)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("ANALYZE tunnels")
        .execute(&app.db)
        .await
        .unwrap();
    let lock = |id: Uuid| sqlx::query("SELECT 1 FROM tunnels WHERE id = $1 FOR UPDATE").bind(id);
    // `holder` holds z, so the one flush in flight waits on it while a and b queue behind it
    // and then go out together in one batch.
    let mut holder = app.db.begin().await.unwrap();
    lock(z).execute(&mut *holder).await.unwrap();
    // `rival` holds b, and later asks for a, which the batch holds by then: a deadlock. Its
    // own deadlock check comes long after the batch's, so the batch is the victim.
    let mut rival = app.db.begin().await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '20s'")
        .execute(&mut *rival)
        .await
        .unwrap();
    lock(b).execute(&mut *rival).await.unwrap();

    let pause = || tokio::time::sleep(std::time::Duration::from_millis(300));
    let later = |id: Uuid| {
        let app = &app;
        let token = user.token.clone();
        async move {
            pause().await;
            app.heartbeat(&token, &id.to_string()).await
        }
    };
    let choreography = async {
        pause().await;
        pause().await;
        holder.commit().await.unwrap();
        pause().await;
        lock(a).execute(&mut *rival).await.unwrap();
        rival.commit().await.unwrap();
    };
    let first = z.to_string();
    let (hz, ha, hb, ()) = tokio::join!(
        app.heartbeat(&user.token, &first),
        later(a),
        later(b),
        choreography
    );
    for answer in [hz, ha, hb] {
        json_of(answer, StatusCode::OK).await;
    }
    assert!(
        metric(
            &app,
            r#"warren_heartbeat_batch_retries_total{reason="deadlock"}"#
        )
        .await
        .is_some_and(|n| n >= 1.0),
        "the batch was not tried again"
    );
}
