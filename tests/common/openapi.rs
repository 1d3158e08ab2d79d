//! Every answer the tests receive is checked against the OpenAPI document the code generates
//! (the one committed as `openapi.yaml`): the operation is found by method and path template,
//! and its status must be documented, its content type one the document gives for that
//! status, and a JSON body valid against the documented schema. A mismatch fails the test
//! that received the answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::Method;
use serde_json::Value;

/// The document as JSON, with its operations.
pub struct Spec {
    pub doc: Value,
    pub operations: Vec<Operation>,
}

pub struct Operation {
    pub method: Method,
    pub template: String,
    segments: Vec<String>,
    pub value: Value,
}

impl Operation {
    /// The operation's `operationId`.
    pub fn id(&self) -> &str {
        self.value["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{} {} has no operationId", self.method, self.template))
    }

    /// Whether the operation requires credentials (it has a `security` requirement), which
    /// makes what it answers an account's own.
    pub fn is_account_scoped(&self) -> bool {
        self.value["security"]
            .as_array()
            .is_some_and(|requirements| !requirements.is_empty())
    }

    /// The names of the template's path parameters, in order.
    pub fn path_parameters(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }

    /// How well `path` matches: `None` if it does not, else the number of literal segments.
    fn score(&self, path: &str) -> Option<usize> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut literal = 0;
        for (part, segment) in parts.iter().zip(&self.segments) {
            if segment.starts_with('{') {
                if part.is_empty() {
                    return None;
                }
            } else if part == segment {
                literal += 1;
            } else {
                return None;
            }
        }
        Some(literal)
    }
}

pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let doc = serde_json::to_value(warren::http::openapi::document()).unwrap();
        let mut operations = Vec::new();
        for (template, item) in doc["paths"].as_object().unwrap() {
            for (method, value) in item.as_object().unwrap() {
                let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                    continue;
                };
                operations.push(Operation {
                    method,
                    template: template.clone(),
                    segments: template.split('/').map(str::to_owned).collect(),
                    value: value.clone(),
                });
            }
        }
        Spec { doc, operations }
    })
}

impl Spec {
    /// The operation serving `method` on `path` (no query), if the document has one.
    pub fn operation(&self, method: &Method, path: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .filter(|op| op.method == *method)
            .filter_map(|op| op.score(path).map(|score| (score, op)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, op)| op)
    }

    /// Follows a `$ref` inside the document.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self
                .doc
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("openapi: unresolvable $ref {pointer}")),
            None => value,
        }
    }
}

type Validators = Mutex<HashMap<String, Arc<jsonschema::Validator>>>;

/// A validator for `schema` (a schema of the document; its `$ref`s resolve in the document).
pub fn validator(schema: &Value) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Validators> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap().get(&key) {
        return found.clone();
    }
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), spec().doc["components"].clone());
    }
    let built = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|err| panic!("openapi: a schema does not compile: {err}\n{schema}"));
    let built = Arc::new(built);
    cache.lock().unwrap().insert(key, built.clone());
    built
}

fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Checks one answer; `Err` says what does not match. Answers to requests the document has
/// no operation for (the router's own 404 and 405) are not checked.
pub fn check(
    method: &Method,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let spec = spec();
    let Some(op) = spec.operation(method, path) else {
        return Ok(());
    };
    let where_ = format!("{method} {} ({status})", op.template);
    let responses = &op.value["responses"];
    let documented = responses
        .get(status.to_string())
        .or_else(|| responses.get(format!("{}XX", status / 100)))
        .or_else(|| responses.get("default"))
        .ok_or_else(|| format!("{where_}: status {status} is not documented"))?;
    let documented = spec.resolve(documented);
    let content = documented["content"].as_object();
    let Some(content) = content.filter(|c| !c.is_empty()) else {
        return if body.is_empty() {
            Ok(())
        } else {
            Err(format!("{where_}: documented without a body, but one came"))
        };
    };
    let actual = content_type
        .map(essence)
        .ok_or_else(|| format!("{where_}: no Content-Type"))?;
    let (_, media) = content
        .iter()
        .find(|(media, _)| essence(media) == actual)
        .ok_or_else(|| {
            let known: Vec<_> = content.keys().collect();
            format!("{where_}: Content-Type {actual} is not one of {known:?}")
        })?;
    let is_json = actual == "application/json" || actual.ends_with("+json");
    let Some(schema) = media.get("schema").filter(|_| is_json) else {
        return Ok(());
    };
    let instance: Value = serde_json::from_slice(body)
        .map_err(|err| format!("{where_}: the body is not JSON ({err})"))?;
    let errors: Vec<String> = validator(schema)
        .iter_errors(&instance)
        .map(|err| format!("at {}: {err}", err.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{where_}: {}", errors.join("; ")))
    }
}

/// Reads `response`, checks it against the document (panicking on a mismatch), and gives back
/// an equivalent response for the test to read.
pub async fn checked(
    method: &Method,
    path: &str,
    response: reqwest::Response,
) -> reqwest::Result<reqwest::Response> {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let path = path.split('?').next().unwrap_or(path);
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // A stream never ends: its status and content type are checked, its body is the test's.
    if content_type.is_some_and(|t| essence(t) == "text/event-stream") {
        if let Err(mismatch) = check(method, path, status.as_u16(), content_type, b"") {
            panic!("the answer does not match openapi.yaml: {mismatch}");
        }
        return Ok(response);
    }
    let body = response.bytes().await?;
    if let Err(mismatch) = check(method, path, status.as_u16(), content_type, &body) {
        panic!(
            "the answer does not match openapi.yaml: {mismatch}\nbody: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut rebuilt = axum::http::Response::builder()
        .status(status)
        .version(version);
    *rebuilt.headers_mut().unwrap() = headers;
    Ok(reqwest::Response::from(rebuilt.body(body).unwrap()))
}
