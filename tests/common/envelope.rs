//! Cloudflare's envelope, the shape of every answer under `/client/v4`:
//! `{success, errors, messages, result}`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{content_type, json_of};

/// Asserts that `body`, answered with `status` and `content_type`, is the envelope: JSON,
/// `messages: []`, `success` as the status says; a success with `errors: []`, a failure with
/// `result: null` and exactly one error that has a code ≥ 1000 and a message. `what` names
/// the request in a failure.
pub fn assert_envelope(what: &str, status: StatusCode, content_type: &str, body: &Value) {
    assert_eq!(content_type, "application/json", "{what}: {body}");
    assert_eq!(body["messages"], json!([]), "{what}: {body}");
    assert_eq!(body["success"], status.is_success(), "{what}: {body}");
    if status.is_success() {
        assert_eq!(body["errors"], json!([]), "{what}: {body}");
        return;
    }
    assert!(body["result"].is_null(), "{what}: {body}");
    let errors = body["errors"].as_array();
    assert_eq!(errors.map(Vec::len), Some(1), "{what}: {body}");
    let error = &body["errors"][0];
    assert!(
        error["code"].as_u64().is_some_and(|code| code >= 1000),
        "{what}: {body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

/// Asserts an envelope answer with this status (see [`assert_envelope`]) and returns its body.
pub async fn envelope_of(response: reqwest::Response, status: StatusCode) -> Value {
    let content_type = content_type(&response);
    let body = json_of(response, status).await;
    assert_envelope("envelope", status, &content_type, &body);
    body
}

/// Asserts an envelope answer with this status: the `result` of a success, the one error of
/// a failure.
pub async fn envelope(response: reqwest::Response, status: StatusCode) -> Value {
    let mut body = envelope_of(response, status).await;
    if status.is_success() {
        body["result"].take()
    } else {
        body["errors"][0].take()
    }
}

/// The one error of a failed envelope answer with this status.
pub async fn envelope_error(response: reqwest::Response, status: StatusCode) -> Value {
    assert!(!status.is_success(), "{status} is a success");
    envelope(response, status).await
}
