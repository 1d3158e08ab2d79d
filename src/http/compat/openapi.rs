//! The OpenAPI schemas of the Cloudflare-compatible routes: the envelope, the error envelope,
//! Cloudflare's snake_case connector (derived from the native [`Client`] schema by the same
//! renaming the routes apply), and the `X-Auth-Email` + `X-Auth-Key` security schemes.

use serde_json::{json, Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::Components;
use utoipa::{IntoParams, PartialSchema};

use super::tunnels::snake_case;
use crate::connectors::Client;
use crate::http::openapi::header_key;
use crate::http::schemas::{device, from_json, param, schema_type, DeviceStatus};
use crate::time::Timestamp;

/// The security schemes only these routes accept: an API token of the user named by
/// `X-Auth-Email`, sent as `X-Auth-Key`. Both headers together, or `Authorization: Bearer`.
pub fn security_schemes(components: &mut Components) {
    components.add_security_scheme(
        "authEmail",
        header_key("X-Auth-Email", "The user's email; with X-Auth-Key"),
    );
    components.add_security_scheme(
        "authKey",
        header_key(
            "X-Auth-Key",
            "An API token (`wrn_…`) of that user; with X-Auth-Email",
        ),
    );
}

/// The `account_id` path parameter of every route: the caller's own account, as Cloudflare
/// writes account ids (another account's is 404, as if it did not exist).
pub struct AccountId;

impl IntoParams for AccountId {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![param(
            "account_id",
            ParameterIn::Path,
            true,
            "The caller's account id: 32 hex characters",
            json!({"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}),
        )]
    }
}

/// Renames an object schema's property names (and `required`) to snake_case, at every depth.
fn snake_schema(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let value = match key.as_str() {
                        "properties" => match value {
                            Value::Object(props) => Value::Object(
                                props
                                    .into_iter()
                                    .map(|(k, v)| (snake_case(&k), snake_schema(v)))
                                    .collect::<Map<_, _>>(),
                            ),
                            other => other,
                        },
                        "required" => match value {
                            Value::Array(names) => Value::Array(
                                names
                                    .into_iter()
                                    .map(|n| match n {
                                        Value::String(s) => Value::String(snake_case(&s)),
                                        other => other,
                                    })
                                    .collect(),
                            ),
                            other => other,
                        },
                        _ => snake_schema(value),
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_schema).collect()),
        other => other,
    }
}

fn connector() -> Value {
    let schema = serde_json::to_value(Client::schema()).expect("schema serializes");
    let mut schema = snake_schema(schema);
    schema["description"] = json!(
        "Cloudflare's Client: a connector (one agent process) with its connections, snake_case."
    );
    schema
}

/// `{"success", "errors", "messages", "result"}` with `result` as given, and `result_info`.
fn envelope(result: Value, paged: bool) -> Value {
    let mut required = vec!["success", "errors", "messages", "result"];
    let mut properties = json!({
        "success": {"type": "boolean", "enum": [true]},
        "errors": {"type": "array", "items": {"type": "object"}, "maxItems": 0},
        "messages": {"type": "array", "items": {"type": "object"}},
        "result": result,
    });
    if paged {
        required.push("result_info");
        properties["result_info"] = json!({
            "type": "object",
            "required": ["count", "page", "per_page", "total_count", "total_pages"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "page": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1, "maximum": 50},
                "total_count": {"type": "integer", "minimum": 0},
                "total_pages": {"type": "integer", "minimum": 0},
            },
        });
    }
    json!({"type": "object", "required": required, "properties": properties})
}

fn refer(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

schema_type! {
    /// Cloudflare's Client: a connector with its connections, snake_case.
    CfConnector = from_json(connector()); refs [Timestamp]; inlines []
}

schema_type! {
    /// Every error of a Cloudflare-compatible route, with its real HTTP status. `code` is
    /// at least 1000; `source.pointer` names the invalid parameter when there is one.
    CfError = from_json(json!({
        "type": "object",
        "required": ["success", "errors", "messages", "result"],
        "properties": {
            "success": {"type": "boolean", "enum": [false]},
            "errors": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "integer", "minimum": 1000},
                    "message": {"type": "string"},
                    "source": {"type": "object", "required": ["pointer"],
                               "properties": {"pointer": {"type": "string"}}},
                },
            }},
            "messages": {"type": "array", "items": {"type": "object"}},
            "result": {"type": "null"},
        },
    })); refs []; inlines []
}

schema_type! {
    /// The tunnel's connectors, in the envelope.
    CfConnectorList = from_json(envelope(json!({"type": "array", "items": refer("CfConnector")}), false));
    refs [CfConnector]; inlines []
}

schema_type! {
    /// One connector, in the envelope.
    CfConnectorResult = from_json(envelope(refer("CfConnector"), false));
    refs [CfConnector]; inlines []
}

schema_type! {
    /// The answer to a cleanup: `result` is `null`.
    CfEmptyResult = from_json(envelope(json!({"type": "null"}), false)); refs []; inlines []
}

schema_type! {
    /// A page of devices in the envelope, with `result_info`.
    CfDevicePage = from_json(envelope(json!({"type": "array", "items": refer("DeviceStatus")}), true));
    refs [DeviceStatus]; inlines []
}

/// The live status: the device's fields at the top level (clients read it as a bare device),
/// the envelope's keys beside them, and the device again in `result`.
fn live() -> Value {
    let mut body = device(false);
    let envelope = envelope(refer("DeviceStatus"), false);
    for key in ["success", "errors", "messages", "result"] {
        body["properties"][key] = envelope["properties"][key].clone();
        if let Some(required) = body["required"].as_array_mut() {
            required.push(json!(key));
        }
    }
    body
}

schema_type! {
    /// A device's live status, readable as a bare device and as an envelope.
    CfLiveStatus = from_json(live()); refs [DeviceStatus, Timestamp]; inlines [crate::fleet::details::Details]
}
