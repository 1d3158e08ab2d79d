mod common;

use std::time::Duration;

use common::clock::{age_connector, age_dropped_connection, age_tunnel};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// The lease TTL and reconnect grace of the tests that move time: far from each other and
/// from the defaults (60 s, 300 s), so that a test cannot pass on the wrong one.
const TTL: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(120);
/// How far short of, or past, a deadline a test moves a timestamp: far more than a request
/// takes, so that the answer cannot depend on how fast the test runs.
const MARGIN: Duration = Duration::from_secs(5);

async fn beat(app: &TestApp, token: &str, tunnel: &str, body: Value) -> reqwest::Response {
    let path = format!("/v1/tunnels/{tunnel}/heartbeat");
    app.call(Method::POST, &path, Some(token), Some(body)).await
}

/// A heartbeat body with a connector holding these connections (id, colo).
fn report(connector: Uuid, conns: &[(Uuid, &str)]) -> Value {
    let connections: Vec<Value> = conns
        .iter()
        .map(|(id, colo)| json!({"id": id, "coloName": colo, "openedAt": "2026-03-05T10:30:01Z"}))
        .collect();
    json!({"connector": {
        "id": connector, "arch": "linux_amd64", "version": "2026.1.0", "configVersion": 0,
        "features": ["ha-origin"], "runAt": "2026-03-05T10:30:00.000Z", "connections": connections
    }})
}

async fn reported(app: &TestApp, token: &str, tunnel: &str, body: Value) -> Value {
    json_of(beat(app, token, tunnel, body).await, StatusCode::OK).await
}

async fn connections(app: &TestApp, token: &str, tunnel: &str) -> Value {
    json_of(
        app.get(&format!("/v1/tunnels/{tunnel}/connections"), token)
            .await,
        StatusCode::OK,
    )
    .await
}

/// `(connection id, isPendingReconnect)` of every connection listed, sorted.
fn states(clients: &Value) -> Vec<(String, bool)> {
    let mut all: Vec<(String, bool)> = clients
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["conns"].as_array().unwrap().iter())
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_owned(),
                k["isPendingReconnect"].as_bool().unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

fn sorted(mut expected: Vec<(String, bool)>) -> Vec<(String, bool)> {
    expected.sort();
    expected
}

async fn one(
    app: &TestApp,
    token: &str,
    tunnel: &str,
    connector: impl std::fmt::Display,
) -> reqwest::Response {
    app.get(
        &format!("/v1/tunnels/{tunnel}/connectors/{connector}"),
        token,
    )
    .await
}

/// Takes the tunnel through `stopping` to `stopped`, as an agent that shuts down does.
async fn stop(app: &TestApp, token: &str, tunnel: &str) {
    let path = format!("/v1/tunnels/{tunnel}");
    for status in ["stopping", "stopped"] {
        let answer = app.patch(&path, token, json!({ "status": status })).await;
        json_of(answer, StatusCode::OK).await;
    }
}

fn s(id: Uuid) -> String {
    id.to_string()
}

#[tokio::test]
async fn a_reported_connector_is_listed_in_the_seed_client_shape() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (client, conn) = (Uuid::new_v4(), Uuid::new_v4());
    let answer = reported(&app, &user.token, &tunnel, report(client, &[(conn, "FRA")])).await;
    assert_eq!(answer["status"], "active");
    let listed = connections(&app, &user.token, &tunnel).await;
    assert_eq!(
        listed,
        json!([{
            "id": client, "arch": "linux_amd64", "configVersion": 0, "features": ["ha-origin"],
            "runAt": "2026-03-05T10:30:00.000Z", "version": "2026.1.0",
            "conns": [{
                "id": conn, "uuid": conn, "clientId": client, "clientVersion": "2026.1.0",
                "coloName": "FRA", "isPendingReconnect": false,
                "openedAt": "2026-03-05T10:30:01.000Z", "originIp": "127.0.0.1"
            }]
        }])
    );
    let one = one(&app, &user.token, &tunnel, client).await;
    assert_eq!(json_of(one, StatusCode::OK).await, listed[0]);
}

#[tokio::test]
async fn a_heartbeat_without_a_connector_keeps_working_and_lists_none() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    json_of(app.heartbeat(&user.token, &tunnel).await, StatusCode::OK).await;
    reported(&app, &user.token, &tunnel, json!({})).await;
    reported(&app, &user.token, &tunnel, json!({"connector": null})).await;
    assert_eq!(connections(&app, &user.token, &tunnel).await, json!([]));
}

#[tokio::test]
async fn two_connectors_of_one_tunnel_report_separately() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (a1, a2, b1) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    reported(
        &app,
        &user.token,
        &tunnel,
        report(a, &[(a1, "FRA"), (a2, "AMS")]),
    )
    .await;
    reported(&app, &user.token, &tunnel, report(b, &[(b1, "DFW")])).await;
    // A's next report does not disturb B.
    reported(
        &app,
        &user.token,
        &tunnel,
        report(a, &[(a1, "FRA"), (a2, "AMS")]),
    )
    .await;
    let listed = connections(&app, &user.token, &tunnel).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [s(a), s(b)]);
    assert_eq!(
        states(&listed),
        sorted(vec![(s(a1), false), (s(a2), false), (s(b1), false)])
    );
    let only_b = one(&app, &user.token, &tunnel, b).await;
    let only_b = json_of(only_b, StatusCode::OK).await;
    assert_eq!(only_b["conns"][0]["clientId"], s(b));
    assert_eq!(only_b["conns"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_connection_no_longer_reported_is_pending_until_reported_again_or_the_grace_ends() {
    let app = TestApp::spawn_with(|c| c.reconnect_grace = GRACE).await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (client, k1, k2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    reported(
        &app,
        &user.token,
        &tunnel,
        report(client, &[(k1, "FRA"), (k2, "AMS")]),
    )
    .await;
    reported(&app, &user.token, &tunnel, report(client, &[(k1, "FRA")])).await;
    let listed = connections(&app, &user.token, &tunnel).await;
    assert_eq!(states(&listed), sorted(vec![(s(k1), false), (s(k2), true)]));

    reported(
        &app,
        &user.token,
        &tunnel,
        report(client, &[(k1, "FRA"), (k2, "AMS")]),
    )
    .await;
    let listed = connections(&app, &user.token, &tunnel).await;
    assert_eq!(
        states(&listed),
        sorted(vec![(s(k1), false), (s(k2), false)])
    );

    reported(&app, &user.token, &tunnel, report(client, &[(k1, "FRA")])).await;
    // Dropped almost a grace ago: still pending.
    age_dropped_connection(&app.db, k2, GRACE - MARGIN).await;
    reported(&app, &user.token, &tunnel, report(client, &[(k1, "FRA")])).await;
    let listed = connections(&app, &user.token, &tunnel).await;
    assert_eq!(states(&listed), sorted(vec![(s(k1), false), (s(k2), true)]));
    // Dropped more than a grace ago: gone.
    age_dropped_connection(&app.db, k2, 2 * MARGIN).await;
    reported(&app, &user.token, &tunnel, report(client, &[(k1, "FRA")])).await;
    let listed = connections(&app, &user.token, &tunnel).await;
    assert_eq!(states(&listed), [(s(k1), false)]);
}

#[tokio::test]
async fn every_connection_of_a_connector_that_stops_heartbeating_is_pending_then_gone() {
    let app = TestApp::spawn_with(|c| {
        c.lease_ttl = TTL;
        c.reconnect_grace = GRACE;
    })
    .await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (quiet, alive) = (Uuid::new_v4(), Uuid::new_v4());
    let (q1, q2, a1) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    reported(
        &app,
        &user.token,
        &tunnel,
        report(quiet, &[(q1, "FRA"), (q2, "AMS")]),
    )
    .await;
    // Only `alive` keeps heartbeating; `quiet` falls silent and its last heartbeat recedes
    // into the past: `seen` is what the list shows after each of `alive`'s heartbeats.
    let seen = || async {
        reported(&app, &user.token, &tunnel, report(alive, &[(a1, "DFW")])).await;
        states(&connections(&app, &user.token, &tunnel).await)
    };
    let live = sorted(vec![(s(q1), false), (s(q2), false), (s(a1), false)]);
    assert_eq!(seen().await, live);
    // Silent for almost a TTL: still live.
    age_connector(&app.db, quiet, TTL - MARGIN).await;
    assert_eq!(seen().await, live);
    // Silent for more than a TTL: every connection of `quiet` is pending, `alive`'s is not.
    age_connector(&app.db, quiet, 2 * MARGIN).await;
    let pending = sorted(vec![(s(q1), true), (s(q2), true), (s(a1), false)]);
    assert_eq!(seen().await, pending);
    // Almost a TTL and a grace: still pending.
    age_connector(&app.db, quiet, GRACE - 2 * MARGIN).await;
    assert_eq!(seen().await, pending);
    // More than a TTL and a grace: gone, connector and all.
    age_connector(&app.db, quiet, 2 * MARGIN).await;
    assert_eq!(seen().await, [(s(a1), false)]);
    let gone = one(&app, &user.token, &tunnel, quiet).await;
    problem_of(gone, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_stopped_tunnel_shows_its_connectors_pending_then_gone() {
    let app = TestApp::spawn_with(|c| c.reconnect_grace = GRACE).await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (client, k) = (Uuid::new_v4(), Uuid::new_v4());
    reported(&app, &user.token, &tunnel, report(client, &[(k, "FRA")])).await;
    stop(&app, &user.token, &tunnel).await;
    let pending = [(s(k), true)];
    assert_eq!(
        states(&connections(&app, &user.token, &tunnel).await),
        pending
    );
    // Stopped almost a grace ago: still pending.
    let id = Uuid::parse_str(&tunnel).unwrap();
    age_tunnel(&app.db, id, GRACE - MARGIN).await;
    assert_eq!(
        states(&connections(&app, &user.token, &tunnel).await),
        pending
    );
    // Stopped more than a grace ago: gone.
    age_tunnel(&app.db, id, 2 * MARGIN).await;
    assert_eq!(connections(&app, &user.token, &tunnel).await, json!([]));
}

#[tokio::test]
async fn cleanup_removes_one_connector_or_all_whatever_their_state() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for client in [a, b, c] {
        reported(
            &app,
            &user.token,
            &tunnel,
            report(client, &[(Uuid::new_v4(), "FRA")]),
        )
        .await;
    }
    let base = format!("/v1/tunnels/{tunnel}/connections");
    let one = app
        .delete(&format!("{base}?clientId={a}"), &user.token)
        .await;
    assert_eq!(one.status(), StatusCode::NO_CONTENT);
    let listed = connections(&app, &user.token, &tunnel).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [s(b), s(c)]);
    let again = app
        .delete(&format!("{base}?clientId={a}"), &user.token)
        .await;
    problem_of(again, StatusCode::NOT_FOUND, "not_found").await;
    let bad = app
        .delete(&format!("{base}?clientId=nope"), &user.token)
        .await;
    let bad = problem_of(bad, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(bad["field"], "clientId");

    assert_eq!(
        app.delete(&base, &user.token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(connections(&app, &user.token, &tunnel).await, json!([]));
    assert_eq!(
        app.delete(&base, &user.token).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_malformed_connector_names_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let before = json_of(
        app.get(&format!("/v1/tunnels/{tunnel}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    let id = Uuid::new_v4();
    let many: Vec<Value> = (0..65).map(|_| json!({"id": Uuid::new_v4()})).collect();
    let cases = [
        (json!({"id": "not-a-uuid"}), "connector.id"),
        (
            json!({"id": id, "configVersion": "zero"}),
            "connector.configVersion",
        ),
        (
            json!({"id": id, "features": "ha-origin"}),
            "connector.features",
        ),
        (json!({"id": id, "arch": "x".repeat(65)}), "connector.arch"),
        (
            json!({"id": id, "connections": many}),
            "connector.connections",
        ),
        (
            json!({"id": id, "connections": [{"id": id, "coloName": "FRA"}, {"id": "x"}]}),
            "connector.connections[1].id",
        ),
        (
            json!({"id": id, "connections": [{"id": id, "openedAt": 5}]}),
            "connector.connections[0].openedAt",
        ),
        (json!("connector"), "connector"),
    ];
    for (connector, field) in cases {
        let answer = beat(&app, &user.token, &tunnel, json!({"connector": connector})).await;
        let p = problem_of(
            answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], field, "{p}");
    }
    let after = json_of(
        app.get(&format!("/v1/tunnels/{tunnel}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after, before, "a refused report must not renew the lease");
    assert_eq!(after["status"], "creating");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM connectors")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn unknown_or_foreign_tunnels_and_connectors_are_404() {
    let app = TestApp::spawn().await;
    let (owner, tunnel) = app.user_with_tunnel().await;
    let stranger = app.user().await;
    let client = Uuid::new_v4();
    reported(
        &app,
        &owner.token,
        &tunnel,
        report(client, &[(Uuid::new_v4(), "FRA")]),
    )
    .await;
    let paths = [
        format!("/v1/tunnels/{tunnel}/connections"),
        format!("/v1/tunnels/{tunnel}/connectors/{client}"),
    ];
    for path in &paths {
        problem_of(
            app.get(path, &stranger.token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    problem_of(
        app.delete(&paths[0], &stranger.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The stranger's report cannot attach a connector to the owner's tunnel.
    let foreign = beat(&app, &stranger.token, &tunnel, report(Uuid::new_v4(), &[])).await;
    problem_of(foreign, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        connections(&app, &owner.token, &tunnel)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let unknown = Uuid::new_v4();
    for path in [
        format!("/v1/tunnels/{unknown}/connections"),
        format!("/v1/tunnels/{tunnel}/connectors/{unknown}"),
    ] {
        problem_of(
            app.get(&path, &owner.token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let bad = one(&app, &owner.token, &tunnel, "nope").await;
    problem_of(bad, StatusCode::BAD_REQUEST, "validation_failed").await;
}

#[tokio::test]
async fn the_connector_routes_need_their_scopes() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let agent = app.api_token(&user, &["tunnels:heartbeat"]).await;
    let reader = app.api_token(&user, &["tunnels:read"]).await;
    reported(&app, &agent, &tunnel, report(Uuid::new_v4(), &[])).await;
    let path = format!("/v1/tunnels/{tunnel}/connections");
    problem_of(
        app.get(&path, &agent).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    json_of(app.get(&path, &reader).await, StatusCode::OK).await;
    problem_of(
        app.delete(&path, &reader).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn origin_ip_honours_x_forwarded_for_only_from_trusted_proxies() {
    for (trusted, expected) in [("", "127.0.0.1"), ("127.0.0.0/8", "203.0.113.7")] {
        let proxies = warren::net::TrustedProxies::parse(trusted).unwrap();
        let app = TestApp::spawn_with(|c| c.trusted_proxies = proxies).await;
        let (user, tunnel) = app.user_with_tunnel().await;
        let response = app
            .send(
                app.client
                    .post(app.url(&format!("/v1/tunnels/{tunnel}/heartbeat")))
                    .bearer_auth(&user.token)
                    .header("x-forwarded-for", "203.0.113.7")
                    .json(&report(Uuid::new_v4(), &[(Uuid::new_v4(), "FRA")])),
            )
            .await;
        json_of(response, StatusCode::OK).await;
        let listed = connections(&app, &user.token, &tunnel).await;
        assert_eq!(
            listed[0]["conns"][0]["originIp"], expected,
            "trusted: {trusted:?}"
        );
    }
}

#[tokio::test]
async fn an_unchanged_report_rewrites_no_connection_rows() {
    let app = TestApp::spawn().await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let conns: Vec<(Uuid, &str)> = (0..4).map(|_| (Uuid::new_v4(), "FRA")).collect();
    let body = report(Uuid::new_v4(), &conns);
    let versions = || async {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT xmin::text FROM connections ORDER BY id")
                .fetch_all(&app.db)
                .await
                .unwrap();
        rows
    };
    reported(&app, &user.token, &tunnel, body.clone()).await;
    let first = versions().await;
    assert_eq!(first.len(), 4);
    reported(&app, &user.token, &tunnel, body.clone()).await;
    reported(&app, &user.token, &tunnel, body).await;
    assert_eq!(versions().await, first);
}

#[tokio::test]
async fn the_sweeper_deletes_rows_past_their_grace() {
    let app = TestApp::spawn_with(|c| {
        c.reconnect_grace = GRACE;
        c.connector_sweep_interval = Duration::from_millis(100);
    })
    .await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (a1, a2, b1) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    reported(
        &app,
        &user.token,
        &tunnel,
        report(a, &[(a1, "FRA"), (a2, "AMS")]),
    )
    .await;
    reported(&app, &user.token, &tunnel, report(b, &[(b1, "DFW")])).await;
    reported(&app, &user.token, &tunnel, report(a, &[])).await;
    let rows = || async {
        let rows: (i64, Vec<Uuid>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM connectors),
                    ARRAY(SELECT id FROM connections ORDER BY id)",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        rows
    };
    // The connections `a` dropped are past their grace: the sweeper deletes them, and only
    // them (it runs every 100 ms).
    for dropped in [a1, a2] {
        age_dropped_connection(&app.db, dropped, GRACE + MARGIN).await;
    }
    let sweep = Duration::from_secs(5);
    let left = eventually(sweep, "the dropped connections swept", || async {
        let (connectors, connections) = rows().await;
        if connections.len() < 3 {
            Ok((connectors, connections))
        } else {
            Err(format!("{connections:?}"))
        }
    })
    .await;
    assert_eq!(left, (2, vec![b1]));
    // The tunnel stopped more than a grace ago: everything of it goes.
    stop(&app, &user.token, &tunnel).await;
    age_tunnel(&app.db, Uuid::parse_str(&tunnel).unwrap(), GRACE + MARGIN).await;
    eventually(sweep, "every row swept", || async {
        let left = rows().await;
        if left == (0, vec![]) {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn a_tunnel_whose_lease_expires_shows_its_connectors_pending_and_refuses_new_reports() {
    let app = TestApp::spawn_with(|c| {
        c.lease_ttl = TTL;
        c.reconnect_grace = GRACE;
    })
    .await;
    let (user, tunnel) = app.user_with_tunnel().await;
    let (client, k) = (Uuid::new_v4(), Uuid::new_v4());
    reported(&app, &user.token, &tunnel, report(client, &[(k, "FRA")])).await;
    // The last heartbeat (the tunnel's and its connector's) came more than a TTL ago.
    let id = Uuid::parse_str(&tunnel).unwrap();
    age_tunnel(&app.db, id, TTL + MARGIN).await;
    age_connector(&app.db, client, TTL + MARGIN).await;
    let shown = app.get(&format!("/v1/tunnels/{tunnel}"), &user.token).await;
    assert_eq!(json_of(shown, StatusCode::OK).await["status"], "failed");
    assert_eq!(
        states(&connections(&app, &user.token, &tunnel).await),
        [(s(k), true)]
    );
    // A late report is refused and records nothing: the connection stays pending.
    let late = report(client, &[(k, "FRA"), (Uuid::new_v4(), "AMS")]);
    let refused = beat(&app, &user.token, &tunnel, late).await;
    problem_of(refused, StatusCode::CONFLICT, "lease_expired").await;
    assert_eq!(
        states(&connections(&app, &user.token, &tunnel).await),
        [(s(k), true)]
    );
    // Almost a grace after the lease ran out: still pending; more than a grace: gone.
    age_tunnel(&app.db, id, GRACE - 2 * MARGIN).await;
    age_connector(&app.db, client, GRACE - 2 * MARGIN).await;
    assert_eq!(
        states(&connections(&app, &user.token, &tunnel).await),
        [(s(k), true)]
    );
    age_tunnel(&app.db, id, 2 * MARGIN).await;
    age_connector(&app.db, client, 2 * MARGIN).await;
    assert_eq!(connections(&app, &user.token, &tunnel).await, json!([]));
}
