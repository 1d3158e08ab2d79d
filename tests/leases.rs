mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::clock::{age_tunnel, at};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// The lease TTL: not the default (60 s), and long enough that no lease runs out unless a
/// test moves it into the past.
const TTL: Duration = Duration::from_secs(30);
/// How soon after a lease ran out the reaper (every 200 ms in the tests) has expired it.
const REAPED_WITHIN: Duration = Duration::from_secs(2);

fn uuid(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap()
}

async fn stored_status(app: &TestApp, id: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, last_error FROM tunnels WHERE id = $1")
        .bind(uuid(id))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Polls the database (not the API, which would expire the lease itself) until `want`.
async fn wait_for_status(app: &TestApp, id: &str, want: &str, within: Duration) {
    eventually(within, &format!("tunnel {id} to be `{want}`"), || async {
        let (status, _) = stored_status(app, id).await;
        if status == want {
            Ok(())
        } else {
            Err(status)
        }
    })
    .await
}

#[tokio::test]
async fn the_reaper_fails_a_lease_that_is_not_renewed_within_ttl_plus_two_seconds() {
    let app = TestApp::spawn_with(|c| c.lease_ttl = TTL).await;
    let (user, id) = app.user_with_tunnel().await;
    let id = id.as_str();
    let hb = json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;
    // Nothing renews it for a whole TTL: the lease has run out.
    age_tunnel(&app.db, uuid(id), TTL).await;
    let ran_out = at(&hb["lease"]["expiresAt"]) - chrono::Duration::from_std(TTL).unwrap();
    wait_for_status(&app, id, "failed", REAPED_WITHIN).await;
    let (_, last_error) = stored_status(&app, id).await;
    assert_eq!(last_error.as_deref(), Some("lease expired"));

    let after = json_of(
        app.get(&format!("/v1/tunnels/{id}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["status"], "failed");
    assert_eq!(after["lastError"], "lease expired");
    assert_eq!(after["lease"], Value::Null);
    assert_eq!(
        at(&after["stoppedAt"]),
        ran_out,
        "stoppedAt is when the lease ran out"
    );
    let listed = json_of(app.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
    assert_eq!(listed, json!([]));
    let all = json_of(
        app.get("/v1/tunnels?includeInactive=true", &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all[0]["id"], id);
}

#[tokio::test]
async fn a_reaper_that_skips_passes_still_wakes_for_the_earliest_lease_it_saw() {
    // Real time, no backdating: a skipping reaper trusts that leases only move later. With a
    // 4 s TTL it may skip for up to 1 s; the lease must still end within TTL + 2 s.
    let ttl = Duration::from_secs(4);
    let app = TestApp::spawn_with(|c| {
        c.lease_ttl = ttl;
        c.reaper_idle_max = Duration::from_secs(3600);
    })
    .await;
    let (user, id) = app.user_with_tunnel().await;
    let hb = json_of(app.heartbeat(&user.token, &id).await, StatusCode::OK).await;
    let expires = at(&hb["lease"]["expiresAt"]);
    wait_for_status(&app, &id, "failed", ttl + REAPED_WITHIN * 2).await;
    let stopped: DateTime<Utc> = sqlx::query_scalar("SELECT stopped_at FROM tunnels WHERE id = $1")
        .bind(uuid(&id))
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stopped, expires, "stoppedAt is when the lease ran out");
}

#[tokio::test]
async fn one_replicas_pass_lets_every_replica_skip_until_the_earliest_lease_can_end() {
    let skipping = |c: &mut warren::Config| {
        c.lease_ttl = Duration::from_secs(60);
        c.reaper_idle_max = Duration::from_secs(10);
    };
    let a = TestApp::spawn_with(skipping).await;
    a.user_with_tunnel().await;
    // A's pass finds that the earliest lease ends in a minute: no pass is needed for 10 s.
    eventually(
        Duration::from_secs(5),
        "a's pass written to the lease clock",
        || async {
            let skip: Option<bool> = sqlx::query_scalar(
                "SELECT passes_skip_until > now() + interval '5 s' FROM lease_clock",
            )
            .fetch_one(&a.db)
            .await
            .unwrap();
            skip.filter(|skip| *skip)
        },
    )
    .await;
    let passes = metric(&a, "warren_reaper_passes_total").await;
    assert!(passes >= Some(1.0), "{passes:?}");

    // B, started now, ticks ten times meanwhile and makes no pass; nor does A again.
    let b = TestApp::on_database(&a.database_url, skipping).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(metric(&b, "warren_reaper_passes_total").await, None);
    assert_eq!(metric(&a, "warren_reaper_passes_total").await, passes);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn the_reapers_pass_finds_run_out_leases_and_how_long_until_the_next_one_ends() {
    let app = TestApp::spawn_with(|c| {
        c.lease_ttl = TTL;
        c.reaper_interval = Duration::from_secs(3600);
    })
    .await;
    let mut conn = app.db.acquire().await.unwrap();
    let empty = warren::tunnels::leases::due_leases(&mut conn, 10)
        .await
        .unwrap();
    assert!(empty.ids.is_empty());
    assert_eq!(empty.next_due_in, None, "no live lease bounds anything");

    let user = app.user().await;
    let ids = app.tunnel_ids(&user.token, 3).await;
    age_tunnel(&app.db, uuid(&ids[0]), TTL * 2).await;
    age_tunnel(&app.db, uuid(&ids[1]), TTL * 2).await;
    age_tunnel(&app.db, uuid(&ids[2]), TTL / 2).await;
    let pass = warren::tunnels::leases::due_leases(&mut conn, 10)
        .await
        .unwrap();
    let mut due: Vec<String> = pass.ids.iter().map(Uuid::to_string).collect();
    due.sort();
    let mut want = vec![ids[0].clone(), ids[1].clone()];
    want.sort();
    assert_eq!(due, want);
    let next = pass.next_due_in.expect("the third lease is still running");
    assert!(
        next <= TTL / 2 && next > TTL / 2 - Duration::from_secs(10),
        "the third lease ends in about {:?}, not {next:?}",
        TTL / 2
    );
    let capped = warren::tunnels::leases::due_leases(&mut conn, 1)
        .await
        .unwrap();
    assert_eq!(capped.ids.len(), 1, "no more than the limit");
}

#[tokio::test]
async fn a_stopping_tunnel_whose_lease_runs_out_is_stopped_not_failed() {
    let app = TestApp::spawn_with(|c| c.lease_ttl = TTL).await;
    let (user, id) = app.user_with_tunnel().await;
    let id = id.as_str();
    json_of(
        app.patch(
            &format!("/v1/tunnels/{id}"),
            &user.token,
            json!({"status": "stopping"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    age_tunnel(&app.db, uuid(id), TTL).await;
    wait_for_status(&app, id, "stopped", REAPED_WITHIN).await;
    assert_eq!(stored_status(&app, id).await.1, None);
}

#[tokio::test]
async fn heartbeats_keep_a_lease_alive_past_its_ttl() {
    let app = TestApp::spawn_with(|c| c.lease_ttl = TTL).await;
    let user = app.user().await;
    let ids = app.tunnel_ids(&user.token, 2).await;
    let (kept, abandoned) = (ids[0].as_str(), ids[1].as_str());
    // Ten heartbeats a third of a TTL apart, as an agent sends them: over three TTLs in all.
    for _ in 0..10 {
        let hb = json_of(app.heartbeat(&user.token, kept).await, StatusCode::OK).await;
        assert_eq!(hb["status"], "active");
        age_tunnel(&app.db, uuid(kept), TTL / 3).await;
    }
    // A reaper sweep after the last of them (the one that fails the abandoned lease) leaves
    // the renewed one alone.
    age_tunnel(&app.db, uuid(abandoned), TTL).await;
    wait_for_status(&app, abandoned, "failed", REAPED_WITHIN).await;
    assert_eq!(stored_status(&app, kept).await.0, "active");
}

#[tokio::test]
async fn an_expired_lease_is_never_reported_as_live_even_before_the_reaper_runs() {
    let app = TestApp::spawn_with(|c| {
        c.lease_ttl = TTL;
        c.reaper_interval = Duration::from_secs(3600);
    })
    .await;
    let user = app.user().await;
    let a = app
        .tunnel(
            &user.token,
            json!({"slug": "lapsed", "requestedPort": 3000}),
        )
        .await;
    let b = app
        .tunnel(
            &user.token,
            json!({"slug": "lapsed-too", "requestedPort": 3000}),
        )
        .await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    json_of(app.heartbeat(&user.token, a_id).await, StatusCode::OK).await;
    // Both leases ran out a moment ago; the reaper ran once, at the start, and not since.
    let before: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&app.db)
        .await
        .unwrap();
    for id in [a_id, b_id] {
        age_tunnel(&app.db, uuid(id), TTL + Duration::from_secs(1)).await;
    }

    let listed = json_of(app.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
    assert_eq!(
        listed,
        json!([]),
        "expired tunnels must not be listed as live"
    );
    let shown = json_of(
        app.get(&format!("/v1/tunnels/{a_id}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["lastError"], "lease expired");
    let p = problem_of(
        app.heartbeat(&user.token, b_id).await,
        StatusCode::CONFLICT,
        "lease_expired",
    )
    .await;
    assert_eq!(p["tunnelStatus"], "failed");
    // The slug is free for anyone at once.
    let other = app.user().await;
    let reused = app
        .tunnel(&other.token, json!({"slug": "lapsed", "requestedPort": 1}))
        .await;
    assert_eq!(reused["status"], "creating");
    let reaped: bool = sqlx::query_scalar("SELECT reaper_ran_at >= $1 FROM lease_clock")
        .bind(before)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!reaped, "the reaper ran meanwhile: this proves nothing");
}

#[tokio::test]
async fn a_list_page_is_full_after_the_run_out_leases_on_it_are_expired_as_it_is_read() {
    let app = TestApp::spawn_with(|c| {
        c.lease_ttl = TTL;
        c.reaper_interval = Duration::from_secs(3600);
    })
    .await;
    let user = app.user().await;
    let mut ids = Vec::new();
    for n in 1..=4 {
        let t = app
            .tunnel(
                &user.token,
                json!({"slug": format!("paged-{n}"), "requestedPort": 3000}),
            )
            .await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    // The two newest, the first page's, ran out; their creation times stay as they were.
    for id in &ids[2..] {
        common::clock::backdate(
            &app.db,
            "UPDATE tunnels SET lease_expires_at = lease_expires_at - $2 WHERE id = $1",
            uuid(id),
            TTL + Duration::from_secs(1),
        )
        .await;
    }

    let response = app.get("/v1/tunnels?limit=2", &user.token).await;
    assert!(
        response.headers().get("link").is_none(),
        "two live tunnels fill the page: no next page"
    );
    let listed = json_of(response, StatusCode::OK).await;
    let shown: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        shown,
        [ids[1].as_str(), ids[0].as_str()],
        "newest live first"
    );
    for id in &ids[2..] {
        assert_eq!(
            stored_status(&app, id).await,
            ("failed".to_owned(), Some("lease expired".to_owned()))
        );
    }
    let all = json_of(
        app.get("/v1/tunnels?includeInactive=true&limit=2", &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all[0]["id"], ids[3].as_str());
    assert_eq!(all[0]["status"], "failed");
}

#[tokio::test]
async fn racing_transitions_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    for (setup, targets) in [
        (vec![], vec!["stopping"; 16]),
        (
            vec!["stopping"],
            vec![
                "stopped", "failed", "stopped", "failed", "stopped", "failed", "stopped", "failed",
            ],
        ),
    ] {
        let t = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
        let id = t["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/tunnels/{id}");
        for step in setup {
            json_of(
                app.patch(&path, &user.token, json!({"status": step})).await,
                StatusCode::OK,
            )
            .await;
        }
        let requests = targets.iter().map(|to| {
            let body = if *to == "failed" {
                json!({"status": to, "lastError": "x"})
            } else {
                json!({"status": to})
            };
            app.patch(&path, &user.token, body)
        });
        let responses = futures::future::join_all(requests).await;
        let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
        let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(winners, 1, "{statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "{statuses:?}"
        );
        let changes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tunnel_transitions WHERE tunnel_id = $1 AND to_status = ANY($2)",
        )
        .bind(Uuid::parse_str(&id).unwrap())
        .bind(targets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(changes, 1);
    }
}

#[tokio::test]
async fn two_servers_on_one_database_expire_each_lease_exactly_once() {
    let a = TestApp::spawn_with(|c| {
        c.lease_ttl = Duration::from_secs(1);
        c.reaper_interval = Duration::from_millis(20);
        c.reaper_batch = 25;
    })
    .await;
    let b = TestApp::on_database(&a.database_url, |c| {
        c.lease_ttl = Duration::from_secs(1);
        c.reaper_interval = Duration::from_millis(20);
        c.reaper_batch = 25;
    })
    .await;
    let user = a.user().await;
    // Many leases that run out together, straight into the table; plus a few kept alive.
    let account = Uuid::parse_str(&user.account_id).unwrap();
    sqlx::query(
        "INSERT INTO tunnels (id, account_id, slug, status, requested_port, lease_expires_at)
         SELECT gen_random_uuid(), $1, 'bulk-' || i, CASE WHEN i % 3 = 0 THEN 'stopping' ELSE 'active' END, 80,
                now() + interval '500 milliseconds'
         FROM generate_series(1, 1000) AS i",
    )
    .bind(account)
    .execute(&a.db)
    .await
    .unwrap();
    let mut kept = Vec::new();
    for i in 0..4 {
        let t = a
            .tunnel(
                &user.token,
                json!({"slug": format!("kept-{i}"), "requestedPort": 1}),
            )
            .await;
        kept.push(t["id"].as_str().unwrap().to_owned());
    }
    let start = Instant::now();
    eventually(Duration::from_secs(5), "every bulk lease expired", || async {
        for id in &kept {
            // Alternate replicas: either one's answer is the same truth.
            let app = if start.elapsed().as_millis() % 2 == 0 {
                &a
            } else {
                &b
            };
            json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;
        }
        let live: i64 = sqlx::query_scalar("SELECT count(*) FROM tunnels WHERE slug LIKE 'bulk-%' AND status IN ('creating','active','stopping')")
            .fetch_one(&a.db)
            .await
            .unwrap();
        if live == 0 {
            Ok(())
        } else {
            Err(format!("{live} leases still live"))
        }
    })
    .await;
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT tunnel_id FROM tunnel_transitions GROUP BY tunnel_id HAVING count(*) > 1) t",
    )
    .fetch_one(&a.db)
    .await
    .unwrap();
    assert_eq!(twice, 0, "some tunnel was transitioned more than once");
    let (failed, stopped): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE to_status = 'failed'), count(*) FILTER (WHERE to_status = 'stopped') FROM tunnel_transitions",
    )
    .fetch_one(&a.db)
    .await
    .unwrap();
    assert_eq!((failed, stopped), (667, 333));
    for id in &kept {
        assert_eq!(
            stored_status(&a, id).await.0,
            "active",
            "a renewed lease was reaped"
        );
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn stopped_and_failed_tunnels_are_pruned_after_the_history_retention() {
    let app = TestApp::spawn_with(|c| c.history_retention = Duration::from_secs(3600)).await;
    let user = app.user().await;
    let old = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
    let recent = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
    let live = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
    for t in [&old, &recent] {
        let id = t["id"].as_str().unwrap();
        json_of(
            app.patch(
                &format!("/v1/tunnels/{id}"),
                &user.token,
                json!({"status": "failed", "lastError": "x"}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    sqlx::query("UPDATE tunnels SET stopped_at = now() - interval '2 hours' WHERE id = $1")
        .bind(Uuid::parse_str(old["id"].as_str().unwrap()).unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    let all = eventually(
        Duration::from_secs(5),
        "the history past its retention to go",
        || async {
            let all = json_of(
                app.get("/v1/tunnels?includeInactive=true", &user.token)
                    .await,
                StatusCode::OK,
            )
            .await;
            let kept = all.as_array().unwrap().iter().any(|t| t["id"] == old["id"]);
            (!kept).then_some(all)
        },
    )
    .await;
    let ids: Vec<&Value> = all.as_array().unwrap().iter().map(|t| &t["id"]).collect();
    assert_eq!(
        ids,
        vec![&live["id"], &recent["id"]],
        "only the old history goes"
    );
}
