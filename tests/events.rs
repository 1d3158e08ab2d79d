//! The event log: what is logged, in which order, with which principal and data; that a
//! change which fails logs nothing; paging; and the validation of every parameter.
mod common;

use std::time::Duration;

use common::clock::age_tunnel;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const MINUTE: Duration = Duration::from_secs(60);

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_tunnels_life_is_logged_in_order_with_who_caused_each_step_and_what_the_api_showed() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let agent = app
        .api_token(
            &user,
            &["tunnels:write", "tunnels:heartbeat", "events:read"],
        )
        .await;
    let created = app.tunnel(&agent, json!({"requestedPort": 3000})).await;
    let id = created["id"].as_str().unwrap();
    let active = json_of(app.heartbeat(&agent, id).await, StatusCode::OK).await;
    let path = format!("/v1/tunnels/{id}");
    let stopping = app
        .patch(&path, &user.token, json!({"status": "stopping"}))
        .await;
    let stopping = json_of(stopping, StatusCode::OK).await;
    let stopped = app.patch(&path, &agent, json!({"status": "stopped"})).await;
    let stopped = json_of(stopped, StatusCode::OK).await;
    assert_eq!(app.delete(&path, &user.token).await.status(), 204);

    let events = app.events(&agent, 0).await;
    assert_eq!(
        types(&events),
        [
            "token.created.v1",
            "tunnel.created.v1",
            "tunnel.active.v1",
            "tunnel.stopping.v1",
            "tunnel.stopped.v1",
            "tunnel.deleted.v1"
        ]
    );
    assert_eq!(ids(&events), [1, 2, 3, 4, 5, 6], "ids have no gaps");
    // The data is the object exactly as the API answered at that step: the heartbeat's row
    // comes from the batch's own statement (SQL), the rest from the service.
    let tunnel_events = &events[1..];
    for (event, shown) in tunnel_events
        .iter()
        .zip([&created, &active, &stopping, &stopped, &stopped])
    {
        assert_eq!(&event["data"], shown, "{event}");
        assert_eq!(event["subject"], id);
        assert_eq!(event["accountId"], user.account_id.as_str());
    }
    let token_id = events[0]["subject"].as_str().unwrap();
    let by_agent = json!({"type": "token", "id": token_id});
    let user_id = events[0]["principal"]["id"].clone();
    let by_user = json!({"type": "user", "id": user_id});
    let principals: Vec<&Value> = events.iter().map(|e| &e["principal"]).collect();
    assert_eq!(
        principals,
        [&by_user, &by_agent, &by_agent, &by_user, &by_agent, &by_user]
    );
    for event in &events {
        let at = event["occurredAt"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 24, "{at}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_change_that_is_refused_logs_nothing_and_every_transition_has_exactly_one_event() {
    let app = TestApp::spawn().await;
    let (user, id) = app.user_with_tunnel().await;
    let path = format!("/v1/tunnels/{id}");
    let held = app
        .tunnel(&user.token, json!({"slug": "held", "requestedPort": 1}))
        .await;
    let before = app.events(&user.token, 0).await;

    let refused = [
        app.patch(&path, &user.token, json!({"status": "stopped"}))
            .await,
        app.post(
            "/v1/tunnels",
            &user.token,
            json!({"slug": "held", "requestedPort": 2}),
        )
        .await,
        app.delete(&path, &user.token).await,
        app.patch(&path, &user.token, json!({"status": "paused"}))
            .await,
    ];
    for answer in refused {
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
    assert_eq!(app.events(&user.token, 0).await, before);

    // A mixed life, then every row of the transition log against the event log.
    app.heartbeat(&user.token, &id).await;
    app.patch(
        &path,
        &user.token,
        json!({"status": "failed", "lastError": "boom"}),
    )
    .await;
    let held_id = held["id"].as_str().unwrap();
    age_tunnel(&app.db, held_id.parse().unwrap(), MINUTE * 2).await;
    let gone = app
        .get(&format!("/v1/tunnels/{held_id}"), &user.token)
        .await;
    assert_eq!(json_of(gone, StatusCode::OK).await["status"], "failed");
    let transitions: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT tunnel_id, to_status FROM tunnel_transitions ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let logged: Vec<(Uuid, String)> = app
        .events(&user.token, 0)
        .await
        .iter()
        .filter(|e| {
            let kind = e["type"].as_str().unwrap();
            kind.starts_with("tunnel.") && kind != "tunnel.created.v1"
        })
        .map(|e| {
            let status = e["data"]["status"].as_str().unwrap().to_owned();
            (e["subject"].as_str().unwrap().parse().unwrap(), status)
        })
        .collect();
    assert_eq!(logged, transitions);
    app.stop().await;
}

#[tokio::test]
async fn a_lease_that_runs_out_is_logged_as_failed_by_the_reaper_whichever_finds_it() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let ids = app.tunnel_ids(&user.token, 2).await;
    let (lazy, reaped) = (&ids[0], &ids[1]);
    for id in &ids {
        age_tunnel(&app.db, id.parse().unwrap(), MINUTE * 2).await;
    }
    // One is found by a read (lazy expiry), the other by the reaper task.
    let read = app.get(&format!("/v1/tunnels/{lazy}"), &user.token).await;
    let read = json_of(read, StatusCode::OK).await;
    let failed = eventually(Duration::from_secs(10), "both failures logged", || async {
        let events = app.events(&user.token, 0).await;
        let failed: Vec<Value> = events
            .into_iter()
            .filter(|e| e["type"] == "tunnel.failed.v1")
            .collect();
        (failed.len() == 2).then_some(failed)
    })
    .await;
    for event in &failed {
        assert_eq!(event["principal"], json!({"type": "reaper"}));
        assert_eq!(event["data"]["lastError"], "lease expired");
        assert!(event["data"]["lease"].is_null());
        let id = event["subject"].as_str().unwrap();
        let now = app.get(&format!("/v1/tunnels/{id}"), &user.token).await;
        assert_eq!(event["data"], json_of(now, StatusCode::OK).await);
    }
    assert!(failed.iter().any(|e| e["subject"] == lazy.as_str()));
    assert!(failed.iter().any(|e| e["subject"] == reaped.as_str()));
    assert_eq!(read["status"], "failed");
    app.stop().await;
}

#[tokio::test]
async fn connectors_devices_and_tokens_log_their_events() {
    let app = TestApp::spawn_with(|c| {
        c.reconnect_grace = Duration::from_secs(120);
        c.connector_sweep_interval = Duration::from_millis(100);
    })
    .await;
    let (user, id) = app.user_with_tunnel().await;
    let beat = |connector: Uuid| {
        json!({"connector": {"id": connector, "version": "1",
        "connections": [{"id": Uuid::new_v4(), "coloName": "FRA"}]}})
    };
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let path = format!("/v1/tunnels/{id}/heartbeat");
    let one = beat(first);
    for body in [&one, &one, &beat(second)] {
        json_of(
            app.post(&path, &user.token, body.clone()).await,
            StatusCode::OK,
        )
        .await;
    }
    // The first connector's heartbeats stop: after its grace it is logged disconnected.
    common::clock::age_connector(&app.db, first, MINUTE * 4).await;
    // The second is removed by hand.
    let cleanup = format!("/v1/tunnels/{id}/connections?clientId={second}");
    assert_eq!(app.delete(&cleanup, &user.token).await.status(), 204);
    let device = Uuid::new_v4();
    for (minutes_ago, status) in [(3, "connected"), (2, "connected"), (1, "disconnected")] {
        let snapshot = common::fleet::snapshot(device, minutes_ago);
        let snapshot = common::fleet::with(snapshot, json!({"status": status}));
        common::fleet::ingest(&app, &user.token, snapshot).await;
    }
    let token = app.api_token(&user, &["dex:read"]).await;
    let tokens = json_of(app.get("/v1/tokens", &user.token).await, StatusCode::OK).await;
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/v1/tokens/{token_id}"), &user.token)
            .await
            .status(),
        204
    );
    let _ = token;

    let events = eventually(Duration::from_secs(10), "the sweeper's event", || async {
        let events = app.events(&user.token, 0).await;
        let done = events.iter().any(|e| {
            e["type"] == "connector.disconnected.v1" && e["data"]["id"] == first.to_string()
        });
        done.then_some(events)
    })
    .await;
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == kind).collect() };
    let connected = of("connector.connected.v1");
    assert_eq!(
        connected.len(),
        2,
        "an unchanged report is no new connection"
    );
    assert_eq!(connected[0]["data"]["id"], first.to_string());
    assert_eq!(connected[0]["subject"], id.as_str());
    assert_eq!(connected[0]["data"]["conns"][0]["coloName"], "FRA");
    let disconnected = of("connector.disconnected.v1");
    assert_eq!(disconnected.len(), 2);
    assert_eq!(disconnected[0]["data"]["id"], second.to_string());
    assert_eq!(disconnected[0]["principal"]["type"], "user");
    assert_eq!(disconnected[1]["principal"], json!({"type": "reaper"}));
    let changed = of("device.status_changed.v1");
    assert_eq!(
        changed.len(),
        1,
        "only the change, not the repeat: {changed:?}"
    );
    assert_eq!(changed[0]["subject"], device.to_string());
    assert_eq!(changed[0]["data"]["status"], "disconnected");
    assert_eq!(changed[0]["data"]["deviceId"], device.to_string());
    assert_eq!(of("token.created.v1").len(), 1);
    let revoked = of("token.revoked.v1");
    assert_eq!(revoked[0]["subject"], token_id.as_str());
    assert!(revoked[0]["data"].get("token").is_none(), "no secret");
    app.stop().await;
}

#[tokio::test]
async fn the_log_pages_with_a_link_filters_by_type_and_subject_and_names_bad_parameters() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let ids = app.tunnel_ids(&user.token, 5).await;
    app.heartbeat(&user.token, &ids[0]).await;

    let first = app.get("/v1/events?limit=2", &user.token).await;
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(link, "</v1/events?after=2&limit=2>; rel=\"next\"");
    assert_eq!(ids_of(json_of(first, StatusCode::OK).await), [1, 2]);
    let mut after = 2;
    let mut seen = vec![1, 2];
    loop {
        let page = app
            .get(&format!("/v1/events?after={after}&limit=2"), &user.token)
            .await;
        let more = page.headers().get("link").is_some();
        let page = ids_of(json_of(page, StatusCode::OK).await);
        seen.extend(&page);
        match page.last() {
            Some(last) if more => after = *last,
            _ => break,
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);

    let only = app
        .get("/v1/events?types=tunnel.active.v1", &user.token)
        .await;
    let only = json_of(only, StatusCode::OK).await;
    assert_eq!(types(only.as_array().unwrap()), ["tunnel.active.v1"]);
    let about = app
        .get(&format!("/v1/events?subject={}", ids[0]), &user.token)
        .await;
    let about = json_of(about, StatusCode::OK).await;
    assert_eq!(
        types(about.as_array().unwrap()),
        ["tunnel.created.v1", "tunnel.active.v1"]
    );
    let filtered = app
        .get(
            &format!(
                "/v1/events?subject={}&types=tunnel.active.v1&limit=1",
                ids[0]
            ),
            &user.token,
        )
        .await;
    let link = filtered.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("types=tunnel.active.v1") && link.contains(&ids[0]),
        "{link}"
    );

    for (query, field) in [
        ("after=-1", "after"),
        ("after=one", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("types=tunnel.failed", "types"),
        ("types=tunnel.failed.v1,nope", "types"),
        ("types=tunnel.failed.v1,%20tunnel.active.v1", "types"),
        ("subject=nope", "subject"),
        ("subject=", "subject"),
        ("subject=67e5504410b1426f9247bb680e5fe0c8", "subject"),
    ] {
        let answer = app.get(&format!("/v1/events?{query}"), &user.token).await;
        let problem = problem_of(answer, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(problem["field"], field, "{query}");
    }
    let blind = app.api_token(&user, &["tunnels:read"]).await;
    problem_of(
        app.get("/v1/events", &blind).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    app.stop().await;
}

fn ids_of(page: Value) -> Vec<i64> {
    ids(page.as_array().unwrap())
}
