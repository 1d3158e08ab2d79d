//! Shapes: nested JSON, invalid UTF-8, arrays over their limits, oversized headers, bad path
//! segments.

use super::*;

#[tokio::test]
async fn deeply_nested_json_and_invalid_utf8_bodies_are_malformed_json_on_every_route() {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let deep_array = "[".repeat(100_000).into_bytes();
    let deep_object = "{\"a\":".repeat(100_000).into_bytes();
    let mut deep_member = b"{\"connector\": ".to_vec();
    deep_member.extend("[".repeat(50_000).bytes());
    let mut bad_utf8 = b"{\"slug\": \"ab".to_vec();
    bad_utf8.extend([0xff, 0xfe, b'"', b'}']);
    let lone_surrogate = br#"{"name": "\ud800", "email": "\ud800@example.com"}"#.to_vec();
    for (method, path) in body_routes(&t) {
        for body in [&deep_array, &deep_object, &deep_member, &bad_utf8] {
            let what = format!(
                "{method} {path} with {}…",
                String::from_utf8_lossy(&body[..12])
            );
            let answer = send_bytes(&app, &t, &method, &path, body.clone()).await;
            let problem = answer.refused(&path, &what);
            // Unreadable JSON is 400; JSON of the wrong shape (an array where the route takes
            // an object) is refused at its first character, 422.
            let code = problem["code"].as_str().unwrap();
            assert!(
                matches!(
                    (answer.status, code),
                    (400, "malformed_json") | (422, "validation_failed")
                ),
                "{what}: {}",
                answer.body
            );
        }
    }
    // A lone surrogate is escaped ASCII, so valid UTF-8: refused where the string is read
    // (a member a route ignores is skipped unread, like any other unknown member).
    for path in ["/v1/auth/register", "/v1/auth/login", "/v1/tokens"] {
        let answer = send_bytes(&app, &t, &Method::POST, path, lone_surrogate.clone()).await;
        answer.refused(path, &format!("POST {path} with a lone surrogate"));
    }
    still_healthy(&app, &t.user).await;
}

#[tokio::test]
async fn arrays_over_their_limits_are_refused_naming_the_array() {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let beat = format!("/v1/tunnels/{}/heartbeat", t.tunnel);
    let many = |item: Value, n: usize| Value::Array(vec![item; n]);
    let mut features = t.report();
    features["connector"]["features"] = many(json!("x"), 100_000);
    let mut connections = t.report();
    connections["connector"]["connections"] = many(json!({"id": Uuid::new_v4()}), 10_000);
    let mut apps = snapshot(&t.device, 0);
    apps["cpuPctByApp"] = many(json!({"name": "x", "cpu_pct": 1.0}), 50_000);
    let mut scopes = json!({"name": "many"});
    scopes["scopes"] = many(json!("nope"), 100_000);
    for (method, path, body, field, status) in [
        (
            Method::POST,
            beat.as_str(),
            features,
            "connector.features",
            422,
        ),
        (
            Method::POST,
            beat.as_str(),
            connections,
            "connector.connections",
            422,
        ),
        (
            Method::POST,
            "/v1/fleet-status/devices",
            apps,
            "cpuPctByApp",
            422,
        ),
        (Method::POST, "/v1/tokens", scopes, "scopes[0]", 422),
        // Past the body limits: 413, before anything is parsed.
        (
            Method::POST,
            "/v1/tunnels",
            many(json!(1), 600_000),
            "",
            413,
        ),
        (
            Method::POST,
            "/v1/fleet-status/devices",
            many(json!("xxxxxxxxxxxxxx"), 600_000),
            "",
            413,
        ),
    ] {
        let what = format!("{method} {path} {field}");
        let answer = Answer::of(
            app.call(method, path, Some(&t.user.token), Some(body))
                .await,
        )
        .await;
        answer.refused_naming(path, &what, status, field);
    }
    let listed = json_of(
        app.get(
            &format!("/v1/tunnels/{}/connections", t.tunnel),
            &t.user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        listed[0]["features"],
        json!(["ha-origin"]),
        "nothing was written"
    );
    still_healthy(&app, &t.user).await;
}

#[tokio::test]
async fn oversized_headers_are_refused_cleanly_and_named_when_they_are_read() {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let big = |n: usize| vec![b'a'; n];
    let cf_devices = format!(
        "/client/v4/accounts/{}/dex/fleet-status/devices",
        t.user.account_id
    );
    // Headers Warren reads: a 4xx that names them.
    let cases: Vec<(&str, &str, Headers, u16, &str)> = vec![
        (
            "GET",
            "/v1/tunnels",
            vec![(
                "authorization",
                [b"Bearer ".to_vec(), big(64 * 1024)].concat(),
            )],
            401,
            "",
        ),
        (
            "POST",
            "/v1/tunnels",
            vec![
                bearer(&t.user),
                ("content-type", b"application/json".to_vec()),
                ("idempotency-key", big(64 * 1024)),
            ],
            400,
            "Idempotency-Key",
        ),
        (
            "POST",
            "/v1/tunnels",
            vec![bearer(&t.user), ("content-type", big(64 * 1024))],
            415,
            "",
        ),
        (
            "GET",
            &cf_devices,
            vec![
                ("x-auth-email", big(64 * 1024)),
                ("x-auth-key", big(64 * 1024)),
            ],
            401,
            "",
        ),
    ];
    for (method, path, headers, status, field) in cases {
        let what = format!(
            "{method} {path} with a 64 KiB {}",
            headers.last().unwrap().0
        );
        let answer = raw_with_body(
            &app,
            method,
            path.as_bytes(),
            &headers,
            br#"{"requestedPort": 1}"#,
        )
        .await;
        answer.refused_naming(path, &what, status, field);
    }
    // A large header Warren does not read is ignored.
    let ignored = raw(
        &app,
        "GET",
        b"/v1/tunnels",
        &[bearer(&t.user), ("x-padding", big(64 * 1024))],
    )
    .await;
    assert_eq!(ignored.status, 200, "{}", ignored.body);
    // Past the HTTP server's own limits (about 400 KiB of headers, or 100 of them) hyper
    // answers 431 before Warren sees the request: a clean 4xx, without a body.
    let huge = raw(
        &app,
        "GET",
        b"/v1/tunnels",
        &[bearer(&t.user), ("x-padding", big(600 * 1024))],
    )
    .await;
    assert_eq!(huge.status, 431);
    let many: Vec<(&str, Vec<u8>)> = (0..150).map(|_| ("x-padding", b"a".to_vec())).collect();
    assert_eq!(raw(&app, "GET", b"/v1/tunnels", &many).await.status, 431);
    still_healthy(&app, &t.user).await;
}

#[tokio::test]
async fn invalid_utf8_and_traversal_in_path_segments_are_a_4xx_and_touch_nothing() {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let token = app.api_token(&t.user, &["tunnels:read"]).await;
    let before = json_of(app.get("/v1/tokens", &t.user.token).await, StatusCode::OK).await;
    let (a, tu, c, d) = (&t.user.account_id, &t.tunnel, &t.connector, &t.device);
    // Each id position of every route, `{x}` standing for the hostile segment.
    let routes = [
        ("GET", "/v1/tunnels/{x}".to_owned()),
        ("PATCH", "/v1/tunnels/{x}".into()),
        ("DELETE", "/v1/tunnels/{x}".into()),
        ("POST", "/v1/tunnels/{x}/heartbeat".into()),
        ("GET", "/v1/tunnels/{x}/connections".into()),
        ("DELETE", "/v1/tunnels/{x}/connections".into()),
        ("GET", "/v1/tunnels/{x}/connectors/{c}".into()),
        ("GET", format!("/v1/tunnels/{tu}/connectors/{{x}}")),
        ("DELETE", "/v1/tokens/{x}".into()),
        (
            "GET",
            "/v1/devices/{x}/fleet-status/live?sinceMinutes=5".into(),
        ),
        (
            "GET",
            format!("/client/v4/accounts/{{x}}/cfd_tunnel/{tu}/connections"),
        ),
        (
            "DELETE",
            format!("/client/v4/accounts/{{x}}/cfd_tunnel/{tu}/connections"),
        ),
        (
            "GET",
            format!("/client/v4/accounts/{a}/cfd_tunnel/{{x}}/connections"),
        ),
        (
            "DELETE",
            format!("/client/v4/accounts/{a}/cfd_tunnel/{{x}}/connections"),
        ),
        (
            "GET",
            format!("/client/v4/accounts/{{x}}/cfd_tunnel/{tu}/connectors/{c}"),
        ),
        (
            "GET",
            format!("/client/v4/accounts/{a}/cfd_tunnel/{{x}}/connectors/{c}"),
        ),
        (
            "GET",
            format!("/client/v4/accounts/{a}/cfd_tunnel/{tu}/connectors/{{x}}"),
        ),
        (
            "GET",
            "/client/v4/accounts/{x}/dex/fleet-status/devices".into(),
        ),
        (
            "GET",
            format!("/client/v4/accounts/{{x}}/dex/devices/{d}/fleet-status/live?since_minutes=5"),
        ),
        (
            "GET",
            format!("/client/v4/accounts/{a}/dex/devices/{{x}}/fleet-status/live?since_minutes=5"),
        ),
    ];
    let segments: [&[u8]; 10] = [
        b"%FF%FE",
        b"%C3%28",
        b"%00",
        b"..",
        b"..%2F..%2Fv1%2Ftokens",
        b"..%2f..%2fhealthz",
        b"%2e%2e%2f%2e%2e",
        b"a%2Fb",
        b"%27%3B%20drop%20table%20tunnels%3B%20--",
        b"%25_%5C",
    ];
    for (method, route) in &routes {
        let route = route.replace("{c}", c);
        for segment in segments {
            let target = route.replace("{x}", &String::from_utf8_lossy(segment));
            let what = format!("{method} {target}");
            let answer = raw(&app, method, target.as_bytes(), &[bearer(&t.user)]).await;
            answer.refused(&target, &what);
        }
    }
    // Bytes that are not even ASCII: the HTTP server refuses the request line itself.
    let answer = raw(&app, "GET", b"/v1/tunnels/\xff\xfe", &[bearer(&t.user)]).await;
    assert_eq!(answer.status, 400);
    // An unnormalised dot segment is no way around the router either: no such route.
    let answer = raw(&app, "DELETE", b"/v1/tunnels/../tokens", &[bearer(&t.user)]).await;
    answer.refused("/v1/tunnels/../tokens", "dot segments");
    assert_eq!(answer.status, 404, "{}", answer.body);
    let after = json_of(app.get("/v1/tokens", &t.user.token).await, StatusCode::OK).await;
    assert_eq!(before, after, "a token was revoked");
    let still = app.get("/v1/tunnels", &token).await;
    assert_eq!(still.status(), StatusCode::OK, "the API token still works");
    let live = app.get(&format!("/v1/tunnels/{tu}"), &t.user.token).await;
    assert_eq!(json_of(live, StatusCode::OK).await["status"], "active");
    still_healthy(&app, &t.user).await;
}
