//! The full route list (the OpenAPI document, which the router is built from) walked without
//! credentials and with bad ones: every route but the four public ones answers 401, and
//! nothing is written.

mod common;

use common::fleet::{ingest, snapshot};
use common::openapi::{spec, Operation};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.yaml"];
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Real objects of a real account, so that a route that forgot its authentication would
/// find something to show or change rather than answer 404.
struct Objects {
    user: User,
    tunnel: String,
    connector: Uuid,
    device: Uuid,
}

async fn objects(app: &TestApp) -> Objects {
    let user = app.user().await;
    let tunnel = app.tunnel(&user.token, json!({"requestedPort": 80})).await;
    let tunnel = tunnel["id"].as_str().unwrap().to_owned();
    let connector = Uuid::new_v4();
    let beat = json!({"connector": {"id": connector, "connections": [{"id": Uuid::new_v4()}]}});
    let path = format!("/v1/tunnels/{tunnel}/heartbeat");
    json_of(app.post(&path, &user.token, beat).await, StatusCode::OK).await;
    let device = Uuid::new_v4();
    ingest(app, &user.token, snapshot(device, 0)).await;
    Objects {
        user,
        tunnel,
        connector,
        device,
    }
}

/// The template with the objects' ids in place of its parameters.
fn concrete(template: &str, o: &Objects) -> String {
    template
        .replace("{account_id}", &o.user.account_id)
        .replace("{tunnel_id}", &o.tunnel)
        .replace("{id}", &o.tunnel)
        .replace("{connector_id}", &o.connector.to_string())
        .replace("{device_id}", &o.device.to_string())
}

/// A body the route would accept from a caller allowed to use it.
fn valid_body(op: &Operation, o: &Objects) -> Option<Value> {
    op.value.get("requestBody")?;
    let id = op.value["operationId"].as_str().unwrap();
    Some(match id {
        "createTunnel" => json!({"requestedPort": 3000}),
        "heartbeatTunnel" => json!({}),
        "updateTunnel" => json!({"status": "stopping"}),
        "createToken" => json!({"name": "walk", "scopes": ["tunnels:read"]}),
        "ingestDeviceStatus" => snapshot(o.device, 0),
        "createWebhook" => json!({"url": "https://example.com/hook"}),
        "updateWebhook" => json!({"enabled": false}),
        "register" | "login" => json!({"email": "walk@example.com", "password": PASSWORD}),
        other => panic!("add a valid body for the new operation {other} to this walk"),
    })
}

/// Every row of every table, as one text: equal before and after means nothing was written.
async fn everything(app: &TestApp) -> String {
    // lease_clock is the reaper's own stamp, written by the background task every tick.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'lease_clock' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut all = String::new();
    for table in tables {
        let sql = format!(
            "SELECT coalesce(string_agg(t::text, '\n' ORDER BY t::text), '') FROM \"{table}\" t"
        );
        let rows: String = sqlx::query_scalar(&sql).fetch_one(&app.db).await.unwrap();
        all.push_str(&format!("== {table}\n{rows}\n"));
    }
    all
}

/// The router's own answers for a path or method it does not serve.
fn is_router_fallback(status: StatusCode, body: &Value) -> bool {
    let detail = body["detail"]
        .as_str()
        .or_else(|| body["errors"][0]["message"].as_str())
        .unwrap_or("");
    status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && detail.starts_with("no route for"))
}

#[tokio::test]
async fn every_route_but_the_public_ones_refuses_missing_and_bad_credentials_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let o = objects(&app).await;
    let before = everything(&app).await;
    let garbage = [
        vec![],
        vec![("authorization", "Bearer garbage".to_owned())],
        vec![("authorization", format!("Bearer wrn_{}", "x".repeat(40)))],
        vec![("authorization", format!("Bearer {}.{}.sig", "e30", "e30"))],
        vec![
            ("x-auth-email", o.user.email.clone()),
            ("x-auth-key", "wrn_not-a-real-key".to_owned()),
        ],
    ];
    let mut walked = 0;
    for op in &spec().operations {
        if PUBLIC.contains(&op.template.as_str()) || op.template.starts_with("/v1/auth/") {
            continue;
        }
        let compat = op.template.starts_with("/client/v4/");
        let path = concrete(&op.template, &o);
        for headers in &garbage {
            let mut req = app.client.request(op.method.clone(), app.url(&path));
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            if let Some(body) = valid_body(op, &o) {
                req = req.json(&body);
            } else if compat {
                req = req.header("content-type", "application/json");
            }
            let response = app.send(req).await;
            let what = format!("{} {path} with {headers:?}", op.method);
            assert_eq!(
                response.headers().get("www-authenticate").unwrap(),
                "Bearer",
                "{what}"
            );
            let content_type = content_type(&response);
            let body = json_of(response, StatusCode::UNAUTHORIZED).await;
            if compat {
                assert_envelope(&what, StatusCode::UNAUTHORIZED, &content_type, &body);
                assert_eq!(body["errors"][0]["code"], 10000, "{what}: {body}");
            } else {
                assert_problem(&what, StatusCode::UNAUTHORIZED, &content_type, &body);
                assert_eq!(body["code"], "unauthorized", "{what}: {body}");
            }
            walked += 1;
        }
    }
    assert!(
        walked >= 5 * 20,
        "only {walked} requests: the route list is short"
    );
    assert_eq!(everything(&app).await, before, "a refused request wrote");
    app.stop().await;
}

#[tokio::test]
async fn the_router_serves_exactly_the_routes_of_the_document() {
    let app = TestApp::spawn().await;
    let o = objects(&app).await;
    let mut templates: Vec<&str> = spec()
        .operations
        .iter()
        .map(|op| op.template.as_str())
        .collect();
    templates.dedup();
    for template in templates {
        let path = concrete(template, &o);
        for method in METHODS {
            let documented = spec().operation(&method, &path).is_some();
            let response = app
                .send(app.client.request(method.clone(), app.url(&path)))
                .await;
            let status = response.status();
            let text = response.text().await.unwrap();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if documented {
                assert!(
                    !is_router_fallback(status, &body),
                    "{method} {template} is documented but not routed: {status} {text}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is routed but not documented: {text}"
                );
            }
        }
    }
    // Every route the router matched, as it names them itself (metrics by matched route),
    // is a documented one.
    let metrics = app.send(app.client.get(app.url("/metrics"))).await;
    let metrics = metrics.text().await.unwrap();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("warren_http_requests_total{"))
    {
        let route = line
            .split("route=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            route == "unmatched" || spec().operations.iter().any(|op| op.template == route),
            "the router matched {route}, which the document does not have"
        );
    }
    app.stop().await;
}

/// The router is built only from documented handlers (`routes!`): no route can be added to
/// it any other way without this failing. (The server's router is `http::router`, built from
/// `http::openapi::api()`, whose parts live in `http/`, the compatible ones in `http/compat/`.)
/// The one exception is the web dashboard, `http/dashboard/`: its HTML pages are not part of
/// the API, so they are a plain router of their own, merged beside the documented one.
#[test]
fn no_route_is_added_outside_the_documented_router() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let dashboard = std::path::Path::new(src).join("http").join("dashboard");
    let mut stack: Vec<std::path::PathBuf> = ["http", "server.rs", "lib.rs"]
        .iter()
        .map(|part| std::path::Path::new(src).join(part))
        .collect();
    while let Some(path) = stack.pop() {
        if path == dashboard {
            continue;
        }
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for needle in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            "Router::new()",
        ] {
            // `OpenApiRouter::new()` is the documented router, not an axum one.
            let found = text
                .match_indices(needle)
                .any(|(i, _)| !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
            assert!(
                !found,
                "{} uses `{needle}`: register routes with utoipa_axum's routes!() so the \
                 OpenAPI document describes them",
                path.display()
            );
        }
    }
}
