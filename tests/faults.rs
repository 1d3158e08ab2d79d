//! Process faults with the real binary: `kill -9` of one of two replicas under load.
mod common;

use std::collections::HashMap;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

fn replica(url: &str, port: u16) -> Child {
    process::serve(url, port, &[("WARREN_LEASE_TTL_SECS", "2")])
}

#[tokio::test]
async fn the_survivor_of_a_kill_9_keeps_serving_and_reaping_and_loses_nothing_acknowledged() {
    let url = fresh_database().await;
    let (pa, pb) = (free_port(), free_port());
    let (a, b) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    let mut victim = replica(&url, pa);
    let mut survivor = replica(&url, pb);
    process::ready(&a, &mut victim).await;
    process::ready(&b, &mut survivor).await;

    let client = reqwest::Client::new();
    send_checked(
        client
            .post(format!("{a}/v1/auth/register"))
            .json(&json!({"email": "ha@example.com", "password": PASSWORD})),
    )
    .await;
    let login: Value = send_checked(
        client
            .post(format!("{a}/v1/auth/login"))
            .json(&json!({"email": "ha@example.com", "password": PASSWORD})),
    )
    .await
    .json()
    .await
    .unwrap();
    let jwt = login["accessToken"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let t: Value = send_checked(
            client
                .post(format!("{a}/v1/tunnels"))
                .bearer_auth(&jwt)
                .json(&json!({"requestedPort": 1})),
        )
        .await
        .json()
        .await
        .unwrap();
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    let (kept, abandoned) = ids.split_at(10);

    // Heartbeats for the kept half, alternating replicas, from 6 workers.
    let acked: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..6usize {
        let (client, jwt, kept, acked, stop, a, b) = (
            client.clone(),
            jwt.clone(),
            kept.to_vec(),
            acked.clone(),
            stop.clone(),
            a.clone(),
            b.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = w;
            while !stop.is_cancelled() {
                n += 6;
                // Every worker alternates replicas and, over its rounds, meets tunnels of both.
                let base = if (n / 6) % 2 == 0 { &a } else { &b };
                let id = &kept[n % kept.len()];
                let sent = try_send_checked(
                    client
                        .post(format!("{base}/v1/tunnels/{id}/heartbeat"))
                        .bearer_auth(&jwt)
                        .timeout(Duration::from_secs(2)),
                )
                .await;
                let Ok(r) = sent else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                if r.status() == StatusCode::OK {
                    let body: Value = r.json().await.unwrap();
                    let at: DateTime<Utc> = body["lease"]["lastHeartbeatAt"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let mut map = acked.lock().unwrap();
                    let entry = map.entry(id.clone()).or_insert(at);
                    *entry = (*entry).max(at);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    process::kill_9(victim);
    // Past the abandoned half's TTL + the reaper's 2 s, with only the survivor left.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }

    assert_eq!(
        send_checked(client.get(format!("{b}/readyz")))
            .await
            .status(),
        StatusCode::OK
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for id in abandoned {
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, last_error FROM tunnels WHERE id = $1")
                .bind(Uuid::parse_str(id).unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(
            (status.as_str(), error.as_deref()),
            ("failed", Some("lease expired")),
            "the survivor did not reap {id}"
        );
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), kept.len(), "every kept tunnel was heartbeated");
    for (id, at) in &acked {
        let (status, stored): (String, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT status, last_heartbeat_at FROM tunnels WHERE id = $1")
                .bind(Uuid::parse_str(id).unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(status, "active", "{id}");
        assert!(
            stored.is_some_and(|s| s >= *at),
            "tunnel {id}: acknowledged {at}, stored {stored:?}"
        );
    }
    let twice = common::transitions::transitioned_twice(&pool).await;
    assert_eq!(twice, 0, "a tunnel was transitioned twice");

    process::terminate(survivor);
}
