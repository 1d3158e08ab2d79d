//! The outage grace: when Warren or its database was down for longer than a lease's TTL,
//! agents that could not heartbeat meanwhile keep their tunnels once they resume, and leases
//! nobody renews still run out, one full TTL after the recovery.
mod common;

use std::time::Duration;

use chrono::Utc;
use common::clock::{as_if_down_for, at};
use common::transitions::{failures, graced};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const TTL: Duration = Duration::from_secs(3);

/// Agents heartbeating `ids` every TTL/3 through whatever happens (errors are retried on the
/// next beat) until `stop`.
fn agents(app: &TestApp, token: &str, ids: &[String], stop: &CancellationToken) {
    for id in ids {
        let (client, url, token, stop) = (
            app.client.clone(),
            app.url(&format!("/v1/tunnels/{id}/heartbeat")),
            token.to_owned(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let _ = client.post(&url).bearer_auth(&token).send().await;
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(TTL / 3) => {}
                }
            }
        });
    }
}

async fn tunnel(app: &TestApp, token: &str, id: &str) -> Value {
    json_of(
        app.get(&format!("/v1/tunnels/{id}"), token).await,
        StatusCode::OK,
    )
    .await
}

/// Waits until the abandoned tunnel has run out, and returns it.
async fn expired(app: &TestApp, token: &str, id: &str, within: Duration) -> Value {
    eventually(within, &format!("{id} to expire"), || async {
        let t = tunnel(app, token, id).await;
        let live = t["status"] == "active" || t["status"] == "creating";
        if live {
            Err(t)
        } else {
            Ok(t)
        }
    })
    .await
}

#[tokio::test]
async fn no_tunnel_fails_for_a_postgresql_outage_longer_than_the_ttl_when_its_agent_resumes() {
    let dir = scratch_dir("warren-grace");
    let (pg, url) = own_cluster(&dir).await;
    let app = TestApp::on_database(&url, |c| c.lease_ttl = TTL).await;
    let user = app.user().await;
    let resuming = app.tunnel_ids(&user.token, 5).await;
    let abandoned = app.tunnel_ids(&user.token, 1).await.remove(0);
    let stop = CancellationToken::new();
    agents(&app, &user.token, &resuming, &stop);
    eventually(TTL, "every agent's first heartbeat", || async {
        for id in &resuming {
            let t = tunnel(&app, &user.token, id).await;
            if t["status"] != "active" {
                return Err(t);
            }
        }
        Ok(())
    })
    .await;

    // Down for longer than the TTL, while the agents keep trying. (A real outage: the
    // reaper cannot run, whatever the clock says.)
    let pg = kill_cluster(pg).await;
    tokio::time::sleep(TTL + Duration::from_secs(2)).await;
    let pg = restart_cluster(pg).await;
    let recovered = Utc::now();

    // Until a reaper sweep after the grace has run: one that would have failed every lease
    // given no grace.
    eventually(TTL * 2, "a reaper sweep after the grace", || async {
        let swept: Option<bool> =
            sqlx::query_scalar("SELECT reaper_ran_at > last_grace_at FROM lease_clock")
                .fetch_one(&app.db)
                .await
                .unwrap();
        swept.filter(|swept| *swept)
    })
    .await;
    for id in &resuming {
        assert_eq!(tunnel(&app, &user.token, id).await["status"], "active");
    }
    assert_eq!(failures(&app.db, &resuming).await, 0);

    // The lease nobody renews still runs out: one TTL after the recovery, not before.
    let gone = expired(&app, &user.token, &abandoned, TTL * 4).await;
    assert_eq!(gone["status"], "failed");
    assert_eq!(gone["lastError"], "lease expired");
    assert!(
        at(&gone["stoppedAt"]) >= recovered + chrono::Duration::from_std(TTL / 2).unwrap(),
        "the abandoned lease got no grace: {gone}"
    );
    assert!(graced(&app.db).await);
    assert!(metric(&app, "warren_outage_graces_total").await >= Some(1.0));

    stop.cancel();
    for id in &resuming {
        assert_eq!(tunnel(&app, &user.token, id).await["status"], "active");
    }
    app.stop().await;
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn no_tunnel_fails_for_a_warren_outage_longer_than_the_ttl_when_its_agent_resumes() {
    let url = fresh_database().await;
    let first = TestApp::on_database(&url, |c| c.lease_ttl = TTL).await;
    let user = first.user().await;
    let token = first
        .api_token(
            &user,
            &["tunnels:read", "tunnels:write", "tunnels:heartbeat"],
        )
        .await;
    let resuming = first.tunnel_ids(&token, 3).await;
    let abandoned = first.tunnel_ids(&token, 1).await.remove(0);
    let db = first.db.clone();
    first.stop().await;

    // Warren is down for longer than the TTL (its clocks in the database say so); then a new
    // process starts on the database.
    as_if_down_for(&db, TTL + Duration::from_secs(1)).await;
    let started = Utc::now();
    let app = TestApp::on_database(&url, |c| c.lease_ttl = TTL).await;
    for id in &resuming {
        let beat = json_of(app.heartbeat(&token, id).await, StatusCode::OK).await;
        assert_eq!(beat["status"], "active");
    }
    let stop = CancellationToken::new();
    agents(&app, &token, &resuming, &stop);

    let gone = expired(&app, &token, &abandoned, TTL * 4).await;
    assert_eq!(gone["lastError"], "lease expired");
    assert!(
        at(&gone["stoppedAt"]) >= started + chrono::Duration::from_std(TTL / 2).unwrap(),
        "the abandoned lease got no grace: {gone}"
    );
    for id in &resuming {
        assert_eq!(tunnel(&app, &token, id).await["status"], "active");
    }
    assert_eq!(failures(&app.db, &resuming).await, 0);
    assert!(graced(&app.db).await);
    stop.cancel();
    app.stop().await;
}

#[tokio::test]
async fn a_reaper_that_keeps_running_gives_no_grace_and_expires_leases_on_time() {
    let app = TestApp::spawn_with(|c| c.lease_ttl = Duration::from_secs(1)).await;
    let user = app.user().await;
    let id = app.tunnel_ids(&user.token, 1).await.remove(0);
    let created = tunnel(&app, &user.token, &id).await;
    let gone = expired(&app, &user.token, &id, Duration::from_secs(20)).await;
    assert_eq!(gone["stoppedAt"], created["lease"]["expiresAt"]);
    assert!(!graced(&app.db).await);
}

#[tokio::test]
async fn the_grace_holds_every_lease_until_one_ttl_after_recovery_without_rewriting_a_tunnel() {
    let url = fresh_database().await;
    let first = TestApp::on_database(&url, |c| c.lease_ttl = TTL).await;
    let user = first.user().await;
    let id = first.tunnel_ids(&user.token, 1).await.remove(0);
    let db = first.db.clone();
    first.stop().await;
    as_if_down_for(&db, TTL + Duration::from_secs(1)).await;
    let row = "SELECT xmin::text, lease_expires_at FROM tunnels WHERE id = $1::uuid";
    let before: (String, chrono::DateTime<Utc>) =
        sqlx::query_as(row).bind(&id).fetch_one(&db).await.unwrap();

    let app = TestApp::on_database(&url, |c| c.lease_ttl = TTL).await;
    let until: chrono::DateTime<Utc> = eventually(TTL, "the grace", || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<Utc>>>(
            "SELECT grace_until FROM lease_clock",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    })
    .await;
    let shown = tunnel(&app, &user.token, &id).await;
    assert_eq!(shown["status"], "creating");
    assert_eq!(at(&shown["lease"]["expiresAt"]), until, "{shown}");
    let after: (String, chrono::DateTime<Utc>) = sqlx::query_as(row)
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(after, before, "the grace rewrote the tunnel's row");

    // Nobody renews it: it ends with the grace, not before and not at its own old end.
    let gone = expired(&app, &user.token, &id, TTL * 4).await;
    assert_eq!(gone["status"], "failed");
    assert_eq!(at(&gone["stoppedAt"]), until, "{gone}");
    app.stop().await;
}
