mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_first_user_registers_and_logs_in_with_a_bearer_jwt() {
    let app = TestApp::spawn_with(|c| c.allow_registration = false).await;
    let registered = json_of(
        app.register("Ada@Example.com", PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(registered["email"], "Ada@Example.com");
    let account = registered["accountId"].as_str().unwrap();
    assert_eq!(account.len(), 32);
    assert!(account
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert!(uuid::Uuid::parse_str(registered["id"].as_str().unwrap()).is_ok());

    let login = json_of(app.login("ada@example.com", PASSWORD).await, StatusCode::OK).await;
    assert_eq!(login["tokenType"], "Bearer");
    assert_eq!(login["expiresIn"], 900);
    let token = login["accessToken"].as_str().unwrap();
    json_of(app.get("/v1/tunnels", token).await, StatusCode::OK).await;

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
}

#[tokio::test]
async fn registration_is_closed_after_the_first_user_unless_allowed() {
    let app = TestApp::spawn_with(|c| c.allow_registration = false).await;
    json_of(
        app.register("first@example.com", PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    problem_of(
        app.register("second@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn an_email_registered_twice_in_any_case_is_a_conflict() {
    let app = TestApp::spawn().await;
    json_of(
        app.register("bob@example.com", PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    problem_of(
        app.register("BOB@example.com", PASSWORD).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
}

#[tokio::test]
async fn registration_names_the_invalid_field() {
    let app = TestApp::spawn().await;
    let p = problem_of(
        app.register("not-an-email", PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "email");
    let p = problem_of(
        app.register("a@example.com", "short").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "password");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let wrong = problem_of(
        app.login(&user.email, "wrong password!!").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let unknown = problem_of(
        app.login("nobody@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(wrong["detail"], unknown["detail"]);
}

#[tokio::test]
async fn requests_without_valid_credentials_get_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    for auth in [
        None,
        Some("Basic abc"),
        Some("Bearer"),
        Some("Bearer not-a-jwt"),
        Some("Bearer wrn_unknown"),
    ] {
        let mut req = app.client.get(app.url("/v1/tunnels"));
        if let Some(value) = auth {
            req = req.header("authorization", value);
        }
        let response = app.send(req).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{auth:?}");
        problem_of(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn unb64(data: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(data)
        .unwrap()
}

fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_expired_and_foreign_jwts_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let parts: Vec<&str> = user.token.split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
    let now = chrono::Utc::now().timestamp();
    let secret = JWT_SECRET.as_bytes();

    // Our forging is right: the untouched claims, re-signed with the real key, are accepted.
    let genuine = sign(&claims, secret);
    assert_eq!(
        app.get("/v1/tunnels", &genuine).await.status(),
        StatusCode::OK
    );

    let mut cases = Vec::new();
    // A changed payload under the original signature.
    let mut tampered = claims.clone();
    tampered["acct"] = json!("00000000000000000000000000000000");
    let forged_payload = b64(tampered.to_string().as_bytes());
    cases.push((
        "changed payload",
        format!("{}.{}.{}", parts[0], forged_payload, parts[2]),
    ));
    // alg: none, no signature.
    let none_header = b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes());
    cases.push(("alg none", format!("{none_header}.{}.", parts[1])));
    // Signed with another key.
    cases.push((
        "wrong key",
        sign(&claims, b"another-secret-of-sufficient-length!!"),
    ));
    for (field, value) in [
        ("iss", json!("someone-else")),
        ("aud", json!("another-api")),
        ("exp", json!(now - 10)),
    ] {
        let mut c = claims.clone();
        c[field] = value;
        cases.push((field, sign(&c, secret)));
    }
    for (name, token) in cases {
        let response = app.get("/v1/tunnels", &token).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{name} was accepted"
        );
    }
}

#[tokio::test]
async fn api_tokens_are_shown_once_stored_as_hashes_and_listed_without_secrets() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let created = json_of(
        app.post(
            "/v1/tokens",
            &user.token,
            json!({"name": "agent", "scopes": ["tunnels:heartbeat"], "expiresInSecs": 3600}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("wrn_") && token.len() >= 36, "{token}");
    assert!(token[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(created["scopes"], json!(["tunnels:heartbeat"]));
    assert!(created["expiresAt"].is_string());

    let listed = json_of(app.get("/v1/tokens", &user.token).await, StatusCode::OK).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert!(listed[0].get("token").is_none());

    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].windows(token.len()).any(|w| w == token.as_bytes()));
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let created = json_of(
        app.post(
            "/v1/tokens",
            &user.token,
            json!({"name": "ci", "scopes": ["tunnels:read"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(app.get("/v1/tunnels", token).await.status(), StatusCode::OK);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/tokens/{id}"), &user.token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem_of(
        app.get("/v1/tunnels", token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    problem_of(
        app.delete(&format!("/v1/tokens/{id}"), &user.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_expired_api_token_is_refused() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let token = app.api_token(&user, &["tunnels:read"]).await;
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    problem_of(
        app.get("/v1/tunnels", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn each_route_demands_its_scope() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let read_only = app.api_token(&user, &["tunnels:read"]).await;
    let heartbeat_only = app.api_token(&user, &["tunnels:heartbeat"]).await;
    let tunnel = app
        .tunnel(&user.token, json!({"requestedPort": 3000}))
        .await;
    let id = tunnel["id"].as_str().unwrap();

    problem_of(
        app.post("/v1/tunnels", &read_only, json!({"requestedPort": 1}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem_of(
        app.heartbeat(&read_only, id).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem_of(
        app.get("/v1/tunnels", &heartbeat_only).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem_of(
        app.delete(&format!("/v1/tunnels/{id}"), &heartbeat_only)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem_of(
        app.get("/v1/tokens", &read_only).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem_of(
        app.patch(
            &format!("/v1/tunnels/{id}"),
            &read_only,
            json!({"status": "stopping"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    assert_eq!(
        app.get("/v1/tunnels", &read_only).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.heartbeat(&heartbeat_only, id).await.status(),
        StatusCode::OK
    );
    // A heartbeat-scoped agent may report its own stop.
    let p = app
        .patch(
            &format!("/v1/tunnels/{id}"),
            &heartbeat_only,
            json!({"status": "stopping"}),
        )
        .await;
    assert_eq!(p.status(), StatusCode::OK);
}

#[tokio::test]
async fn tokens_cannot_grant_more_than_their_creator_holds_and_unknown_scopes_are_named() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let limited = app
        .api_token(&user, &["tokens:write", "tunnels:read"])
        .await;
    problem_of(
        app.post(
            "/v1/tokens",
            &limited,
            json!({"name": "x", "scopes": ["tunnels:write"]}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.post(
            "/v1/tokens",
            &limited,
            json!({"name": "x", "scopes": ["tunnels:read"]})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    let p = problem_of(
        app.post(
            "/v1/tokens",
            &user.token,
            json!({"name": "x", "scopes": ["tunnels:read", "root"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "scopes[1]");
    let p = problem_of(
        app.post(
            "/v1/tokens",
            &user.token,
            json!({"name": "x", "scopes": ["tunnels:read"], "expiresInSecs": 0}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "expiresInSecs");
}

#[tokio::test]
async fn another_accounts_token_cannot_be_revoked() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mallory = app.user().await;
    let created = json_of(
        app.post(
            "/v1/tokens",
            &alice.token,
            json!({"name": "a", "scopes": ["tunnels:read"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    problem_of(
        app.delete(&format!("/v1/tokens/{id}"), &mallory.token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(app.get("/v1/tunnels", token).await.status(), StatusCode::OK);
    let listed = json_of(app.get("/v1/tokens", &mallory.token).await, StatusCode::OK).await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn api_tokens_are_served_from_memory_and_a_revocation_reaches_every_server_within_a_second() {
    let a = TestApp::spawn().await;
    let b = TestApp::on_database(&a.database_url, |_| {}).await;
    let user = a.user().await;
    let cached = a.api_token(&user, &["tunnels:read"]).await;
    let revoked = json_of(
        a.post(
            "/v1/tokens",
            &user.token,
            json!({"name": "soon revoked", "scopes": ["tunnels:read"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let revoked_token = revoked["token"].as_str().unwrap();
    // Warm B's cache (its revocation listener connects right after start).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for token in [cached.as_str(), revoked_token] {
        assert_eq!(b.get("/v1/tunnels", token).await.status(), StatusCode::OK);
    }

    // Served from memory: a row removed behind Warren's back (triggers off, so no NOTIFY)
    // is still accepted by the server that cached it.
    let mut conn = b.db.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM api_tokens WHERE name = 'test'")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(b.get("/v1/tunnels", &cached).await.status(), StatusCode::OK);

    // A real revocation on A: refused by A at once, by B as soon as the NOTIFY arrives.
    let id = revoked["id"].as_str().unwrap();
    assert_eq!(
        a.delete(&format!("/v1/tokens/{id}"), &user.token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.get("/v1/tunnels", revoked_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let within = std::time::Duration::from_secs(1);
    eventually(within, "B to refuse the revoked token", || async {
        let status = b.get("/v1/tunnels", revoked_token).await.status();
        if status == StatusCode::UNAUTHORIZED {
            Ok(())
        } else {
            Err(status)
        }
    })
    .await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_email_and_per_address_with_retry_after() {
    let app = TestApp::spawn_with(|c| c.login_attempts_per_minute = 3).await;
    json_of(
        app.register("limited@example.com", PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    for _ in 0..3 {
        problem_of(
            app.login("limited@example.com", "wrong password!!").await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    // Even the right password waits now.
    let response = app.login("limited@example.com", PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    problem_of(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The address is spent too, whatever the email.
    problem_of(
        app.login("someone-else@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn the_login_limit_is_shared_by_every_replica_and_its_counts_go_with_their_window() {
    let limited = |c: &mut warren::Config| {
        c.login_attempts_per_minute = 4;
        c.session_sweep_interval = Duration::from_millis(100);
    };
    let a = TestApp::spawn_with(limited).await;
    let b = TestApp::on_database(&a.database_url, limited).await;
    json_of(
        a.register("shared@example.com", PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    // Four attempts, taking turns: the limit of 4 is spent on both.
    for app in [&a, &b, &a, &b] {
        problem_of(
            app.login("shared@example.com", "wrong password!!").await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    for app in [&a, &b] {
        problem_of(
            app.login("shared@example.com", PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        )
        .await;
    }
    // The window ends (moved back rather than waited for): the sweep deletes its counts, and
    // the right password is let in.
    sqlx::query("UPDATE login_attempts SET window_start = window_start - interval '61 s'")
        .execute(&a.db)
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the counts pruned", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM login_attempts")
            .fetch_one(&a.db)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
    json_of(
        b.login("shared@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn access_tokens_survive_a_key_rotation_while_the_old_key_is_listed() {
    let old_secret = "the-old-signing-secret-of-at-least-32-chars";
    let new_secret = "the-new-signing-secret-of-at-least-32-chars";
    let before = TestApp::spawn_with(|c| c.jwt_secret = Some(old_secret.into())).await;
    let user = before.user().await;
    let rotated = TestApp::on_database(&before.database_url, |c| {
        c.jwt_secret = Some(new_secret.into());
        c.jwt_previous_secrets = vec![old_secret.into()];
    })
    .await;
    assert_eq!(
        rotated.get("/v1/tunnels", &user.token).await.status(),
        StatusCode::OK
    );
    // Tokens issued after the rotation carry the new key's id and work too.
    let fresh = json_of(rotated.login(&user.email, PASSWORD).await, StatusCode::OK).await;
    assert_eq!(
        rotated
            .get("/v1/tunnels", fresh["accessToken"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    // Once the old key is dropped, its tokens are refused.
    let dropped = TestApp::on_database(&before.database_url, |c| {
        c.jwt_secret = Some(new_secret.into())
    })
    .await;
    problem_of(
        dropped.get("/v1/tunnels", &user.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(
        dropped
            .get("/v1/tunnels", fresh["accessToken"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}
