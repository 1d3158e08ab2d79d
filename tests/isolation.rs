//! Isolation, exhaustively (issue 7.7): for every route of both families, a second account
//! acting on the first account's objects gets 404 (problem+json natively, the envelope's
//! not-found under `/client/v4`), its lists hold nothing of the first account's, and nothing
//! of the first account's changed — read back through the API and straight from the tables
//! after every single request.
//!
//! The routes are one table ([`cases`]); `/healthz`, `/readyz`, `/metrics` and the two
//! `/v1/auth` routes hold no account's objects.

mod common;

use common::fleet::{self, ingest, snapshot};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// The first account's objects, and what the second one holds.
struct World {
    ada: User,
    bob: User,
    /// Bob's API token, for `X-Auth-Email` + `X-Auth-Key`.
    bob_key: String,
    /// Ada's API token (its secret), sent with Bob's email.
    ada_key: String,
    /// `{name}` in a case's path or body → the value.
    ids: Vec<(&'static str, String)>,
}

impl World {
    fn fill(&self, template: &str) -> String {
        self.ids
            .iter()
            .fold(template.to_owned(), |s, (name, value)| {
                s.replace(&format!("{{{name}}}"), value)
            })
    }

    fn id(&self, name: &str) -> &str {
        &self.ids.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// Strings that only Ada's objects carry: none may reach Bob.
    fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = [
            "live",
            "stopped",
            "keyed",
            "connector",
            "adas_only_connector",
            "connection",
            "token",
        ]
        .iter()
        .map(|name| self.id(name))
        .collect();
        out.extend([self.ada.email.as_str(), "ada-device-name", "ada-token-name"]);
        out
    }
}

/// How Bob authenticates.
#[derive(Clone, Copy, Debug)]
enum Auth {
    /// His login token.
    Bearer,
    /// His email and his API token (Cloudflare's `X-Auth-Email` + `X-Auth-Key`).
    EmailKey,
    /// His email with Ada's API token: not a pair, so not a caller at all.
    EmailWithAdasKey,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// 404 problem+json `not_found`.
    NotFound,
    /// 404 in the Cloudflare envelope (`success: false`, code 1005).
    EnvelopeNotFound,
    /// 401: the credentials are no one's.
    Unauthorized,
    /// 2xx: Bob's own list or his own write, which must hold nothing of Ada's.
    Own,
    /// 409 `slug_taken` without the holder's `tunnelId` (slugs are global, ids are not).
    SlugTaken,
}

struct Case {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    auth: Auth,
    headers: &'static [(&'static str, &'static str)],
    expect: Expect,
}

const CF: &str = "/client/v4/accounts";

/// Every account-scoped route, acting on Ada's objects (or listing) as Bob.
fn cases() -> Vec<Case> {
    use Expect::*;
    let case = |method: Method, path: &'static str, body: Option<&'static str>, expect| Case {
        method,
        path,
        body,
        auth: Auth::Bearer,
        headers: &[],
        expect,
    };
    let get = |path, expect| case(Method::GET, path, None, expect);
    let delete = |path, expect| case(Method::DELETE, path, None, expect);
    let heartbeat_with_adas_connector = Some(
        r#"{"connector": {"id": "{connector}", "arch": "linux_amd64", "version": "1", "configVersion": 0,
            "features": [], "connections": [{"id": "{connection}", "coloName": "BOB"}]}}"#,
    );
    let mut all = vec![
        // Tunnels.
        get("/v1/tunnels/{live}", NotFound),
        get("/v1/tunnels/{stopped}", NotFound),
        case(Method::PATCH, "/v1/tunnels/{live}", Some(r#"{"status": "stopping"}"#), NotFound),
        case(
            Method::PATCH,
            "/v1/tunnels/{live}",
            Some(r#"{"status": "failed", "lastError": "bob"}"#),
            NotFound,
        ),
        // Ada would get 409 here (stopped is final): Bob must not learn that either.
        case(Method::PATCH, "/v1/tunnels/{stopped}", Some(r#"{"status": "active"}"#), NotFound),
        delete("/v1/tunnels/{live}", NotFound),
        delete("/v1/tunnels/{stopped}", NotFound),
        get("/v1/tunnels?includeInactive=true", Own),
        get("/v1/tunnels?includeInactive=1&limit=100", Own),
        // Ada's slug is held (hostnames are global), but Bob does not learn her tunnel's id.
        case(
            Method::POST,
            "/v1/tunnels",
            Some(r#"{"slug": "ada-live", "requestedPort": 1}"#),
            SlugTaken,
        ),
        // Ada's Idempotency-Key with Ada's body: Bob gets a tunnel of his own, not hers.
        Case {
            headers: &[("idempotency-key", "ada-key")],
            ..case(Method::POST, "/v1/tunnels", Some(r#"{"requestedPort": 2}"#), Own)
        },
        // Heartbeats.
        case(Method::POST, "/v1/tunnels/{live}/heartbeat", None, NotFound),
        case(Method::POST, "/v1/tunnels/{live}/heartbeat", heartbeat_with_adas_connector, NotFound),
        case(Method::POST, "/v1/tunnels/{stopped}/heartbeat", None, NotFound),
        // Ada's connector id reported on Bob's own tunnel is Bob's connector, not hers.
        case(Method::POST, "/v1/tunnels/{bobs}/heartbeat", heartbeat_with_adas_connector, Own),
        // Connectors and connections.
        get("/v1/tunnels/{live}/connections", NotFound),
        get("/v1/tunnels/{live}/connectors/{connector}", NotFound),
        get("/v1/tunnels/{bobs}/connectors/{adas_only_connector}", NotFound),
        delete("/v1/tunnels/{live}/connections", NotFound),
        delete("/v1/tunnels/{live}/connections?clientId={connector}", NotFound),
        // Tokens.
        delete("/v1/tokens/{token}", NotFound),
        get("/v1/tokens", Own),
        case(Method::POST, "/v1/tokens", Some(r#"{"name": "bob", "scopes": ["dex:read"]}"#), Own),
        // Device fleet status.
        get("/v1/devices/{device}/fleet-status/live?sinceMinutes=60", NotFound),
        get("/v1/fleet-status/devices?source=raw", Own),
        get("/v1/fleet-status/devices?source=last_seen&deviceId={device}", Own),
        get("/v1/fleet-status/devices?source=hourly&sortBy=device_id", Own),
        // Cloudflare-compatible routes, Ada's account id in the path.
        get("/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections", EnvelopeNotFound),
        delete("/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections", EnvelopeNotFound),
        delete(
            "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections?client_id={connector}",
            EnvelopeNotFound,
        ),
        get(
            "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connectors/{connector}",
            EnvelopeNotFound,
        ),
        get("/client/v4/accounts/{ada_account}/dex/fleet-status/devices", EnvelopeNotFound),
        get(
            "/client/v4/accounts/{ada_account}/dex/devices/{device}/fleet-status/live?since_minutes=60",
            EnvelopeNotFound,
        ),
        // Bob's own account id in the path, Ada's objects after it.
        get("/client/v4/accounts/{bob_account}/cfd_tunnel/{live}/connections", EnvelopeNotFound),
        delete("/client/v4/accounts/{bob_account}/cfd_tunnel/{live}/connections", EnvelopeNotFound),
        get(
            "/client/v4/accounts/{bob_account}/cfd_tunnel/{live}/connectors/{connector}",
            EnvelopeNotFound,
        ),
        get(
            "/client/v4/accounts/{bob_account}/dex/devices/{device}/fleet-status/live?since_minutes=60",
            EnvelopeNotFound,
        ),
        get("/client/v4/accounts/{bob_account}/dex/fleet-status/devices?source=raw", Own),
    ];
    // The same with Cloudflare's other credentials: Bob's own pair, then a mismatched one.
    for (auth, expect) in [
        (Auth::EmailKey, EnvelopeNotFound),
        (Auth::EmailWithAdasKey, Unauthorized),
    ] {
        for path in [
            "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections",
            "/client/v4/accounts/{bob_account}/cfd_tunnel/{live}/connectors/{connector}",
            "/client/v4/accounts/{ada_account}/dex/fleet-status/devices",
            "/client/v4/accounts/{bob_account}/dex/devices/{device}/fleet-status/live?since_minutes=60",
        ] {
            all.push(Case {
                auth,
                ..get(path, expect)
            });
        }
        all.push(Case {
            auth,
            ..delete(
                "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections",
                expect,
            )
        });
    }
    // Last: Bob reports a device with Ada's device id. It is his own device from then on
    // (so the lists above ran before it).
    all.push(case(
        Method::POST,
        "/v1/fleet-status/devices",
        Some(
            r#"{"deviceId": "{device}", "colo": "BOB", "mode": "warp", "platform": "linux",
                "status": "disconnected", "version": "9.9.9", "timestamp": "{now}"}"#,
        ),
        Own,
    ));
    all
}

fn report(connector: &str, connection: &str) -> Value {
    json!({"connector": {"id": connector, "arch": "linux_amd64", "version": "2026.1.0", "configVersion": 0,
        "features": ["ha-origin"], "connections": [{"id": connection, "coloName": "FRA"}]}})
}

async fn world(app: &TestApp) -> World {
    let (ada, bob) = (app.user().await, app.user().await);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // Ada: a live tunnel with a connector, a stopped one, one made with an Idempotency-Key,
    // an API token, a device.
    let live = app
        .tunnel(&ada.token, json!({"slug": "ada-live", "requestedPort": 1}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (connector, connection) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let beat_path = format!("/v1/tunnels/{live}/heartbeat");
    let beat = app
        .call(
            Method::POST,
            &beat_path,
            Some(&ada.token),
            Some(report(&connector, &connection)),
        )
        .await;
    json_of(beat, StatusCode::OK).await;
    let stopped = app.tunnel(&ada.token, json!({"requestedPort": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for status in ["stopping", "stopped"] {
        let path = format!("/v1/tunnels/{stopped}");
        let body = json!({ "status": status });
        json_of(app.patch(&path, &ada.token, body).await, StatusCode::OK).await;
    }
    let keyed = app
        .client
        .post(app.url("/v1/tunnels"))
        .bearer_auth(&ada.token)
        .header("idempotency-key", "ada-key")
        .json(&json!({"requestedPort": 2}))
        .send()
        .await
        .unwrap();
    let keyed = json_of(keyed, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"name": "ada-token-name", "scopes": ["tunnels:read", "dex:read"]});
    let token = json_of(
        app.post("/v1/tokens", &ada.token, body).await,
        StatusCode::CREATED,
    )
    .await;
    let device = Uuid::new_v4().to_string();
    let extra = json!({"colo": "ADA", "platform": "mac", "deviceName": "ada-device-name"});
    ingest(app, &ada.token, fleet::with(snapshot(&device, 0), extra)).await;
    // A second connector on Ada's tunnel whose id no case reports anywhere else (one case
    // reports the first connector's id on Bob's own tunnel, which makes it his there).
    let only = Uuid::new_v4().to_string();
    let beat = app
        .call(
            Method::POST,
            &beat_path,
            Some(&ada.token),
            Some(report(&only, &Uuid::new_v4().to_string())),
        )
        .await;
    json_of(beat, StatusCode::OK).await;
    // Bob: his own tunnel, an API token.
    let bobs = app.tunnel(&bob.token, json!({"requestedPort": 3})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_key = app
        .api_token(&bob, &["tunnels:read", "tunnels:write", "dex:read"])
        .await;
    let ids = vec![
        ("live", live),
        ("stopped", stopped),
        ("keyed", keyed),
        ("connector", connector),
        ("adas_only_connector", only),
        ("connection", connection),
        ("token", token["id"].as_str().unwrap().to_owned()),
        ("device", device),
        ("bobs", bobs),
        ("ada_account", ada.account_id.clone()),
        ("bob_account", bob.account_id.clone()),
        ("now", now),
    ];
    World {
        ada,
        bob,
        bob_key,
        ada_key: token["token"].as_str().unwrap().to_owned(),
        ids,
    }
}

/// Everything of Ada's, through the API (her token) and straight from the tables.
async fn adas_state(app: &TestApp, w: &World) -> Value {
    let mut state = serde_json::Map::new();
    for path in [
        "/v1/tunnels?includeInactive=true",
        "/v1/tunnels/{live}",
        "/v1/tunnels/{stopped}",
        "/v1/tunnels/{keyed}",
        "/v1/tunnels/{live}/connections",
        "/v1/tunnels/{live}/connectors/{connector}",
        "/v1/tokens",
        "/v1/fleet-status/devices?source=raw",
        "/v1/fleet-status/devices?source=last_seen",
        "/v1/fleet-status/devices?source=hourly",
        "/v1/devices/{device}/fleet-status/live?sinceMinutes=60",
        "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections",
    ] {
        let path = w.fill(path);
        let body = json_of(app.get(&path, &w.ada.token).await, StatusCode::OK).await;
        state.insert(path, body);
    }
    let tables: Value = sqlx::query_scalar(
        "SELECT jsonb_build_object(
             'tunnels', (SELECT jsonb_agg(to_jsonb(t) ORDER BY id) FROM tunnels t WHERE account_id = $1),
             'transitions', (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.id) FROM tunnel_transitions x
                             JOIN tunnels t ON t.id = x.tunnel_id WHERE t.account_id = $1),
             'connectors', (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.id) FROM connectors c
                            JOIN tunnels t ON t.id = c.tunnel_id WHERE t.account_id = $1),
             'connections', (SELECT jsonb_agg(to_jsonb(k) ORDER BY k.id) FROM connections k
                             JOIN tunnels t ON t.id = k.tunnel_id WHERE t.account_id = $1),
             'tokens', (SELECT jsonb_agg(to_jsonb(a) - 'token_hash' ORDER BY id) FROM api_tokens a
                        WHERE account_id = $1),
             'idempotency', (SELECT jsonb_agg(to_jsonb(i) - 'request_hash' ORDER BY key)
                             FROM idempotency_keys i WHERE account_id = $1),
             'snapshots', (SELECT jsonb_agg(to_jsonb(s) ORDER BY id) FROM device_snapshots s
                           WHERE account_id = $1),
             'hours', (SELECT jsonb_agg(to_jsonb(h) ORDER BY device_id, hour) FROM device_hourly h
                       WHERE account_id = $1))",
    )
    .bind(Uuid::parse_str(&w.ada.account_id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    state.insert("tables".into(), tables);
    Value::Object(state)
}

async fn send(app: &TestApp, w: &World, case: &Case) -> reqwest::Response {
    let mut req = app
        .client
        .request(case.method.clone(), app.url(&w.fill(case.path)));
    req = match case.auth {
        Auth::Bearer => req.bearer_auth(&w.bob.token),
        Auth::EmailKey => req
            .header("x-auth-email", &w.bob.email)
            .header("x-auth-key", &w.bob_key),
        Auth::EmailWithAdasKey => req
            .header("x-auth-email", &w.bob.email)
            .header("x-auth-key", &w.ada_key),
    };
    for (name, value) in case.headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = case.body {
        req = req
            .header("content-type", "application/json")
            .body(w.fill(body));
    } else if case.path.starts_with(CF) {
        // Cloudflare's clients send a JSON content type on every request.
        req = req.header("content-type", "application/json");
    }
    req.send().await.expect("request reaches the server")
}

/// Checks Bob's answer against what the case expects.
async fn check(response: reqwest::Response, w: &World, case: &Case, what: &str) {
    let status = response.status();
    let content_type = content_type(&response);
    let text = response.text().await.unwrap();
    for secret in w.secrets() {
        assert!(
            !text.contains(secret),
            "{what}: answer reveals `{secret}`: {text}"
        );
    }
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"))
    };
    match case.expect {
        Expect::NotFound => {
            assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {text}");
            assert_problem(what, status, &content_type, &body);
            assert_eq!(body["code"], "not_found", "{what}: {text}");
        }
        Expect::EnvelopeNotFound => {
            assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {text}");
            assert_envelope(what, status, &content_type, &body);
            assert_eq!(body["errors"][0]["code"], 1005, "{what}: {text}");
        }
        Expect::Unauthorized => {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {text}");
            assert_envelope(what, status, &content_type, &body);
        }
        Expect::Own => {
            assert!(status.is_success(), "{what}: {status} {text}");
            if case.path.starts_with(CF) {
                assert_envelope(what, status, &content_type, &body);
            }
        }
        Expect::SlugTaken => {
            assert_eq!(status, StatusCode::CONFLICT, "{what}: {text}");
            assert_eq!(body["code"], "slug_taken", "{what}: {text}");
            assert!(body.get("tunnelId").is_none(), "{what}: {text}");
        }
    }
}

#[tokio::test]
async fn another_account_can_neither_see_nor_change_anything_on_any_route() {
    // Leases and connectors must not run out while the table is walked.
    let app = TestApp::spawn_with(|c| c.lease_ttl = std::time::Duration::from_secs(600)).await;
    let w = world(&app).await;
    let before = adas_state(&app, &w).await;
    let cases = cases();
    for case in &cases {
        let what = format!(
            "{:?} {} {} ({:?})",
            case.auth, case.method, case.path, case.expect
        );
        let response = send(&app, &w, case).await;
        check(response, &w, case, &what).await;
        let after = adas_state(&app, &w).await;
        assert!(
            after == before,
            "{what} changed Ada's objects:\nbefore {before:#}\nafter {after:#}"
        );
    }
    // Every account-scoped route of both routers is in the table.
    let routes: std::collections::BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| {
            let path = c.path.split('?').next().unwrap();
            (c.method.to_string(), path.to_owned())
        })
        .collect();
    for (method, path) in [
        ("GET", "/v1/tunnels"),
        ("POST", "/v1/tunnels"),
        ("GET", "/v1/tunnels/{live}"),
        ("PATCH", "/v1/tunnels/{live}"),
        ("DELETE", "/v1/tunnels/{live}"),
        ("POST", "/v1/tunnels/{live}/heartbeat"),
        ("GET", "/v1/tunnels/{live}/connections"),
        ("DELETE", "/v1/tunnels/{live}/connections"),
        ("GET", "/v1/tunnels/{live}/connectors/{connector}"),
        ("GET", "/v1/tokens"),
        ("POST", "/v1/tokens"),
        ("DELETE", "/v1/tokens/{token}"),
        ("GET", "/v1/fleet-status/devices"),
        ("POST", "/v1/fleet-status/devices"),
        ("GET", "/v1/devices/{device}/fleet-status/live"),
        (
            "GET",
            "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections",
        ),
        (
            "DELETE",
            "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connections",
        ),
        (
            "GET",
            "/client/v4/accounts/{ada_account}/cfd_tunnel/{live}/connectors/{connector}",
        ),
        (
            "GET",
            "/client/v4/accounts/{ada_account}/dex/fleet-status/devices",
        ),
        (
            "GET",
            "/client/v4/accounts/{ada_account}/dex/devices/{device}/fleet-status/live",
        ),
    ] {
        assert!(
            routes.contains(&(method.to_owned(), path.to_owned())),
            "no case for {method} {path}"
        );
    }
}
