//! The live event stream: delivery as events commit, from any replica; resuming with
//! `Last-Event-ID` across a restart with nothing lost or repeated; the reset when the position
//! is older than retention; keep-alives; shutdown with streams open; and the end of a stream
//! whose token was revoked.
mod common;

use std::time::Duration;

use common::sse::Json;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

const SOON: Duration = Duration::from_secs(5);

fn id_of(frame: &common::sse::Frame) -> i64 {
    frame.id.as_deref().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_stream_delivers_each_event_as_it_commits_with_its_id_type_and_data() {
    let app = TestApp::spawn().await;
    let (user, id) = app.user_with_tunnel().await;
    // Without a position, only what happens from now on.
    let mut stream = app.stream(&user.token, "", None).await;
    let active = json_of(app.heartbeat(&user.token, &id).await, StatusCode::OK).await;
    let frame = stream.event(SOON, "tunnel.active.v1").await;
    assert_eq!(frame.event.as_deref(), Some("tunnel.active.v1"));
    let event = frame.json();
    assert_eq!(event["type"], "tunnel.active.v1");
    assert_eq!(event["id"].as_i64(), Some(id_of(&frame)));
    assert_eq!(event["data"], active);
    assert_eq!(event["accountId"], user.account_id.as_str());
    // Nothing else came: the creation was before the stream.
    assert!(stream
        .events_until_quiet(Duration::from_millis(300))
        .await
        .is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_stream_resumed_with_last_event_id_after_a_restart_loses_and_repeats_nothing() {
    let url = fresh_database().await;
    let first = TestApp::on_database(&url, |_| {}).await;
    let user = first.user().await;
    let mut stream = first.stream(&user.token, "?after=0", None).await;
    let tunnels = first.tunnel_ids(&user.token, 2).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(id_of(&stream.event(SOON, "the creations").await));
    }
    first.stop().await;
    // The server is gone, and with it the stream.
    assert!(
        stream.frame(SOON).await.is_none(),
        "the stream outlived its server"
    );
    // Meanwhile, through another server: more events the reader has not seen.
    let second = TestApp::on_database(&url, |_| {}).await;
    second.heartbeat(&user.token, &tunnels[0]).await;
    second.tunnel_ids(&user.token, 1).await;
    let last = seen.last().unwrap().to_string();
    let mut resumed = second.stream(&user.token, "?after=0", Some(&last)).await;
    let mut missed = Vec::new();
    for _ in 0..2 {
        missed.push(resumed.event(SOON, "what was missed").await);
    }
    let kinds: Vec<_> = missed.iter().map(|f| f.event.clone().unwrap()).collect();
    assert_eq!(kinds, ["tunnel.active.v1", "tunnel.created.v1"]);
    seen.extend(missed.iter().map(id_of));
    // And it goes on live.
    second.heartbeat(&user.token, &tunnels[1]).await;
    seen.push(id_of(&resumed.event(SOON, "a new event").await));
    assert_eq!(seen, [1, 2, 3, 4, 5], "Last-Event-ID wins over after=0");
    assert!(resumed
        .events_until_quiet(Duration::from_millis(300))
        .await
        .is_empty());
    second.stop().await;
}

#[tokio::test]
async fn an_event_committed_through_one_replica_reaches_a_stream_on_another() {
    let url = fresh_database().await;
    let a = TestApp::on_database(&url, |_| {}).await;
    let b = TestApp::on_database(&url, |_| {}).await;
    let user = a.user().await;
    let mut on_b = b.stream(&user.token, "", None).await;
    let mut on_a = a.stream(&user.token, "", None).await;
    let created = a.tunnel(&user.token, json!({"requestedPort": 1})).await;
    for stream in [&mut on_b, &mut on_a] {
        let frame = stream.event(SOON, "the creation through A").await;
        assert_eq!(frame.json()["data"], created);
    }
    let id = created["id"].as_str().unwrap();
    b.heartbeat(&user.token, id).await;
    for stream in [&mut on_a, &mut on_b] {
        let frame = stream.event(SOON, "the heartbeat through B").await;
        assert_eq!(frame.event.as_deref(), Some("tunnel.active.v1"));
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_position_older_than_retention_gets_a_reset_on_the_stream_and_410_on_the_page() {
    let app =
        TestApp::spawn_with(|c| c.event_retention_interval = Duration::from_millis(100)).await;
    let user = app.user().await;
    app.tunnel_ids(&user.token, 3).await;
    sqlx::query("UPDATE events SET occurred_at = occurred_at - interval '8 days' WHERE id <= 2")
        .execute(&app.db)
        .await
        .unwrap();
    eventually(SOON, "retention to delete the old events", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&app.db)
            .await
            .unwrap();
        (left == 1).then_some(())
    })
    .await;

    let mut stream = app.stream(&user.token, "?after=1", None).await;
    let reset = stream.event(SOON, "the reset").await;
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.id.as_deref(), Some("2"), "the reader goes on after 2");
    assert_eq!(reset.json()["requested"], 1);
    assert_eq!(reset.json()["resumeAfter"], 2);
    let next = stream.event(SOON, "the event kept").await;
    assert_eq!(id_of(&next), 3);

    let page = app.get("/v1/events?after=1", &user.token).await;
    let gone = problem_of(page, StatusCode::GONE, "events_expired").await;
    assert_eq!(gone["resumeAfter"], 2);
    // From the reset's position, and from the start, the page is fine.
    let page = app.get("/v1/events?after=2", &user.token).await;
    assert_eq!(json_of(page, StatusCode::OK).await[0]["id"], 3);
    assert_eq!(app.events(&user.token, 0).await.len(), 1);
    // A position past the latest event was never handed out: the page refuses it, naming
    // the latest, and a stream resets to the latest instead of waiting to skip ahead.
    for far in ["99", "9223372036854775807"] {
        let page = app
            .get(&format!("/v1/events?after={far}"), &user.token)
            .await;
        let ahead = problem_of(page, StatusCode::CONFLICT, "event_position_ahead").await;
        assert_eq!(ahead["resumeAfter"], 3);
    }
    let mut future = app.stream(&user.token, "", Some("99")).await;
    let reset = future.event(SOON, "the reset to the latest").await;
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.id.as_deref(), Some("3"));
    assert_eq!(reset.json()["requested"], 99);
    // A current position gets no reset.
    let mut current = app.stream(&user.token, "", Some("3")).await;
    app.tunnel_ids(&user.token, 1).await;
    let next = current.event(SOON, "a new event").await;
    assert_eq!(next.event.as_deref(), Some("tunnel.created.v1"));
    app.stop().await;
}

#[tokio::test]
async fn a_stream_keeps_only_the_asked_types_and_subject_and_sends_keep_alives_when_idle() {
    let app = TestApp::spawn_with(|c| c.event_keep_alive = Duration::from_millis(200)).await;
    let user = app.user().await;
    let ids = app.tunnel_ids(&user.token, 2).await;
    let query = format!("?after=0&types=tunnel.active.v1&subject={}", ids[1]);
    let mut stream = app.stream(&user.token, &query, None).await;
    for id in &ids {
        app.heartbeat(&user.token, id).await;
    }
    let frame = stream.event(SOON, "the second tunnel's activation").await;
    assert_eq!(frame.json()["subject"], ids[1].as_str());
    assert_eq!(frame.event.as_deref(), Some("tunnel.active.v1"));
    let idle = stream.frame(Duration::from_secs(2)).await.unwrap();
    assert_eq!(idle.comment.as_deref(), Some("keep-alive"), "{idle:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_position_or_filter_is_a_400_naming_it_and_the_scope_is_required() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let cases = [
        ("", Some("x"), "Last-Event-ID"),
        ("", Some("-3"), "Last-Event-ID"),
        ("?after=1.5", None, "after"),
        ("?types=tunnel", None, "types"),
        ("?subject=42", None, "subject"),
    ];
    for (query, last, field) in cases {
        let mut req = app
            .client
            .get(app.url(&format!("/v1/events/stream{query}")))
            .bearer_auth(&user.token);
        if let Some(last) = last {
            req = req.header("last-event-id", last);
        }
        let problem = problem_of(
            app.send(req).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["field"], field, "{query} {last:?}");
    }
    let blind = app.api_token(&user, &["tunnels:read"]).await;
    let req = app
        .client
        .get(app.url("/v1/events/stream"))
        .bearer_auth(&blind);
    problem_of(app.send(req).await, StatusCode::FORBIDDEN, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_instead_of_waiting_for_them() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.stream(&user.token, "?after=0", None).await);
    }
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stopped with streams open");
    for mut stream in streams {
        // Whatever was queued, then the end.
        while let Some(frame) = stream.frame(SOON).await {
            assert!(frame.event.is_some() || frame.comment.is_some());
        }
    }
}

/// Reads the stream until it ends; panics if it is still open after `within`.
async fn ended(stream: &mut common::sse::SseReader, within: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "the stream is still open: {what}");
        if stream.frame(left).await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stream is still open: {what}"
            );
            return;
        }
    }
}

#[tokio::test]
async fn a_stream_ends_once_its_api_token_is_revoked_and_another_stream_goes_on() {
    let app = TestApp::spawn_with(|c| {
        c.event_auth_recheck = Duration::from_millis(100);
        c.event_keep_alive = Duration::from_millis(100);
    })
    .await;
    let user = app.user().await;
    let token = app.api_token(&user, &["events:read"]).await;
    let mut revoked = app.stream(&token, "", None).await;
    let mut kept = app
        .stream(&user.token, "?types=tunnel.created.v1", None)
        .await;
    let tokens = json_of(app.get("/v1/tokens", &user.token).await, StatusCode::OK).await;
    let id = tokens[0]["id"].as_str().unwrap();
    let deleted = app.delete(&format!("/v1/tokens/{id}"), &user.token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    ended(
        &mut revoked,
        Duration::from_secs(5),
        "its token was revoked",
    )
    .await;
    app.tunnel_ids(&user.token, 1).await;
    let created = kept.event(SOON, "the stream of a valid token").await;
    assert_eq!(created.event.as_deref(), Some("tunnel.created.v1"));
    app.stop().await;
}
