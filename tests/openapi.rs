mod common;

use common::openapi::{check, spec, validator};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");

#[test]
fn the_committed_openapi_yaml_is_what_the_code_generates() {
    let generated = warren::http::openapi::yaml();
    if std::env::var_os("WARREN_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "openapi.yaml differs from what the code generates (first at line {}). Regenerate it \
             with `WARREN_UPDATE_OPENAPI=1 cargo test --test openapi` (or `warren openapi > \
             openapi.yaml`) and commit it.",
            line + 1
        );
    }
}

#[tokio::test]
async fn get_openapi_yaml_serves_the_document_without_credentials() {
    let app = TestApp::spawn().await;
    let response = app.send(app.client.get(app.url("/openapi.yaml"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let text = response.text().await.unwrap();
    assert_eq!(text, warren::http::openapi::yaml());
    let parsed: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(parsed["openapi"], "3.1.0");
    app.stop().await;
}

#[test]
fn every_schema_of_the_document_compiles_and_every_reference_resolves() {
    let doc = &spec().doc;
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        validator(&json!({ "$ref": format!("#/components/schemas/{name}") }));
    }
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(!refs.is_empty());
    for pointer in refs {
        assert!(
            doc.pointer(pointer.trim_start_matches('#')).is_some(),
            "{pointer} does not resolve"
        );
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(pointer)) => out.push(pointer.clone()),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_operation_has_a_unique_id_a_success_answer_and_documented_errors() {
    let mut ids = std::collections::HashSet::new();
    for op in &spec().operations {
        let id = op.value["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        let responses = op.value["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{id}: no success answer"
        );
        assert!(responses.contains_key("503"), "{id}: no 503");
        let secured = op.value["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        let public = ["/healthz", "/readyz", "/metrics", "/openapi.yaml"]
            .contains(&op.template.as_str())
            || op.template.starts_with("/v1/auth/");
        assert_eq!(secured, !public, "{id}: security");
        if secured {
            assert!(responses.contains_key("401"), "{id}: no 401");
        }
    }
}

/// The checker itself: it must refuse what does not match, or it proves nothing.
#[test]
fn the_answer_checker_refuses_undocumented_statuses_types_and_bodies() {
    let problem = br#"{"type":"urn:warren:problem:not_found","title":"Not Found","status":404,"detail":"tunnel not found","code":"not_found"}"#;
    let json = Some("application/json");
    let problem_json = Some("application/problem+json");
    let path = "/v1/tunnels/6f1c0b1e-2f55-4f35-9e0e-2a3a3f1f5e0b";
    assert!(check(&Method::GET, path, 404, problem_json, problem).is_ok());
    // An undocumented status.
    let err = check(&Method::GET, path, 418, problem_json, problem).unwrap_err();
    assert!(err.contains("not documented"), "{err}");
    // The wrong content type.
    let err = check(&Method::GET, path, 404, json, problem).unwrap_err();
    assert!(err.contains("Content-Type"), "{err}");
    // A body missing a required member, and one with a wrong type.
    let bad = br#"{"type":"x","title":"Not Found","status":404,"detail":"d"}"#;
    assert!(check(&Method::GET, path, 404, problem_json, bad).is_err());
    let tunnel = json!({"id": "6f1c0b1e-2f55-4f35-9e0e-2a3a3f1f5e0b", "hostname": "a.localhost",
        "slug": "a", "status": "paused", "requestedPort": 1, "createdAt": "2026-03-05T10:30:00.000Z",
        "lease": null, "stoppedAt": null, "lastError": null});
    let err = check(&Method::GET, path, 200, json, tunnel.to_string().as_bytes()).unwrap_err();
    assert!(err.contains("status"), "{err}");
    // A body where the document says there is none.
    assert!(check(&Method::DELETE, path, 204, None, b"").is_ok());
    assert!(check(&Method::DELETE, path, 204, json, b"{}").is_err());
    // The Cloudflare family: the envelope, not problem+json.
    let cf = "/client/v4/accounts/0123456789abcdef0123456789abcdef/dex/fleet-status/devices";
    let envelope = br#"{"success":false,"errors":[{"code":10000,"message":"no"}],"messages":[],"result":null}"#;
    assert!(check(&Method::GET, cf, 401, json, envelope).is_ok());
    assert!(check(&Method::GET, cf, 401, problem_json, problem).is_err());
}
