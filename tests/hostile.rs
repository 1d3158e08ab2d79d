//! Hostile input (issue 7.5): oversized headers, deeply nested JSON, huge arrays, invalid
//! UTF-8, path traversal in ids, SQL metacharacters in every string field and query
//! parameter. Each gets a clean 4xx — problem+json natively, the envelope under `/client/v4`,
//! naming the field where there is one — or, where the value is valid text, is stored and read
//! back verbatim; never a 5xx, and the server stays healthy.
//!
//! What tests/tunnels.rs, tests/fleet.rs and tests/connectors.rs already check (malformed
//! JSON, wrong content types, a 1 MiB body, bounds of each field) is not repeated here.
//! Requests that reqwest would normalise or refuse to send (dot segments, raw bytes in the
//! path, oversized headers) go over a plain TCP connection.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// SQL metacharacters and the one character PostgreSQL text cannot hold.
const HOSTILE: [&str; 7] = [
    "'; drop table tunnels; --",
    "' OR '1'='1",
    "%",
    "_",
    "\\",
    "\"",
    "\u{0}",
];

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An answer, whatever carried it.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.text().await.unwrap();
        Self {
            status,
            content_type,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts a clean 4xx for a request to `path` and returns its body.
    fn refused(&self, path: &str, what: &str) -> Value {
        let (status, body) = (self.status, self.json());
        assert!(
            (400..500).contains(&status),
            "{what}: {status} {}",
            self.body
        );
        if path.starts_with("/client/v4") {
            assert_eq!(self.content_type, "application/json", "{what}");
            assert_eq!(body["success"], false, "{what}: {}", self.body);
            assert!(
                body["errors"][0]["code"].as_u64().unwrap() >= 1000,
                "{what}"
            );
        } else {
            assert_eq!(self.content_type, "application/problem+json", "{what}");
            assert_eq!(body["status"], status, "{what}: {}", self.body);
            assert!(
                body["code"].as_str().is_some_and(|c| !c.is_empty()),
                "{what}"
            );
            assert!(
                body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{what}"
            );
        }
        body
    }

    /// Asserts a clean 4xx with this status, naming this field ("" for none).
    fn refused_naming(&self, path: &str, what: &str, status: u16, field: &str) {
        self.refused(path, what);
        assert_eq!(
            (self.status, self.field()),
            (status, field.to_owned()),
            "{what}"
        );
    }

    /// The field a refusal names: `field` natively, the error's `source.pointer` otherwise.
    fn field(&self) -> String {
        let body = self.json();
        match body["field"].as_str() {
            Some(field) => field.to_owned(),
            None => body["errors"][0]["source"]["pointer"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_owned(),
        }
    }
}

/// One request over a plain TCP connection, sent byte for byte.
async fn raw(app: &TestApp, method: &str, target: &[u8], headers: &[(&str, Vec<u8>)]) -> Answer {
    raw_with_body(app, method, target, headers, b"").await
}

async fn raw_with_body(
    app: &TestApp,
    method: &str,
    target: &[u8],
    headers: &[(&str, Vec<u8>)],
    body: &[u8],
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!("{method} ").into_bytes();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: ").as_bytes());
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let mut out = Vec::new();
        // The server may close as soon as it has answered; keep what arrived.
        let _ = stream.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("the server answers");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// Header names and raw values.
type Headers = Vec<(&'static str, Vec<u8>)>;

fn bearer(user: &User) -> (&'static str, Vec<u8>) {
    (
        "authorization",
        format!("Bearer {}", user.token).into_bytes(),
    )
}

/// The server still answers, reads its tables and serves a normal request.
async fn still_healthy(app: &TestApp, user: &User) {
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    json_of(app.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_name IN ('tunnels', 'api_tokens', 'users', 'device_snapshots')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(tables, 4, "a table is gone");
}

/// A user's objects to aim at: a live tunnel with a connector, a device.
struct Targets {
    user: User,
    tunnel: String,
    connector: String,
    connection: String,
    device: String,
}

impl Targets {
    /// A heartbeat body reporting the connector with its one connection.
    fn report(&self) -> Value {
        json!({"connector": {"id": self.connector, "arch": "linux_amd64", "version": "2026.1.0",
            "configVersion": 0, "features": ["ha-origin"], "runAt": "2026-03-05T10:30:00.000Z",
            "connections": [{"id": self.connection, "coloName": "FRA", "openedAt": "2026-03-05T10:30:01Z"}]}})
    }
}

fn snapshot(device: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"deviceId": device, "colo": "SJC", "mode": "proxy", "platform": "windows",
        "status": "connected", "version": "1.0.0", "timestamp": now})
}

async fn targets(app: &TestApp) -> Targets {
    let user = app.user().await;
    let tunnel = app.tunnel(&user.token, json!({"requestedPort": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = Uuid::new_v4().to_string();
    let stored = app
        .post("/v1/fleet-status/devices", &user.token, snapshot(&device))
        .await;
    json_of(stored, StatusCode::CREATED).await;
    let t = Targets {
        user,
        tunnel,
        connector: Uuid::new_v4().to_string(),
        connection: Uuid::new_v4().to_string(),
        device,
    };
    let path = format!("/v1/tunnels/{}/heartbeat", t.tunnel);
    let beat = app
        .call(Method::POST, &path, Some(&t.user.token), Some(t.report()))
        .await;
    json_of(beat, StatusCode::OK).await;
    t
}

/// Every route with a JSON body, as (method, path). The Cloudflare-compatible routes take no
/// body (their cleanup is a DELETE).
fn body_routes(t: &Targets) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/v1/auth/register".into()),
        (Method::POST, "/v1/auth/login".into()),
        (Method::POST, "/v1/tokens".into()),
        (Method::POST, "/v1/tunnels".into()),
        (Method::PATCH, format!("/v1/tunnels/{}", t.tunnel)),
        (Method::POST, format!("/v1/tunnels/{}/heartbeat", t.tunnel)),
        (Method::POST, "/v1/fleet-status/devices".into()),
    ]
}

async fn send_bytes(
    app: &TestApp,
    t: &Targets,
    method: &Method,
    path: &str,
    body: Vec<u8>,
) -> Answer {
    let response = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(&t.user.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    Answer::of(response).await
}

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
    let mut apps = snapshot(&t.device);
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

/// `/connector/connections/0/coloName` → `connector.connections[0].coloName`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Every string member of `value`, as JSON pointers.
fn string_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                string_pointers(item, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// Every optional string field of a device snapshot (and its nested objects).
fn full_snapshot(device: &str) -> Value {
    let ip = json!({"address": "192.168.1.20", "aso": "Cloudflare", "name": "eth0", "netmask": "255.255.255.0",
        "location": {"city": "Berlin", "country_iso": "DE", "state_iso": "BE", "zip": "10115"}});
    let mut s = snapshot(device);
    let extra = json!({"connectionType": "wifi", "cpuPctByApp": [{"name": "chrome"}], "deviceIpv4": ip,
        "deviceName": "laptop", "deviceRegistration": Uuid::new_v4(), "dohSubdomain": "acme",
        "gatewayIpv4": ip, "ispIpv4": ip, "metal": "ams01", "networkSsid": "office",
        "personEmail": "ada@example.com", "ramUsedPctByApp": [{"name": "chrome"}],
        "registrationId": Uuid::new_v4(), "tunnelType": "masque"});
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    s
}

/// Where a value sent in a body can be read back.
#[derive(Clone, Copy, PartialEq)]
enum Readback {
    /// In the answer itself, at the field's own pointer.
    Answer,
    /// In the tunnel's connector list (`connector/connections` are `0/conns` there).
    Connector,
    /// In the raw device list, filtered by the snapshot's device.
    Device,
}

#[tokio::test]
async fn sql_metacharacters_in_every_body_field_are_stored_verbatim_or_refused_by_name() {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let beat = format!("/v1/tunnels/{}/heartbeat", t.tunnel);
    // `{tunnel}` is a fresh tunnel per request (a failed tunnel takes no other patch); every
    // snapshot gets a fresh device, so that none is a retry of another.
    let routes = [
        (
            Method::POST,
            "/v1/tokens",
            json!({"name": "n", "scopes": ["dex:read"]}),
            Readback::Answer,
        ),
        (
            Method::POST,
            "/v1/tunnels",
            json!({"slug": "s", "requestedPort": 1}),
            Readback::Answer,
        ),
        (
            Method::PATCH,
            "/v1/tunnels/{tunnel}",
            json!({"status": "failed", "lastError": "e"}),
            Readback::Answer,
        ),
        (Method::POST, beat.as_str(), t.report(), Readback::Connector),
        (
            Method::POST,
            "/v1/fleet-status/devices",
            full_snapshot(&t.device),
            Readback::Device,
        ),
    ];
    for value in HOSTILE {
        for (method, path, valid, readback) in &routes {
            let mut pointers = Vec::new();
            string_pointers(valid, String::new(), &mut pointers);
            for pointer in pointers {
                let mut body = valid.clone();
                let device = Uuid::new_v4().to_string();
                if *readback == Readback::Device {
                    body["deviceId"] = json!(device);
                }
                *body.pointer_mut(&pointer).unwrap() = json!(value);
                let path = if path.contains("{tunnel}") {
                    let fresh = app.tunnel(&t.user.token, json!({"requestedPort": 1})).await;
                    path.replace("{tunnel}", fresh["id"].as_str().unwrap())
                } else {
                    path.to_string()
                };
                let what = format!("{method} {path} {pointer} = {value:?}");
                let response = app
                    .call(method.clone(), &path, Some(&t.user.token), Some(body))
                    .await;
                let answer = Answer::of(response).await;
                if answer.status >= 400 {
                    answer.refused(&path, &what);
                    assert_eq!(answer.field(), dotted(&pointer), "{what}: {}", answer.body);
                    continue;
                }
                assert!(
                    answer.status < 300,
                    "{what}: {} {}",
                    answer.status,
                    answer.body
                );
                let (read, at) = match readback {
                    Readback::Answer => (answer.json(), pointer.clone()),
                    Readback::Connector => {
                        let list = format!("/v1/tunnels/{}/connections", t.tunnel);
                        let at = pointer
                            .replacen("/connector", "/0", 1)
                            .replace("/connections/", "/conns/");
                        (
                            json_of(app.get(&list, &t.user.token).await, StatusCode::OK).await,
                            at,
                        )
                    }
                    Readback::Device => {
                        let list = format!("/v1/fleet-status/devices?source=raw&deviceId={device}");
                        let read =
                            json_of(app.get(&list, &t.user.token).await, StatusCode::OK).await;
                        (read, format!("/result/0{pointer}"))
                    }
                };
                assert_eq!(
                    read.pointer(&at),
                    Some(&json!(value)),
                    "{what}: stored otherwise: {read}"
                );
            }
        }
        // Credentials: a hostile email is refused by name or registered verbatim; a hostile
        // password is just a password; and neither `%` nor `_` is a pattern at login.
        let email = format!("{value}@example.com");
        let registered = Answer::of(app.register(&email, PASSWORD).await).await;
        if registered.status >= 400 {
            registered.refused("/v1/auth/register", &email);
            assert_eq!(registered.field(), "email", "{email}");
        } else {
            assert_eq!(registered.json()["email"], email.as_str());
            assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
        }
        let other = format!("{}@example.com", Uuid::new_v4().simple());
        let password = value.repeat(12);
        assert_eq!(
            app.register(&other, &password).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(app.login(&other, &password).await.status(), StatusCode::OK);
        let pattern = format!("{value}{value}@example.com");
        let wrong = Answer::of(app.login(&pattern, &password).await).await;
        wrong.refused("/v1/auth/login", &format!("login as {pattern:?}"));
    }
    still_healthy(&app, &t.user).await;
}

#[tokio::test]
async fn sql_metacharacters_in_every_query_parameter_and_header_are_refused_by_name_or_match_nothing(
) {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let (a, tu, d) = (&t.user.account_id, &t.tunnel, &t.device);
    let devices = "/v1/fleet-status/devices?source=raw&".to_owned();
    let cf_devices = format!("/client/v4/accounts/{a}/dex/fleet-status/devices?source=raw&");
    let live = format!("/v1/devices/{d}/fleet-status/live?sinceMinutes=60&");
    let cf_live =
        format!("/client/v4/accounts/{a}/dex/devices/{d}/fleet-status/live?since_minutes=60&");
    // (method, path up to the parameter, parameter).
    let mut params: Vec<(Method, String, &str)> = vec![
        (Method::GET, "/v1/tunnels?".into(), "includeInactive"),
        (Method::GET, "/v1/tunnels?".into(), "limit"),
        (Method::GET, "/v1/tunnels?".into(), "after"),
        (
            Method::DELETE,
            format!("/v1/tunnels/{tu}/connections?"),
            "clientId",
        ),
        (
            Method::DELETE,
            format!("/client/v4/accounts/{a}/cfd_tunnel/{tu}/connections?"),
            "client_id",
        ),
        (
            Method::GET,
            format!("/v1/devices/{d}/fleet-status/live?"),
            "sinceMinutes",
        ),
        (Method::GET, live.clone(), "timeNow"),
        (Method::GET, live, "colo"),
        (
            Method::GET,
            format!("/client/v4/accounts/{a}/dex/devices/{d}/fleet-status/live?"),
            "since_minutes",
        ),
        (Method::GET, cf_live.clone(), "time_now"),
        (Method::GET, cf_live, "colo"),
    ];
    for name in [
        "from", "to", "page", "perPage", "colo", "deviceId", "mode", "platform", "status",
        "version", "sortBy",
    ] {
        params.push((Method::GET, devices.clone(), name));
    }
    params.push((Method::GET, "/v1/fleet-status/devices?".into(), "source"));
    for name in [
        "from",
        "to",
        "page",
        "per_page",
        "colo",
        "device_id",
        "mode",
        "platform",
        "status",
        "version",
        "sort_by",
    ] {
        params.push((Method::GET, cf_devices.clone(), name));
    }
    // A cursor whose instant PostgreSQL cannot store (about 6,000 BC).
    let far_cursor = format!("-250000000000000000_{}", Uuid::nil());
    for (method, path, name) in &params {
        let values = HOSTILE
            .iter()
            .copied()
            .chain((*name == "after").then_some(far_cursor.as_str()));
        for value in values {
            let target = format!("{path}{name}={}", encode(value));
            let what = format!("{method} {target}");
            let answer = Answer::of(
                app.call(method.clone(), &target, Some(&t.user.token), None)
                    .await,
            )
            .await;
            match answer.status {
                400 => {
                    answer.refused(&target, &what);
                    assert_eq!(answer.field(), *name, "{what}: {}", answer.body);
                }
                // A filter that matches nothing: the live status is absent, a list is empty.
                404 if target.contains("/fleet-status/live") => {
                    answer.refused(&target, &what);
                }
                200 => {
                    let body = answer.json();
                    assert_eq!(
                        body["result"],
                        json!([]),
                        "{what}: {value:?} matched something"
                    );
                }
                other => panic!("{what}: {other} {}", answer.body),
            }
        }
    }
    // Headers: an Idempotency-Key is a key like any other, an X-Auth-Email nobody's.
    for value in HOSTILE.iter().filter(|v| !v.contains('\0')) {
        let created = app
            .client
            .post(app.url("/v1/tunnels"))
            .bearer_auth(&t.user.token)
            .header("idempotency-key", *value)
            .json(&json!({"requestedPort": 7}))
            .send()
            .await
            .unwrap();
        let created = Answer::of(created).await;
        if created.status >= 400 {
            created.refused("/v1/tunnels", value);
            assert_eq!(created.field(), "Idempotency-Key");
        }
        let cf = app
            .client
            .get(app.url(&format!("/client/v4/accounts/{a}/dex/fleet-status/devices")))
            .header("x-auth-email", *value)
            .header("x-auth-key", "wrn_nothing")
            .send()
            .await
            .unwrap();
        let cf = Answer::of(cf).await;
        cf.refused("/client/v4", value);
        assert_eq!(cf.status, 401);
    }
    let keyed: i64 = sqlx::query_scalar("SELECT count(DISTINCT key) FROM idempotency_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        keyed, 4,
        "`%`, `_`, `\\` and `\"` are four keys, not patterns"
    );
    still_healthy(&app, &t.user).await;
}
