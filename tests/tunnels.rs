mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn is_millis_utc(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    // 2026-03-05T10:30:00.000Z
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test]
async fn a_new_tunnel_has_the_seed_shape_and_a_fresh_lease() {
    let app = TestApp::spawn_with(|c| c.base_domain = "example.com".into()).await;
    let user = app.user().await;
    let t = app
        .tunnel(
            &user.token,
            json!({"slug": "my-app", "requestedPort": 3000}),
        )
        .await;
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "id",
        "hostname",
        "slug",
        "status",
        "requestedPort",
        "createdAt",
        "lease",
        "stoppedAt",
        "lastError",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    assert!(uuid::Uuid::parse_str(t["id"].as_str().unwrap()).is_ok());
    assert_eq!(t["hostname"], "my-app.example.com");
    assert_eq!(t["status"], "creating");
    assert_eq!(t["requestedPort"], 3000);
    assert!(is_millis_utc(&t["createdAt"]), "{t}");
    assert_eq!(t["lease"]["lastHeartbeatAt"], Value::Null);
    assert!(is_millis_utc(&t["lease"]["expiresAt"]), "{t}");
    let created = chrono::DateTime::parse_from_rfc3339(t["createdAt"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(t["lease"]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_milliseconds(), 60_000);
    assert_eq!(t["stoppedAt"], Value::Null);
    assert_eq!(t["lastError"], Value::Null);
}

#[tokio::test]
async fn a_slug_is_generated_when_absent() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let a = app.tunnel(&user.token, json!({"requestedPort": 80})).await;
    let b = app.tunnel(&user.token, json!({"requestedPort": 80})).await;
    let slug = a["slug"].as_str().unwrap();
    assert!(
        !slug.is_empty()
            && slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_ne!(a["slug"], b["slug"]);
    assert_eq!(a["hostname"], format!("{slug}.localhost"));
}

#[tokio::test]
async fn a_heartbeat_activates_renews_and_tells_the_interval() {
    let app = TestApp::spawn_with(|c| c.lease_ttl = std::time::Duration::from_secs(30)).await;
    let user = app.user().await;
    let t = app
        .tunnel(&user.token, json!({"requestedPort": 3000}))
        .await;
    let id = t["id"].as_str().unwrap();
    let response = app.heartbeat(&user.token, id).await;
    assert_eq!(response.headers()["warren-heartbeat-interval"], "10");
    let hb = json_of(response, StatusCode::OK).await;
    assert_eq!(hb["status"], "active");
    assert!(is_millis_utc(&hb["lease"]["lastHeartbeatAt"]));
    let last =
        chrono::DateTime::parse_from_rfc3339(hb["lease"]["lastHeartbeatAt"].as_str().unwrap())
            .unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(hb["lease"]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - last).num_milliseconds(), 30_000);
    // A heartbeat with a JSON body (and an empty object) works the same way.
    let again = app
        .post(
            &format!("/v1/tunnels/{id}/heartbeat"),
            &user.token,
            json!({}),
        )
        .await;
    assert_eq!(json_of(again, StatusCode::OK).await["status"], "active");
}

#[tokio::test]
async fn the_heartbeat_interval_is_at_least_one_second() {
    let app = TestApp::spawn_with(|c| c.lease_ttl = std::time::Duration::from_secs(2)).await;
    let user = app.user().await;
    let t = app
        .tunnel(&user.token, json!({"requestedPort": 3000}))
        .await;
    let response = app.heartbeat(&user.token, t["id"].as_str().unwrap()).await;
    assert_eq!(response.headers()["warren-heartbeat-interval"], "1");
}

#[tokio::test]
async fn listing_is_newest_first_and_include_inactive_takes_exactly_the_seed_values() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let old = app
        .tunnel(&user.token, json!({"slug": "old", "requestedPort": 1}))
        .await;
    let new = app
        .tunnel(&user.token, json!({"slug": "new", "requestedPort": 2}))
        .await;
    let old_id = old["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/tunnels/{old_id}"),
        &user.token,
        json!({"status": "failed", "lastError": "crashed"}),
    )
    .await;

    let live = json_of(app.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
    assert_eq!(live.as_array().unwrap().len(), 1);
    assert_eq!(live[0]["id"], new["id"]);
    for falsy in ["false", "0"] {
        let l = json_of(
            app.get(&format!("/v1/tunnels?includeInactive={falsy}"), &user.token)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(l.as_array().unwrap().len(), 1, "{falsy}");
    }
    for truthy in ["true", "1"] {
        let all = json_of(
            app.get(
                &format!("/v1/tunnels?includeInactive={truthy}"),
                &user.token,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let ids: Vec<&Value> = all.as_array().unwrap().iter().map(|t| &t["id"]).collect();
        assert_eq!(ids, vec![&new["id"], &old["id"]], "{truthy}");
        assert_eq!(all[1]["status"], "failed");
        assert_eq!(all[1]["lease"], Value::Null);
        assert!(is_millis_utc(&all[1]["stoppedAt"]));
        assert_eq!(all[1]["lastError"], "crashed");
    }
    for bad in ["yes", "TRUE", "", "2"] {
        let p = problem_of(
            app.get(&format!("/v1/tunnels?includeInactive={bad}"), &user.token)
                .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], "includeInactive");
    }
}

#[tokio::test]
async fn every_allowed_transition_succeeds() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let paths: &[&[&str]] = &[
        &["active", "stopping", "stopped"],
        &["stopping", "stopped"],
        &["active", "failed"],
        &["failed"],
        &["stopping", "failed"],
        &["active", "stopping", "failed"],
    ];
    for path in paths {
        let t = app
            .tunnel(&user.token, json!({"requestedPort": 8080}))
            .await;
        let id = t["id"].as_str().unwrap();
        for to in *path {
            let mut body = json!({"status": to});
            if *to == "failed" {
                body["lastError"] = json!("agent crashed");
            }
            let r = json_of(
                app.patch(&format!("/v1/tunnels/{id}"), &user.token, body)
                    .await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(r["status"], *to, "path {path:?}");
            let terminal = *to == "stopped" || *to == "failed";
            assert_eq!(r["lease"].is_null(), terminal, "{r}");
            assert_eq!(r["stoppedAt"].is_null(), !terminal, "{r}");
        }
    }
}

#[tokio::test]
async fn every_refused_transition_is_a_409_naming_both_states() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    // (how to get there, refused target)
    let cases: &[(&[&str], &str)] = &[
        (&[], "creating"),
        (&[], "stopped"),
        (&["active"], "active"),
        (&["active"], "creating"),
        (&["active"], "stopped"),
        (&["stopping"], "active"),
        (&["stopping"], "stopping"),
        (&["stopping"], "creating"),
        (&["stopping", "stopped"], "active"),
        (&["stopping", "stopped"], "failed"),
        (&["stopping", "stopped"], "stopping"),
        (&["failed"], "active"),
        (&["failed"], "stopped"),
        (&["failed"], "failed"),
    ];
    for (setup, to) in cases {
        let t = app
            .tunnel(&user.token, json!({"requestedPort": 8080}))
            .await;
        let id = t["id"].as_str().unwrap();
        let mut from = "creating";
        for step in *setup {
            let mut body = json!({"status": step});
            if *step == "failed" {
                body["lastError"] = json!("x");
            }
            json_of(
                app.patch(&format!("/v1/tunnels/{id}"), &user.token, body)
                    .await,
                StatusCode::OK,
            )
            .await;
            from = step;
        }
        let mut body = json!({"status": to});
        if *to == "failed" {
            body["lastError"] = json!("x");
        }
        let p = problem_of(
            app.patch(&format!("/v1/tunnels/{id}"), &user.token, body)
                .await,
            StatusCode::CONFLICT,
            "invalid_transition",
        )
        .await;
        assert_eq!(p["from"], from, "{p}");
        assert_eq!(p["to"], *to, "{p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(from) && detail.contains(to), "{detail}");
        let now = json_of(
            app.get(&format!("/v1/tunnels/{id}"), &user.token).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            now["status"], from,
            "a refused transition changed the tunnel"
        );
    }
}

#[tokio::test]
async fn a_heartbeat_on_a_stopped_tunnel_is_refused_and_a_stopping_one_is_renewed() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let t = app
        .tunnel(&user.token, json!({"requestedPort": 3000}))
        .await;
    let id = t["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/tunnels/{id}"),
        &user.token,
        json!({"status": "stopping"}),
    )
    .await;
    let hb = json_of(app.heartbeat(&user.token, id).await, StatusCode::OK).await;
    assert_eq!(
        hb["status"], "stopping",
        "the agent must see that it is asked to stop"
    );
    assert!(!hb["lease"]["lastHeartbeatAt"].is_null());
    app.patch(
        &format!("/v1/tunnels/{id}"),
        &user.token,
        json!({"status": "stopped"}),
    )
    .await;
    let refused = app.heartbeat(&user.token, id).await;
    assert!(
        refused.headers().contains_key("warren-heartbeat-interval"),
        "refusals tell the interval too"
    );
    let p = problem_of(refused, StatusCode::CONFLICT, "tunnel_not_live").await;
    assert_eq!(p["tunnelStatus"], "stopped");
}

#[tokio::test]
async fn slugs_are_unique_among_live_tunnels_and_freed_when_stopped() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let t = app
        .tunnel(&alice.token, json!({"slug": "shared", "requestedPort": 1}))
        .await;
    // The owner learns which tunnel holds it, so a restarted agent can adopt it.
    let own = problem_of(
        app.post(
            "/v1/tunnels",
            &alice.token,
            json!({"slug": "shared", "requestedPort": 1}),
        )
        .await,
        StatusCode::CONFLICT,
        "slug_taken",
    )
    .await;
    assert_eq!(own["tunnelId"], t["id"]);
    // Another account only learns that it is taken.
    let other = problem_of(
        app.post(
            "/v1/tunnels",
            &bob.token,
            json!({"slug": "shared", "requestedPort": 1}),
        )
        .await,
        StatusCode::CONFLICT,
        "slug_taken",
    )
    .await;
    assert!(other.get("tunnelId").is_none(), "{other}");

    let id = t["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/tunnels/{id}"),
        &alice.token,
        json!({"status": "failed", "lastError": "x"}),
    )
    .await;
    let reused = app
        .tunnel(&bob.token, json!({"slug": "shared", "requestedPort": 2}))
        .await;
    assert_eq!(reused["slug"], "shared");
}

#[tokio::test]
async fn only_terminal_tunnels_can_be_deleted() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let t = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/v1/tunnels/{id}");
    problem_of(
        app.delete(&path, &user.token).await,
        StatusCode::CONFLICT,
        "tunnel_live",
    )
    .await;
    app.patch(&path, &user.token, json!({"status": "stopping"}))
        .await;
    app.patch(&path, &user.token, json!({"status": "stopped"}))
        .await;
    assert_eq!(
        app.delete(&path, &user.token).await.status(),
        StatusCode::NO_CONTENT
    );
    problem_of(
        app.get(&path, &user.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let all = json_of(
        app.get("/v1/tunnels?includeInactive=true", &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all, json!([]));
}

#[tokio::test]
async fn another_accounts_tunnel_is_404_on_every_route_and_unchanged() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mallory = app.user().await;
    let t = app
        .tunnel(&alice.token, json!({"slug": "private", "requestedPort": 1}))
        .await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/v1/tunnels/{id}");
    problem_of(
        app.get(&path, &mallory.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem_of(
        app.heartbeat(&mallory.token, id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem_of(
        app.patch(&path, &mallory.token, json!({"status": "stopping"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem_of(
        app.delete(&path, &mallory.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let listed = json_of(
        app.get("/v1/tunnels?includeInactive=true", &mallory.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed, json!([]));
    let after = json_of(app.get(&path, &alice.token).await, StatusCode::OK).await;
    assert_eq!(after, t, "another account's requests changed the tunnel");
}

#[tokio::test]
async fn bad_input_is_a_4xx_that_names_the_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/v1/tunnels"))
            .bearer_auth(&user.token)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        try_send_checked(req)
    };
    problem_of(
        raw("{\"requestedPort\": 1", Some("application/json"))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    problem_of(
        raw("{\"requestedPort\": 1}", Some("text/plain"))
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    problem_of(
        raw("{\"requestedPort\": 1}", None).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let p = problem_of(
        raw("{}", Some("application/json")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("requestedPort"),
        "{p}"
    );
    let p = problem_of(
        raw("{\"requestedPort\": \"80\"}", Some("application/json"))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("requestedPort"),
        "{p}"
    );
    for port in [0, 65536, -1] {
        let p = problem_of(
            app.post("/v1/tunnels", &user.token, json!({"requestedPort": port}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], "requestedPort");
    }
    for slug in [
        "-bad",
        "Bad",
        "a_b",
        "",
        "x".repeat(64).as_str(),
        "a'; DROP TABLE tunnels; --",
    ] {
        let p = problem_of(
            app.post(
                "/v1/tunnels",
                &user.token,
                json!({"slug": slug, "requestedPort": 1}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], "slug");
    }
    let big = format!(
        "{{\"requestedPort\": 1, \"slug\": \"{}\"}}",
        "a".repeat(1024 * 1024 + 10)
    );
    let response = app
        .send(
            app.client
                .post(app.url("/v1/tunnels"))
                .bearer_auth(&user.token)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    problem_of(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    problem_of(
        app.get("/v1/tunnels/not-a-uuid", &user.token).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let p = problem_of(
        app.call(Method::PUT, "/v1/tunnels", Some(&user.token), None)
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("PUT"));

    let t = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
    let path = format!("/v1/tunnels/{}", t["id"].as_str().unwrap());
    let p = problem_of(
        app.patch(&path, &user.token, json!({"status": "paused"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "status");
    let p = problem_of(
        app.patch(&path, &user.token, json!({"status": "failed"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "lastError");
    let p = problem_of(
        app.patch(
            &path,
            &user.token,
            json!({"status": "failed", "lastError": "x".repeat(1025)}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "lastError");
    let hb = app
        .send(
            app.client
                .post(app.url(&format!("{path}/heartbeat")))
                .bearer_auth(&user.token)
                .header("content-type", "application/json")
                .body("[1,"),
        )
        .await;
    problem_of(hb, StatusCode::BAD_REQUEST, "malformed_json").await;

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tunnels")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1, "only the one valid tunnel was written");
    let after = json_of(app.get(&path, &user.token).await, StatusCode::OK).await;
    assert_eq!(after, t);
}

fn next_link(response: &reqwest::Response) -> Option<String> {
    let link = response.headers().get("link")?.to_str().unwrap().to_owned();
    let url = link.strip_prefix('<')?.split_once('>')?.0.to_owned();
    assert!(link.ends_with("rel=\"next\""), "{link}");
    Some(url)
}

#[tokio::test]
async fn the_cursor_walks_every_tunnel_exactly_once_while_tunnels_are_being_created() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut existing = std::collections::HashSet::new();
    for i in 0..23 {
        let t = app
            .tunnel(
                &user.token,
                json!({"slug": format!("walk-{i}"), "requestedPort": 1}),
            )
            .await;
        existing.insert(t["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/tunnels?limit=5".to_owned();
    let mut pages = 0;
    loop {
        // Someone keeps creating tunnels while we walk.
        app.tunnel(&user.token, json!({"requestedPort": 2})).await;
        let response = app.get(&path, &user.token).await;
        let next = next_link(&response);
        let page = json_of(response, StatusCode::OK).await;
        assert!(page.as_array().unwrap().len() <= 5);
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match next {
            Some(next) => path = next,
            None => break,
        }
        assert!(pages < 20, "the walk does not end");
    }
    let unique: std::collections::HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a tunnel was listed twice");
    assert!(
        existing.is_subset(&unique),
        "a tunnel that existed before the walk was missed"
    );
}

#[tokio::test]
async fn limit_and_cursor_values_are_checked() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    for bad in ["0", "1001", "x", "-1"] {
        let p = problem_of(
            app.get(&format!("/v1/tunnels?limit={bad}"), &user.token)
                .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], "limit");
    }
    for bad in ["nonsense", "1_2", "12_not-a-uuid"] {
        let p = problem_of(
            app.get(&format!("/v1/tunnels?after={bad}"), &user.token)
                .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], "after");
    }
    app.tunnel(&user.token, json!({"requestedPort": 1})).await;
    let response = app.get("/v1/tunnels?limit=1", &user.token).await;
    assert!(
        response.headers().get("link").is_none(),
        "no next page when everything fit"
    );
}

async fn create_with_key(app: &TestApp, token: &str, key: &str, body: Value) -> reqwest::Response {
    app.send(
        app.client
            .post(app.url("/v1/tunnels"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn a_retried_creation_with_the_same_idempotency_key_returns_the_same_tunnel() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let body = json!({"requestedPort": 3000});
    let first = json_of(
        create_with_key(&app, &user.token, "retry-1", body.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    let again = json_of(
        create_with_key(&app, &user.token, "retry-1", body.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(
        first["slug"], again["slug"],
        "a generated slug is not generated again"
    );

    // Agents retrying at once after a timeout still create one tunnel.
    let racing = (0..8).map(|_| {
        create_with_key(
            &app,
            &user.token,
            "retry-2",
            json!({"slug": "racer", "requestedPort": 1}),
        )
    });
    let responses = futures::future::join_all(racing).await;
    let mut ids = std::collections::HashSet::new();
    for r in responses {
        ids.insert(
            json_of(r, StatusCode::CREATED).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tunnels")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 2);

    problem_of(
        create_with_key(&app, &user.token, "retry-1", json!({"requestedPort": 3001})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    // Keys belong to their account.
    let other = app.user().await;
    let theirs = json_of(
        create_with_key(&app, &other.token, "retry-1", body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(theirs["id"], first["id"]);
    let p = problem_of(
        create_with_key(
            &app,
            &user.token,
            "bad key with spaces",
            json!({"requestedPort": 1}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "Idempotency-Key");
}

#[tokio::test]
async fn an_idempotency_key_older_than_a_day_is_forgotten() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let first = json_of(
        create_with_key(&app, &user.token, "daily", json!({"requestedPort": 1})).await,
        StatusCode::CREATED,
    )
    .await;
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    let second = json_of(
        create_with_key(&app, &user.token, "daily", json!({"requestedPort": 1})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(first["id"], second["id"]);
}
