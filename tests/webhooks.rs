//! Webhooks end to end, against real PostgreSQL and a real receiver on a loopback port:
//! signatures checked by the independent `standardwebhooks` crate, order, retries with
//! backoff, 410 and a spent retry window disabling the endpoint, the address policy, secret
//! rotation, redelivery, pings, and a delivery abandoned by a stopped server.
mod common;

use std::time::Duration;

use common::receiver::{Received, Receiver, Reply};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use standardwebhooks::Webhook;
use uuid::Uuid;
use warren::Config;

const WAIT: Duration = Duration::from_secs(15);

/// Deliveries to loopback allowed (the receiver is there), retries after ~50 ms.
fn fast(c: &mut Config) {
    c.webhooks.allow_private = true;
    c.webhooks.backoff_base = Duration::from_millis(50);
    c.webhooks.poll_interval = Duration::from_millis(50);
}

async fn endpoint(app: &TestApp, token: &str, body: Value) -> Value {
    app.webhook(token, body).await
}

/// A receiver that answers as `replies` say (then 200), an endpoint of the user's for it that
/// takes `tunnel.created.v1`, and one tunnel created: the endpoint, once its first delivery
/// has reached the receiver, and what the receiver got.
async fn one_delivery_underway(
    app: &TestApp,
    token: &str,
    replies: impl IntoIterator<Item = Reply>,
) -> (Receiver, Value, Vec<Received>) {
    let receiver = Receiver::start().await;
    receiver.then(replies);
    let hook = endpoint(
        app,
        token,
        json!({"url": receiver.url, "types": ["tunnel.created.v1"]}),
    )
    .await;
    app.tunnel_ids(token, 1).await;
    let got = receiver.wait_for(1, WAIT).await;
    (receiver, hook, got)
}

/// Queues a ping to the endpoint `id`; its delivery.
async fn ping(app: &TestApp, token: &str, id: &str) -> Value {
    let queued = app
        .post(&format!("/v1/webhooks/{id}/ping"), token, json!({}))
        .await;
    json_of(queued, StatusCode::ACCEPTED).await
}

/// Waits until the endpoint at `path` is disabled; it.
async fn disabled(app: &TestApp, token: &str, path: &str) -> Value {
    eventually(WAIT, "the endpoint disabled", || async {
        let e = json_of(app.get(path, token).await, StatusCode::OK).await;
        match e["enabled"] == false {
            true => Ok(e),
            false => Err(e),
        }
    })
    .await
}

/// Waits until the endpoint's log holds `n` deliveries, every one succeeded; the log.
async fn all_succeeded(app: &TestApp, token: &str, id: &str, n: usize) -> Vec<Value> {
    eventually(WAIT, &format!("{n} deliveries succeeded"), || async {
        let log = deliveries(app, token, id).await;
        match log.len() == n && log.iter().all(|d| d["state"] == "succeeded") {
            true => Ok(log),
            false => Err(Value::Array(log)),
        }
    })
    .await
}

async fn deliveries(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let page = app
        .get(&format!("/v1/webhooks/{id}/deliveries"), token)
        .await;
    json_of(page, StatusCode::OK)
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// Checks a request as a Standard Webhooks receiver does, with `secret`.
fn verify(secret: &str, got: &Received) {
    let webhook = Webhook::new(secret).unwrap();
    webhook
        .verify(&got.body, &got.headers)
        .unwrap_or_else(|err| panic!("not verified with {secret}: {err:?}; {got:?}"));
}

#[tokio::test]
async fn tunnel_events_reach_the_receiver_in_order_signed_as_standard_webhooks_say() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    let types = [
        "tunnel.created.v1",
        "tunnel.active.v1",
        "tunnel.stopping.v1",
        "tunnel.stopped.v1",
    ];
    let hook = endpoint(
        &app,
        &user.token,
        json!({"url": receiver.url, "types": types}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(hook["enabled"], true);
    let id = app
        .tunnel(&user.token, json!({"requestedPort": 3000}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json_of(app.heartbeat(&user.token, &id).await, StatusCode::OK).await;
    for status in ["stopping", "stopped"] {
        let body = json!({ "status": status });
        json_of(
            app.patch(&format!("/v1/tunnels/{id}"), &user.token, body)
                .await,
            StatusCode::OK,
        )
        .await;
    }
    let got = receiver.wait_for(4, WAIT).await;
    let log = app.events(&user.token, 0).await;
    let logged: Vec<&Value> = log
        .iter()
        .filter(|e| types.contains(&e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(got.len(), 4);
    let page = app.get("/v1/events?after=0", &user.token).await;
    let page = page.text().await.unwrap();
    for (request, event) in got.iter().zip(&logged) {
        verify(secret, request);
        // The body is the event exactly as the log shows it, byte for byte.
        assert_eq!(&request.json(), *event);
        let body = std::str::from_utf8(&request.body).unwrap();
        assert!(page.contains(body), "{body} is not in {page}");
        assert_eq!(request.header("content-type"), "application/json");
        let expected_id = format!("evt_{}_{}", user.account_id, event["id"]);
        assert_eq!(request.header("webhook-id"), expected_id);
        let stamp: i64 = request.header("webhook-timestamp").parse().unwrap();
        assert!((stamp - chrono::Utc::now().timestamp()).abs() < 60);
    }
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, types, "in order, and only the types asked for");
    // The log shows each delivery once, succeeded at the first attempt.
    let log = deliveries(&app, &user.token, hook["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), 4);
    for d in &log {
        assert_eq!(d["state"], "succeeded", "{d}");
        assert_eq!(d["attempts"][0]["statusCode"], 200, "{d}");
    }
    // The secret is never shown again.
    let listed = json_of(app.get("/v1/webhooks", &user.token).await, StatusCode::OK).await;
    assert!(listed[0].get("secret").is_none(), "{listed}");
    assert!(!listed.to_string().contains(secret));
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_growing_waits_and_later_events_wait_their_turn() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    receiver.then([Reply::Status(500), Reply::Status(503), Reply::Status(500)]);
    let hook = endpoint(&app, &user.token, json!({"url": receiver.url})).await;
    let hook_id = hook["id"].as_str().unwrap();
    app.tunnel_ids(&user.token, 2).await;
    let got = receiver.wait_for(5, WAIT).await;
    // Four tries of the first event (three failures, then success), then the second.
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(
        ids[0], ids[3],
        "the same message is retried with the same webhook-id"
    );
    assert!(ids[..4].iter().all(|i| *i == ids[0]));
    assert_ne!(
        ids[4], ids[0],
        "the second event only after the first succeeded"
    );
    let gaps: Vec<Duration> = got[..4].windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(25), "{gaps:?}");
    assert!(
        gaps[2] >= Duration::from_millis(100),
        "the waits grow: {gaps:?}"
    );
    let log = all_succeeded(&app, &user.token, hook_id, 2).await;
    let first = log.last().unwrap();
    let statuses: Vec<&Value> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["statusCode"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(500), &json!(503), &json!(500), &json!(200)]
    );
    for attempt in first["attempts"].as_array().unwrap() {
        assert!(attempt["latencyMs"].as_i64().unwrap() >= 0);
    }
    assert_eq!(first["attempts"][0]["error"], "the endpoint answered 500");
}

#[tokio::test]
async fn an_endpoint_answering_410_is_disabled_and_says_why() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    receiver.then([Reply::Status(410)]);
    let hook = endpoint(&app, &user.token, json!({"url": receiver.url})).await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    app.tunnel_ids(&user.token, 1).await;
    let disabled = disabled(&app, &user.token, &path).await;
    assert_eq!(disabled["disabledReason"], "the endpoint answered 410 Gone");
    assert!(disabled["disabledAt"].is_string());
    // Nothing more is sent to it; pings are refused until it is enabled again.
    app.tunnel_ids(&user.token, 1).await;
    let ping = app
        .post(&format!("{path}/ping"), &user.token, json!({}))
        .await;
    problem_of(ping, StatusCode::CONFLICT, "webhook_disabled").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 1);
    // Enabled again, the reason is gone and new events go out (those that happened while
    // it was disabled were not queued for it).
    let enabled = json_of(
        app.patch(&path, &user.token, json!({"enabled": true}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(enabled["disabledReason"], Value::Null);
    assert_eq!(enabled["disabledAt"], Value::Null);
    let later = app.tunnel_ids(&user.token, 1).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].json()["subject"], later[0].as_str());
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_retry_window_is_disabled_and_says_why() {
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.webhooks.retry_window = Duration::from_secs(3600);
    })
    .await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    receiver.then([Reply::Status(500); 1000]);
    let hook = endpoint(&app, &user.token, json!({"url": receiver.url})).await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    app.tunnel_ids(&user.token, 1).await;
    receiver.wait_for(2, WAIT).await;
    // The first attempt was an hour ago: the window is spent at the next failure.
    sqlx::query("UPDATE webhook_deliveries SET first_attempt_at = now() - interval '61 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    let disabled = disabled(&app, &user.token, &path).await;
    let reason = disabled["disabledReason"].as_str().unwrap();
    assert!(
        reason.starts_with("deliveries failed for the whole retry window (1 h)"),
        "{reason}"
    );
    assert!(reason.contains("500"), "{reason}");
    let log = deliveries(&app, &user.token, hook["id"].as_str().unwrap()).await;
    assert_eq!(log[0]["state"], "failed");
    assert!(log[0]["finishedAt"].is_string());
    assert_eq!(log[0]["nextAttemptAt"], Value::Null);
}

#[tokio::test]
async fn loopback_is_refused_by_default_and_the_refusal_is_in_the_log() {
    let app = TestApp::spawn_with(|c| c.webhooks.poll_interval = Duration::from_millis(50)).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url.clone(),
        receiver.url.replace("127.0.0.1", "localhost"),
    ] {
        let hook = endpoint(&app, &user.token, json!({"url": url})).await;
        let id = hook["id"].as_str().unwrap();
        ping(&app, &user.token, id).await;
        let attempt = eventually(WAIT, "a refused attempt", || async {
            let log = deliveries(&app, &user.token, id).await;
            log.first()
                .and_then(|d| d["attempts"].get(0).cloned())
                .ok_or("none")
        })
        .await;
        let error = attempt["error"].as_str().unwrap();
        assert!(error.starts_with("refused:"), "{error}");
        assert!(error.contains("loopback"), "{error}");
        assert_eq!(attempt["statusCode"], Value::Null);
    }
    assert!(receiver.got().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_a_signature_for_each_secret_for_a_day() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    let hook = endpoint(&app, &user.token, json!({"url": receiver.url})).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap();
    let rotated = app
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &user.token,
            json!({}),
        )
        .await;
    let rotated = json_of(rotated, StatusCode::OK).await;
    let new = rotated["secret"].as_str().unwrap();
    assert_ne!(old, new);
    let until =
        chrono::DateTime::parse_from_rfc3339(rotated["previousSecretExpiresAt"].as_str().unwrap())
            .unwrap();
    let day = until.signed_duration_since(chrono::Utc::now());
    assert!(
        day > chrono::Duration::hours(23) && day <= chrono::Duration::hours(24),
        "{day}"
    );
    ping(&app, &user.token, id).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    verify(old, &got[0]);
    verify(new, &got[0]);
    assert_eq!(got[0].json()["type"], "webhook.ping.v1");
    // A day later only the new secret signs.
    sqlx::query("UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 s'")
        .execute(&app.db)
        .await
        .unwrap();
    ping(&app, &user.token, id).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 1);
    verify(new, &got[1]);
    assert!(Webhook::new(old)
        .unwrap()
        .verify(&got[1].body, &got[1].headers)
        .is_err());
}

#[tokio::test]
async fn a_redelivery_sends_the_same_message_again_with_the_same_webhook_id() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    let hook = endpoint(
        &app,
        &user.token,
        json!({"url": receiver.url, "types": ["tunnel.created.v1"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    app.tunnel_ids(&user.token, 1).await;
    let first = receiver.wait_for(1, WAIT).await;
    let log = deliveries(&app, &user.token, id).await;
    let path = format!(
        "/v1/webhooks/{id}/deliveries/{}/redeliver",
        log[0]["id"].as_str().unwrap()
    );
    let again = json_of(
        app.post(&path, &user.token, json!({})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(again["state"], "pending");
    assert_eq!(again["messageId"], log[0]["messageId"]);
    assert_eq!(again["eventId"], log[0]["eventId"]);
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(got[1].body, first[0].body);
    verify(hook["secret"].as_str().unwrap(), &got[1]);
    // Another endpoint's delivery id, or none at all: 404.
    let other = endpoint(
        &app,
        &user.token,
        json!({"url": receiver.url, "enabled": false}),
    )
    .await;
    let wrong = format!(
        "/v1/webhooks/{}/deliveries/{}/redeliver",
        other["id"].as_str().unwrap(),
        log[0]["id"].as_str().unwrap()
    );
    problem_of(
        app.post(&wrong, &user.token, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let missing = format!("/v1/webhooks/{id}/deliveries/{}/redeliver", Uuid::new_v4());
    problem_of(
        app.post(&missing, &user.token, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_ping_is_delivered_signed_and_logged_like_an_event() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    let hook = endpoint(
        &app,
        &user.token,
        json!({"url": receiver.url, "description": "ops"}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    let queued = ping(&app, &user.token, id).await;
    assert_eq!(queued["eventType"], "webhook.ping.v1");
    assert_eq!(queued["eventId"], Value::Null);
    let got = receiver.wait_for(1, WAIT).await;
    verify(hook["secret"].as_str().unwrap(), &got[0]);
    let body = got[0].json();
    assert_eq!(body["type"], "webhook.ping.v1");
    assert_eq!(body["accountId"], user.account_id.as_str());
    assert_eq!(body["data"]["endpointId"], id);
    assert_eq!(
        got[0].header("webhook-id"),
        queued["messageId"].as_str().unwrap()
    );
    let log = all_succeeded(&app, &user.token, id, 1).await;
    assert_eq!(log[0]["id"], queued["id"]);
}

#[tokio::test]
async fn a_stopping_server_finishes_the_delivery_in_flight_before_it_exits() {
    let app = TestApp::spawn_with(fast).await;
    let user = app.user().await;
    let slow = [Reply::Slow(Duration::from_millis(800))];
    let _underway = one_delivery_underway(&app, &user.token, slow).await;
    let db = app.db.clone();
    app.stop().await;
    let (state, attempts, held): (String, i32, bool) =
        sqlx::query_as("SELECT state, attempts, lease_token IS NOT NULL FROM webhook_deliveries")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts, held), ("succeeded", 1, false));
}

#[tokio::test]
async fn a_delivery_a_stopping_server_cannot_finish_in_its_drain_is_handed_to_another_at_once() {
    let url = fresh_database().await;
    let first = TestApp::on_database(&url, |c| {
        fast(c);
        c.webhooks.drain = Duration::from_millis(300);
    })
    .await;
    let user = first.user().await;
    let (receiver, hook, hung) = one_delivery_underway(&first, &user.token, [Reply::Hang]).await;
    // The first server stops mid-delivery: after its drain it gives the lease back, without
    // counting an attempt that never finished.
    let db = first.db.clone();
    first.stop().await;
    let (attempts, held): (i32, bool) =
        sqlx::query_as("SELECT attempts, lease_token IS NOT NULL FROM webhook_deliveries")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((attempts, held), (0, false));
    // The second server sends it again, the same message, without waiting for a lease.
    let second = TestApp::on_database(&url, fast).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("webhook-id"), hung[0].header("webhook-id"));
    assert_eq!(got[1].body, hung[0].body);
    let log = all_succeeded(&second, &user.token, hook["id"].as_str().unwrap(), 1).await;
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 1);
    second.stop().await;
}

#[tokio::test]
async fn attempts_their_duration_and_the_backlog_are_in_the_metrics() {
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.webhooks.timeout = Duration::from_secs(2);
    })
    .await;
    let user = app.user().await;
    let (_receiver, hook, _) = one_delivery_underway(&app, &user.token, [Reply::Hang]).await;
    // While the first attempt hangs, the delivery waits in the backlog.
    assert_eq!(
        metric(&app, "warren_webhook_deliveries_pending").await,
        Some(1.0)
    );
    assert!(metric(&app, "warren_webhook_oldest_pending_seconds").await > Some(0.0));
    // It times out, and the retry succeeds.
    all_succeeded(&app, &user.token, hook["id"].as_str().unwrap(), 1).await;
    let attempts = r#"warren_webhook_attempts_total{result="#;
    assert_eq!(
        metric(&app, &format!(r#"{attempts}"failed"}}"#)).await,
        Some(1.0)
    );
    assert_eq!(
        metric(&app, &format!(r#"{attempts}"succeeded"}}"#)).await,
        Some(1.0)
    );
    assert_eq!(
        metric(&app, "warren_webhook_attempt_duration_seconds_count").await,
        Some(2.0)
    );
    assert_eq!(
        metric(&app, "warren_webhook_deliveries_pending").await,
        Some(0.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_rolled_back_queues_no_delivery_and_an_account_without_endpoints_queues_none() {
    let app = TestApp::spawn_with(fast).await;
    let (ada, bob) = (app.user().await, app.user().await);
    endpoint(&app, &ada.token, json!({"url": "https://example.com/hook"})).await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM webhook_deliveries")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let mut tx = app.db.begin().await.unwrap();
    let ada_id = Uuid::parse_str(&ada.account_id).unwrap();
    sqlx::query("SELECT append_events(ARRAY[$1]::uuid[], ARRAY['tunnel.created.v1'], ARRAY[gen_random_uuid()], ARRAY['{}'::jsonb], ARRAY['{}'::jsonb])")
        .bind(ada_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(queued, 1, "queued in the event's transaction");
    tx.rollback().await.unwrap();
    assert_eq!(count().await, 0);
    app.tunnel_ids(&bob.token, 3).await;
    assert_eq!(count().await, 0, "Bob has no endpoint");
}

#[tokio::test]
async fn a_bulk_append_of_100000_events_stays_fast_with_endpoints_elsewhere() {
    let app = TestApp::spawn().await;
    let (ada, bob) = (app.user().await, app.user().await);
    endpoint(
        &app,
        &ada.token,
        json!({"url": "https://example.com/hook", "types": ["tunnel.failed.v1"]}),
    )
    .await;
    let bob_id = Uuid::parse_str(&bob.account_id).unwrap();
    let started = std::time::Instant::now();
    sqlx::query(
        "SELECT append_events(array_fill($1::uuid, ARRAY[100000]), array_fill('tunnel.failed.v1'::text, ARRAY[100000]),
                              array_fill(gen_random_uuid(), ARRAY[100000]), array_fill('{}'::jsonb, ARRAY[100000]),
                              array_fill('{}'::jsonb, ARRAY[100000]))",
    )
    .bind(bob_id)
    .execute(&app.db)
    .await
    .unwrap();
    let took = started.elapsed();
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn settled_deliveries_are_deleted_with_their_attempts_after_the_event_retention() {
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.event_retention_interval = Duration::from_millis(100);
    })
    .await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    let hook = endpoint(&app, &user.token, json!({"url": receiver.url})).await;
    let id = hook["id"].as_str().unwrap();
    for _ in 0..2 {
        ping(&app, &user.token, id).await;
    }
    all_succeeded(&app, &user.token, id, 2).await;
    // One of them settled eight days ago.
    sqlx::query(
        "UPDATE webhook_deliveries SET finished_at = now() - interval '8 days'
         WHERE id = (SELECT min(id::text)::uuid FROM webhook_deliveries)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    eventually(WAIT, "the old delivery deleted", || async {
        let log = deliveries(&app, &user.token, id).await;
        (log.len() == 1).then_some(())
    })
    .await;
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_attempts")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn two_servers_share_the_deliveries_and_each_endpoint_gets_every_event_once_in_order() {
    let url = fresh_database().await;
    let one = TestApp::on_database(&url, fast).await;
    let two = TestApp::on_database(&url, fast).await;
    let user = one.user().await;
    let mut receivers = Vec::new();
    for _ in 0..4 {
        let receiver = Receiver::start().await;
        receiver.then([Reply::Status(500), Reply::Status(200), Reply::Status(503)]);
        let body = json!({"url": receiver.url, "types": ["tunnel.created.v1"]});
        endpoint(&one, &user.token, body).await;
        receivers.push(receiver);
    }
    let mut created = Vec::new();
    for i in 0..10 {
        let server = if i % 2 == 0 { &one } else { &two };
        created.extend(server.tunnel_ids(&user.token, 1).await);
    }
    for receiver in &receivers {
        // Failed attempts are retried; what matters is the order of the successes.
        let got = eventually(WAIT, "ten events delivered", || async {
            let ok: Vec<String> = delivered(receiver);
            match ok.len() >= 10 {
                true => Ok(ok),
                false => Err(format!("{ok:?}")),
            }
        })
        .await;
        assert_eq!(got, created, "every event once, in order");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for receiver in &receivers {
        assert_eq!(delivered(receiver), created, "and nothing twice");
    }
    one.stop().await;
    two.stop().await;
}

/// The subjects of the requests a receiver answered 2xx, in order: the first three requests
/// got 500, 200, 503 and every later one 200.
fn delivered(receiver: &Receiver) -> Vec<String> {
    receiver
        .got()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 1 || *i > 2)
        .map(|(_, r)| r.json()["subject"].as_str().unwrap().to_owned())
        .collect()
}
