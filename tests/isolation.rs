//! Isolation, exhaustively (issue 7.7): for every account-scoped operation of the OpenAPI
//! document (every one with a `security` requirement, in both families), a second account
//! acting on the first account's objects gets 404 (problem+json natively, the envelope's
//! not-found under `/client/v4`), its lists hold nothing of the first account's, and nothing
//! of the first account's changed — read back through the API and straight from the tables
//! after every single request.
//!
//! The operations come from the document; how each is exercised is a table keyed by
//! `operationId` ([`table`]). An account-scoped operation the table does not cover, or a table
//! entry the document lacks, fails the test: a new route cannot escape the check. The public
//! operations (`/healthz`, `/readyz`, `/metrics`, `/openapi.yaml` and the two `/v1/auth`
//! routes) hold no account's objects.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::fleet::{self, ingest, snapshot};
use common::openapi::{spec, Operation};
use common::sse::{Json, SseReader};
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
    /// `{name}` in a case's query, an object in its path parameters → the id.
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
            "webhook",
            "delivery",
        ]
        .iter()
        .map(|name| self.id(name))
        .collect();
        out.extend([
            self.ada.email.as_str(),
            "ada-device-name",
            "ada-token-name",
            "ada-hook-host",
            "ada-webhook-description",
        ]);
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
    /// 200 and an event stream, which replays Bob's own events and nothing of Ada's.
    OwnStream,
    /// 409 `slug_taken` without the holder's `tunnelId` (slugs are global, ids are not).
    SlugTaken,
}

/// One request Bob makes to an operation.
#[derive(Clone, Copy)]
struct Case {
    /// Which object of the [`World`] fills each path parameter of the operation's template.
    params: &'static [(&'static str, &'static str)],
    /// The query string (`?…`, or empty); `{name}` is a [`World`] id.
    query: &'static str,
    body: Option<fn(&World) -> Value>,
    auth: Auth,
    headers: &'static [(&'static str, &'static str)],
    expect: Expect,
}

/// A case with Bob's login token, no query, body or extra header.
fn case(params: &'static [(&'static str, &'static str)], expect: Expect) -> Case {
    Case {
        params,
        query: "",
        body: None,
        auth: Auth::Bearer,
        headers: &[],
        expect,
    }
}

impl Case {
    fn query(self, query: &'static str) -> Self {
        Self { query, ..self }
    }

    fn body(self, body: fn(&World) -> Value) -> Self {
        Self {
            body: Some(body),
            ..self
        }
    }

    fn headers(self, headers: &'static [(&'static str, &'static str)]) -> Self {
        Self { headers, ..self }
    }

    /// The same case with each of Cloudflare's other credentials: Bob's own email and key
    /// (the same answer), and his email with Ada's key (no caller at all: 401).
    fn and_with_email_and_key(self) -> Vec<Self> {
        let own = Case {
            auth: Auth::EmailKey,
            ..self
        };
        let mismatched = Case {
            auth: Auth::EmailWithAdasKey,
            expect: Expect::Unauthorized,
            ..own
        };
        vec![self, own, mismatched]
    }
}

const CF: &str = "/client/v4/accounts";

/// Ada's objects in the path parameters.
const LIVE: &[(&str, &str)] = &[("id", "live")];
const STOPPED: &[(&str, &str)] = &[("id", "stopped")];
const WEBHOOK: &[(&str, &str)] = &[("id", "webhook")];
const ADAS_CF_TUNNEL: &[(&str, &str)] = &[("account_id", "ada_account"), ("tunnel_id", "live")];
/// Bob's own account id in the path, Ada's objects after it.
const BOBS_CF_TUNNEL: &[(&str, &str)] = &[("account_id", "bob_account"), ("tunnel_id", "live")];

/// A heartbeat reporting Ada's connector and connection ids.
fn adas_connector(w: &World) -> Value {
    report(w.id("connector"), w.id("connection"))
}

/// How Bob exercises every account-scoped operation of the document, keyed by `operationId`:
/// acting on Ada's objects, or listing and writing his own. Run in this order.
fn table() -> Vec<(&'static str, Vec<Case>)> {
    use Expect::*;
    vec![
        // Events first, while everything in Bob's log is his alone (later cases have him
        // report ids that Ada's objects carry): paged or streamed, whatever he asks.
        (
            "listEvents",
            vec![
                case(&[], Own).query("?after=0"),
                case(&[], Own).query("?subject={live}"),
                case(&[], Own).query("?types=tunnel.created.v1,token.created.v1&limit=1000"),
            ],
        ),
        (
            "streamEvents",
            vec![
                case(&[], OwnStream).query("?after=0"),
                case(&[], OwnStream).query("?after=0&subject={live}"),
            ],
        ),
        // Tunnels.
        (
            "getTunnel",
            vec![case(LIVE, NotFound), case(STOPPED, NotFound)],
        ),
        (
            "updateTunnel",
            vec![
                case(LIVE, NotFound).body(|_| json!({"status": "stopping"})),
                case(LIVE, NotFound).body(|_| json!({"status": "failed", "lastError": "bob"})),
                // Ada would get 409 here (stopped is final): Bob must not learn that either.
                case(STOPPED, NotFound).body(|_| json!({"status": "active"})),
            ],
        ),
        (
            "deleteTunnel",
            vec![case(LIVE, NotFound), case(STOPPED, NotFound)],
        ),
        (
            "listTunnels",
            vec![
                case(&[], Own).query("?includeInactive=true"),
                case(&[], Own).query("?includeInactive=1&limit=100"),
            ],
        ),
        (
            "createTunnel",
            vec![
                // Ada's slug is held (hostnames are global), but Bob does not learn her
                // tunnel's id.
                case(&[], SlugTaken).body(|_| json!({"slug": "ada-live", "requestedPort": 1})),
                // Ada's Idempotency-Key with Ada's body: Bob gets a tunnel of his own, not hers.
                case(&[], Own)
                    .body(|_| json!({"requestedPort": 2}))
                    .headers(&[("idempotency-key", "ada-key")]),
            ],
        ),
        // Heartbeats.
        (
            "heartbeatTunnel",
            vec![
                case(LIVE, NotFound),
                case(LIVE, NotFound).body(adas_connector),
                case(STOPPED, NotFound),
                // Ada's connector id reported on Bob's own tunnel is Bob's connector, not hers.
                case(&[("id", "bobs")], Own).body(adas_connector),
            ],
        ),
        // Connectors and connections.
        ("listConnections", vec![case(LIVE, NotFound)]),
        (
            "getConnector",
            vec![
                case(&[("id", "live"), ("connector_id", "connector")], NotFound),
                case(
                    &[("id", "bobs"), ("connector_id", "adas_only_connector")],
                    NotFound,
                ),
            ],
        ),
        (
            "deleteConnections",
            vec![
                case(LIVE, NotFound),
                case(LIVE, NotFound).query("?clientId={connector}"),
            ],
        ),
        // Tokens.
        ("deleteToken", vec![case(&[("id", "token")], NotFound)]),
        ("listTokens", vec![case(&[], Own)]),
        (
            "createToken",
            vec![case(&[], Own).body(|_| json!({"name": "bob", "scopes": ["dex:read"]}))],
        ),
        // Device fleet status.
        (
            "getDeviceLiveStatus",
            vec![case(&[("device_id", "device")], NotFound).query("?sinceMinutes=60")],
        ),
        (
            "listDeviceStatus",
            vec![
                case(&[], Own).query("?source=raw"),
                case(&[], Own).query("?source=last_seen&deviceId={device}"),
                case(&[], Own).query("?source=hourly&sortBy=device_id"),
            ],
        ),
        // Cloudflare-compatible routes: Ada's account id in the path, or Bob's with Ada's
        // objects after it.
        (
            "cfListConnections",
            [
                case(ADAS_CF_TUNNEL, EnvelopeNotFound).and_with_email_and_key(),
                vec![case(BOBS_CF_TUNNEL, EnvelopeNotFound)],
            ]
            .concat(),
        ),
        (
            "cfDeleteConnections",
            [
                case(ADAS_CF_TUNNEL, EnvelopeNotFound).and_with_email_and_key(),
                vec![
                    case(ADAS_CF_TUNNEL, EnvelopeNotFound).query("?client_id={connector}"),
                    case(BOBS_CF_TUNNEL, EnvelopeNotFound),
                ],
            ]
            .concat(),
        ),
        (
            "cfGetConnector",
            [
                vec![case(
                    &[
                        ("account_id", "ada_account"),
                        ("tunnel_id", "live"),
                        ("connector_id", "connector"),
                    ],
                    EnvelopeNotFound,
                )],
                case(
                    &[
                        ("account_id", "bob_account"),
                        ("tunnel_id", "live"),
                        ("connector_id", "connector"),
                    ],
                    EnvelopeNotFound,
                )
                .and_with_email_and_key(),
            ]
            .concat(),
        ),
        (
            "cfListDeviceStatus",
            [
                case(&[("account_id", "ada_account")], EnvelopeNotFound).and_with_email_and_key(),
                vec![case(&[("account_id", "bob_account")], Own).query("?source=raw")],
            ]
            .concat(),
        ),
        (
            "cfGetDeviceLiveStatus",
            [
                vec![case(
                    &[("account_id", "ada_account"), ("device_id", "device")],
                    EnvelopeNotFound,
                )
                .query("?since_minutes=60")],
                case(
                    &[("account_id", "bob_account"), ("device_id", "device")],
                    EnvelopeNotFound,
                )
                .query("?since_minutes=60")
                .and_with_email_and_key(),
            ]
            .concat(),
        ),
        // Webhooks: Ada's endpoint and her delivery, also behind Bob's own endpoint.
        ("listWebhooks", vec![case(&[], Own)]),
        (
            "createWebhook",
            vec![case(&[], Own)
                .body(|_| json!({"url": "https://bob.example/hook", "enabled": false}))],
        ),
        ("getWebhook", vec![case(WEBHOOK, NotFound)]),
        (
            "updateWebhook",
            vec![
                case(WEBHOOK, NotFound).body(|_| json!({"enabled": true})),
                case(WEBHOOK, NotFound)
                    .body(|_| json!({"url": "https://bob.example/", "types": null})),
            ],
        ),
        ("rotateWebhookSecret", vec![case(WEBHOOK, NotFound)]),
        ("pingWebhook", vec![case(WEBHOOK, NotFound)]),
        (
            "listWebhookDeliveries",
            vec![
                case(WEBHOOK, NotFound),
                case(WEBHOOK, NotFound).query("?limit=100"),
            ],
        ),
        (
            "redeliverWebhook",
            vec![
                case(&[("id", "webhook"), ("deliveryId", "delivery")], NotFound),
                case(
                    &[("id", "bobs_webhook"), ("deliveryId", "delivery")],
                    NotFound,
                ),
            ],
        ),
        ("deleteWebhook", vec![case(WEBHOOK, NotFound)]),
        // Last: Bob reports a device with Ada's device id. It is his own device from then on
        // (so the lists above ran before it).
        (
            "ingestDeviceStatus",
            vec![case(&[], Own).body(|w| {
                let bobs = json!({"colo": "BOB", "mode": "warp", "platform": "linux",
                    "status": "disconnected", "version": "9.9.9"});
                fleet::with(snapshot(w.id("device"), 0), bobs)
            })],
        ),
    ]
}

/// What keeps the table and the document in step: the account-scoped operations the table
/// does not cover, and the table's operations the document does not have as account-scoped.
fn uncovered<'a>(
    scoped: &BTreeSet<&'a str>,
    table: &BTreeSet<&'a str>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    (
        scoped.difference(table).copied().collect(),
        table.difference(scoped).copied().collect(),
    )
}

/// The operations of the document that need credentials, by `operationId`.
fn account_scoped() -> BTreeMap<&'static str, &'static Operation> {
    spec()
        .operations
        .iter()
        .filter(|op| op.is_account_scoped())
        .map(|op| (op.id(), op))
        .collect()
}

#[test]
fn the_table_covers_every_account_scoped_operation_of_the_document_and_no_other() {
    let scoped = account_scoped();
    assert!(scoped.len() >= 20, "only {} operations", scoped.len());
    let table = table();
    let names: BTreeSet<&str> = table.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        names.len(),
        table.len(),
        "an operation is in the table twice"
    );
    let (missing, unknown) = uncovered(&scoped.keys().copied().collect(), &names);
    assert!(
        missing.is_empty(),
        "account-scoped operations with no isolation case: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "isolation cases for operations the document does not have (as account-scoped): \
         {unknown:?}"
    );
    for (id, cases) in &table {
        assert!(!cases.is_empty(), "{id}: no case");
        let mut wanted = scoped[id].path_parameters();
        wanted.sort_unstable();
        for case in cases {
            let mut names: Vec<&str> = case.params.iter().map(|(name, _)| *name).collect();
            names.sort_unstable();
            assert_eq!(names, wanted, "{id}: the path parameters");
        }
    }
}

#[test]
fn a_route_missing_from_the_table_or_the_document_is_named() {
    let set = |ids: &[&'static str]| ids.iter().copied().collect::<BTreeSet<_>>();
    let (missing, unknown) = uncovered(
        &set(&["getTunnel", "newRoute"]),
        &set(&["getTunnel", "goneRoute"]),
    );
    assert_eq!((missing, unknown), (vec!["newRoute"], vec!["goneRoute"]));
}

fn report(connector: &str, connection: &str) -> Value {
    json!({"connector": {"id": connector, "arch": "linux_amd64", "version": "2026.1.0", "configVersion": 0,
        "features": ["ha-origin"], "connections": [{"id": connection, "coloName": "FRA"}]}})
}

async fn world(app: &TestApp) -> World {
    let (ada, bob) = (app.user().await, app.user().await);
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
    // A webhook endpoint of Ada's (disabled, so that nothing changes it while the table is
    // walked) with a delivery in its log.
    let body = json!({"url": "https://ada-hook-host.example/hook", "enabled": false,
        "description": "ada-webhook-description", "types": ["tunnel.failed.v1"]});
    let webhook = json_of(
        app.post("/v1/webhooks", &ada.token, body).await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delivery: Uuid = sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (endpoint_id, account_id, event_type, payload, message_id, state)
         VALUES ($1, $2, 'webhook.ping.v1', '{}', 'ping_ada', 'failed') RETURNING id",
    )
    .bind(Uuid::parse_str(&webhook).unwrap())
    .bind(Uuid::parse_str(&ada.account_id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    // Bob: his own tunnel, an API token, a (disabled) webhook endpoint.
    let bobs = app.tunnel(&bob.token, json!({"requestedPort": 3})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"url": "https://bob.example/own", "enabled": false});
    let bobs_webhook = json_of(
        app.post("/v1/webhooks", &bob.token, body).await,
        StatusCode::CREATED,
    )
    .await["id"]
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
        ("webhook", webhook),
        ("delivery", delivery.to_string()),
        ("bobs_webhook", bobs_webhook),
        ("ada_account", ada.account_id.clone()),
        ("bob_account", bob.account_id.clone()),
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
        "/v1/webhooks",
        "/v1/webhooks/{webhook}",
        "/v1/webhooks/{webhook}/deliveries",
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
                       WHERE account_id = $1),
             'webhooks', (SELECT jsonb_agg(to_jsonb(w) ORDER BY id) FROM webhook_endpoints w
                          WHERE account_id = $1),
             'deliveries', (SELECT jsonb_agg(to_jsonb(d) ORDER BY seq) FROM webhook_deliveries d
                            WHERE account_id = $1))",
    )
    .bind(Uuid::parse_str(&w.ada.account_id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    state.insert("tables".into(), tables);
    Value::Object(state)
}

/// The path of `case` on operation `op`: its template with Ada's (or Bob's) ids, and the query.
fn path(op: &Operation, w: &World, case: &Case) -> String {
    let path = case
        .params
        .iter()
        .fold(op.template.clone(), |path, (param, object)| {
            path.replace(&format!("{{{param}}}"), w.id(object))
        });
    assert!(
        !path.contains('{'),
        "{}: {path} has a parameter left",
        op.id()
    );
    path + &w.fill(case.query)
}

async fn send(
    app: &TestApp,
    w: &World,
    method: &Method,
    path: &str,
    case: &Case,
) -> reqwest::Response {
    let mut req = app.client.request(method.clone(), app.url(path));
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
        req = req.json(&body(w));
    } else if path.starts_with(CF) {
        // Cloudflare's clients send a JSON content type on every request.
        req = req.header("content-type", "application/json");
    }
    app.send(req).await
}

/// Checks Bob's answer against what the case expects.
async fn check(response: reqwest::Response, w: &World, path: &str, case: &Case, what: &str) {
    if case.expect == Expect::OwnStream {
        let mut stream = SseReader::new(response);
        let events = stream
            .events_until_quiet(std::time::Duration::from_millis(700))
            .await;
        for frame in events {
            for secret in w.secrets() {
                assert!(
                    !frame.data.contains(secret),
                    "{what}: the stream reveals `{secret}`: {frame:?}"
                );
            }
            assert_eq!(
                frame.json()["accountId"].as_str(),
                Some(w.bob.account_id.as_str()),
                "{what}: {frame:?}"
            );
        }
        return;
    }
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
            if path.starts_with(CF) {
                assert_envelope(what, status, &content_type, &body);
            }
        }
        Expect::OwnStream => unreachable!("streams are read above"),
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
    let scoped = account_scoped();
    let mut walked = BTreeSet::new();
    for (id, cases) in table() {
        let op = scoped
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not an account-scoped operation"));
        for case in &cases {
            let path = path(op, &w, case);
            let what = format!(
                "{id}: {:?} {} {path} ({:?})",
                case.auth, op.method, case.expect
            );
            let found = spec().operation(&op.method, path.split('?').next().unwrap());
            assert_eq!(
                found.map(Operation::id),
                Some(id),
                "{what}: another operation"
            );
            let response = send(&app, &w, &op.method, &path, case).await;
            check(response, &w, &path, case, &what).await;
            let after = adas_state(&app, &w).await;
            assert!(
                after == before,
                "{what} changed Ada's objects:\nbefore {before:#}\nafter {after:#}"
            );
        }
        walked.insert(id);
    }
    let scoped: BTreeSet<&str> = scoped.keys().copied().collect();
    assert_eq!(uncovered(&scoped, &walked), (vec![], vec![]));
}
