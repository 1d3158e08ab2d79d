//! Schemas of the OpenAPI document that no single Rust type of the handlers describes: the
//! problem+json body, bodies the code validates by hand (a heartbeat's connector report, a
//! device snapshot), and the schemas built from the code's own constants (states, scopes).
//! Everything here is checked against real answers: the integration tests validate every
//! response they receive against the document.
#![allow(dead_code)] // documentation types: described, never built

use serde_json::{json, Value};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType};
use utoipa::openapi::{ObjectBuilder, RefOr, Required};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::connectors::report::{MAX_FEATURES, MAX_TEXT};
use crate::fleet::details::Details;
use crate::fleet::query::{Names, MAX_PER_PAGE, SORT_KEYS};
use crate::fleet::{DIMENSIONS, MAX_BATCH};
use crate::tunnels::{Status, MAX_LAST_ERROR};

/// A schema written as JSON (the shapes the derive cannot express). utoipa's types drop the
/// keywords they do not model, so the schema must come back unchanged.
pub fn from_json(value: Value) -> RefOr<Schema> {
    let schema: RefOr<Schema> =
        serde_json::from_value(value.clone()).expect("a hand-written schema is valid");
    let back = serde_json::to_value(&schema).expect("a schema serializes");
    assert_eq!(back, value, "a keyword of this schema is lost");
    schema
}

/// Declares a documentation type `$name` whose schema is `$schema` (an expression giving a
/// `RefOr<Schema>`), which refers to the component schemas of the types `$refs` and
/// inlines those of `$inlines` (so needs the schemas these refer to).
macro_rules! schema_type {
    ($(#[$doc:meta])* $name:ident = $schema:expr;
     refs [$($refs:ty),*]; inlines [$($inlines:ty),*]) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema
            }
        }

        impl utoipa::ToSchema for $name {
            #[allow(unused_variables)]
            fn schemas(
                schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>,
            ) {
                $(
                    schemas.push((
                        <$refs as utoipa::ToSchema>::name().into_owned(),
                        <$refs as utoipa::PartialSchema>::schema(),
                    ));
                    <$refs as utoipa::ToSchema>::schemas(schemas);
                )*
                $(<$inlines as utoipa::ToSchema>::schemas(schemas);)*
            }
        }
    };
}
pub(crate) use schema_type;

pub use crate::auth::scope_list_schema as scope_list;
pub use crate::tunnels::status_schema as tunnel_status;

/// An RFC 9457 problem (`application/problem+json`), the body of every error of the native
/// routes. `code` is a stable snake_case name; some problems carry extension members.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Problem {
    #[schema(rename = "type", examples("urn:warren:problem:not_found"))]
    type_: String,
    #[schema(examples("Not Found"))]
    title: String,
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    detail: String,
    /// `validation_failed`, `malformed_json`, `unsupported_media_type`, `payload_too_large`,
    /// `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`, `email_taken`,
    /// `slug_taken`, `invalid_transition`, `tunnel_not_live`, `tunnel_live`, `lease_expired`,
    /// `idempotency_key_reused`, `rate_limited`, `service_unavailable`, `internal_error`.
    #[schema(pattern = "^[a-z][a-z0-9_]*$", examples("not_found"))]
    code: String,
    /// The invalid field or parameter (`validation_failed`).
    #[schema(required = false)]
    field: String,
    /// `slug_taken`: the caller's own live tunnel that holds the slug.
    #[schema(required = false)]
    tunnel_id: Uuid,
    /// `lease_expired`, `tunnel_not_live`: the tunnel's state.
    #[schema(required = false, schema_with = tunnel_status)]
    tunnel_status: String,
    /// `invalid_transition`: the tunnel's state.
    #[schema(required = false, schema_with = tunnel_status)]
    from: String,
    /// `invalid_transition`: the state asked for.
    #[schema(required = false, schema_with = tunnel_status)]
    to: String,
}

/// A whole value of PostgreSQL text: no NUL.
const NO_NUL: &str = "^[^\\u0000]*$";

schema_type! {
    /// This document, as YAML.
    OpenApiDocument = from_json(json!({"type": "object", "required": ["openapi", "info", "paths"]}));
    refs []; inlines []
}

schema_type! {
    /// A user to register: an email address and a password of 12 to 1024 characters.
    Registration = from_json(json!({
        "type": "object",
        "required": ["email", "password"],
        "properties": {
            "email": {"type": "string", "maxLength": 254, "examples": ["ada@example.com"],
                "description": "Printable ASCII: `local@domain.tld`, the local part at most 64 characters",
                "pattern": "^[!-?A-~]{1,64}@[!-\\-/-?A-~]+(\\.[!-\\-/-?A-~]+)+$"},
            "password": {"type": "string", "minLength": 12, "maxLength": 1024,
                "examples": ["correct horse battery staple"]},
        },
    })); refs []; inlines []
}

/// A PATCH of a tunnel: the target state; `lastError` with, and only with, `failed`.
fn patch_tunnel() -> Value {
    let others: Vec<&str> = Status::ALL
        .into_iter()
        .filter(|s| *s != Status::Failed)
        .map(Status::as_str)
        .collect();
    json!({"allOf": [
        {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": Status::ALL.map(Status::as_str)},
                "lastError": {"type": ["string", "null"], "maxLength": MAX_LAST_ERROR,
                    "pattern": NO_NUL},
            },
        },
        {"oneOf": [
            {
                "type": "object",
                "required": ["lastError"],
                "properties": {
                    "status": {"type": "string", "enum": ["failed"]},
                    "lastError": {"type": "string", "pattern": "[^\\s\\u0000]"},
                },
            },
            {
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": others},
                    "lastError": {"type": "null"},
                },
            },
        ]},
    ]})
}

schema_type! {
    /// A tunnel's requested transition.
    PatchTunnel = from_json(patch_tunnel()); refs []; inlines []
}

/// `/healthz` and `/readyz`.
#[derive(ToSchema)]
pub struct Health {
    #[schema(examples("ok"))]
    status: String,
}

/// The connector a heartbeat may report. Unknown members are ignored.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ConnectorReport {
    /// The connector's id, kept across its heartbeats.
    id: Uuid,
    #[schema(max_length = 64, examples("linux_amd64"))]
    arch: Option<String>,
    #[schema(max_length = 64, examples("2026.1.0"))]
    version: Option<String>,
    #[schema(minimum = 0, maximum = 9000000000000000_i64)]
    // connectors::report::MAX_CONFIG_VERSION
    config_version: Option<i64>,
    #[schema(schema_with = features)]
    features: Option<Vec<String>>,
    #[schema(format = DateTime)]
    run_at: Option<String>,
    /// Distinct connection ids.
    #[schema(max_items = 64, inline)]
    connections: Option<Vec<ReportedConnection>>,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ReportedConnection {
    id: Uuid,
    #[schema(max_length = 64, examples("FRA"))]
    colo_name: Option<String>,
    #[schema(format = DateTime)]
    opened_at: Option<String>,
}

fn features() -> Schema {
    serde_json::from_value(json!({
        "type": ["array", "null"],
        "maxItems": MAX_FEATURES,
        "items": {"type": "string", "maxLength": MAX_TEXT},
        "examples": [["ha-origin"]],
    }))
    .expect("valid schema")
}

/// A device snapshot's fields: the seven required ones and the optional ones of [`Details`].
/// `reported` is the request's shape (a device's own clock), else the stored one.
pub fn device(reported: bool) -> Value {
    let RefOr::T(Schema::Object(details)) = Details::schema() else {
        unreachable!("Details is an object");
    };
    let dimension = json!({"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"});
    let mut properties = serde_json::Map::new();
    properties.insert(
        "deviceId".into(),
        json!({"type": "string", "format": "uuid"}),
    );
    for name in DIMENSIONS {
        properties.insert(name.into(), dimension.clone());
    }
    let timestamp = if reported {
        json!({"type": "string", "format": "date-time", "description":
            "the device's clock: RFC 3339, at most 5 minutes ahead and at most 7 days old"})
    } else {
        json!({"$ref": "#/components/schemas/Timestamp"})
    };
    properties.insert("timestamp".into(), timestamp);
    let mut object = serde_json::to_value(&details).expect("schema serializes");
    if let Some(rest) = object["properties"].as_object() {
        properties.extend(rest.clone());
    }
    object["properties"] = Value::Object(properties);
    let mut required: Vec<&str> = vec!["deviceId", "timestamp"];
    required.extend(DIMENSIONS);
    object["required"] = json!(required);
    object
}

schema_type! {
    /// A device's status as stored and listed (Cloudflare's DEX device fields), camelCase.
    DeviceStatus = from_json(device(false));
    refs [crate::time::Timestamp]; inlines [Details]
}

schema_type! {
    /// One snapshot as an agent reports it. Unknown members are refused.
    DeviceSnapshot = from_json(device(true)); refs []; inlines [Details]
}

schema_type! {
    /// The ingest body: one snapshot, or an array of 1 to [`MAX_BATCH`].
    DeviceSnapshots = from_json(json!({"oneOf": [
        {"$ref": "#/components/schemas/DeviceSnapshot"},
        {"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
         "items": {"$ref": "#/components/schemas/DeviceSnapshot"}},
    ]})); refs [DeviceSnapshot]; inlines []
}

/// Any JSON value (`null` included).
pub fn any_value() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .into()
}

/// A parameter whose schema is written as JSON.
pub fn param(
    name: &str,
    place: ParameterIn,
    required: bool,
    description: &str,
    schema: Value,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(from_json(schema)))
        .build()
}

/// A query parameter; an optional one's empty value (`colo=`) is the same as its absence.
fn query_param(name: &str, required: bool, description: &str, schema: Value) -> Parameter {
    let schema = if required {
        schema
    } else {
        json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
    };
    param(name, ParameterIn::Query, required, description, schema)
}

/// A whole number that may be written as a whole-valued decimal (`2.0`), as real clients do.
fn whole(min: i64, max: i64) -> Value {
    json!({"type": "number", "multipleOf": 1, "minimum": min, "maximum": max})
}

/// An instant as RFC 3339 (years 1678 to 2261) or milliseconds since the epoch.
fn instant() -> Value {
    json!({"anyOf": [
        {"type": "string", "format": "date-time", "description": "years 1678 to 2261"},
        {"type": "integer", "minimum": 0, "maximum": 253_402_300_799_999_i64},
    ]})
}

/// The device list's query parameters, as the dialect `names` them.
pub fn device_list_params(names: &Names) -> Vec<Parameter> {
    let text = json!({"type": "string"});
    let mut params = vec![
        query_param("from", false, "Start of the window: RFC 3339 or epoch milliseconds (default: `to` less 60 minutes for `last_seen`, 24 hours otherwise)", instant()),
        query_param("to", false, "End of the window: RFC 3339 or epoch milliseconds (default: now)", instant()),
        query_param("page", false, "Page number, from 1", whole(1, i64::from(i32::MAX))),
        query_param(names.per_page, false, "Devices per page, 1 to 50 (default 20)", whole(1, MAX_PER_PAGE)),
        query_param(names.device_id, false, "Only this device", json!({"type": "string", "format": "uuid"})),
        query_param(names.sort_by, false, "Sort key (default `timestamp`)", json!({"type": "string", "enum": SORT_KEYS})),
        query_param("source", false, "`last_seen`: the latest snapshot per device within at most 60 minutes; `hourly`: one row per device and hour; `raw`: every snapshot (both up to 7 days back)", json!({"type": "string", "enum": ["last_seen", "hourly", "raw"]})),
    ];
    for name in DIMENSIONS {
        params.push(query_param(
            name,
            false,
            "Only devices with this value",
            text.clone(),
        ));
    }
    params
}

/// The live-status query parameters, as the dialect `names` them.
pub fn live_params(names: &Names) -> Vec<Parameter> {
    vec![
        query_param(
            names.since_minutes,
            true,
            "How far back to look, 1 to 60 minutes",
            whole(1, 60),
        ),
        query_param(
            names.time_now,
            false,
            "The reference instant (default: now)",
            instant(),
        ),
        query_param(
            "colo",
            false,
            "Comma-separated colos to accept the snapshot from",
            json!({"type": "string"}),
        ),
    ]
}
