//! The OpenAPI document, generated from the code: every route is registered through
//! [`api`], whose `routes!` take the handlers' `#[utoipa::path]` descriptions, so the router
//! and the document are one value and cannot disagree. [`finish`] then adds what holds for
//! every operation of a kind (the error answers each family gives, the security schemes),
//! and `GET /openapi.yaml` serves the result, which is also committed as `openapi.yaml`
//! (`warren openapi` prints it; a test fails when the two differ).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::compat;
use super::error::PROBLEM_JSON;
use super::schemas::Problem;
use crate::state::AppState;

pub const YAML_CONTENT_TYPE: &str = "application/yaml";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Warren",
        description = "A self-hosted tunnel registry: tunnels and their leases, connectors, device fleet status. \
            Native routes live under `/v1` and answer errors as RFC 9457 `application/problem+json`; \
            the Cloudflare-compatible routes live under `/client/v4` and answer in Cloudflare's envelope.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem, compat::openapi::CfError)),
    tags(
        (name = "auth", description = "Registration and login"),
        (name = "tokens", description = "API tokens"),
        (name = "tunnels", description = "Tunnels and their leases"),
        (name = "connectors", description = "The agents serving a tunnel, and their connections"),
        (name = "fleet", description = "Device fleet status"),
        (name = "events", description = "The account's event log, paged or live"),
        (name = "webhooks", description = "Webhook endpoints, their deliveries (signed per the Standard Webhooks spec) and their logs"),
        (name = "cloudflare", description = "Cloudflare-compatible routes, in Cloudflare's envelope"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// Every route of the service with its documentation.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(super::health::router())
        .merge(super::metrics::router())
        .merge(OpenApiRouter::new().routes(routes!(openapi_yaml)))
        .merge(super::auth::router())
        .merge(super::tokens::router())
        .merge(super::tunnels::router())
        .merge(super::tunnel_list::router())
        .merge(super::heartbeat::router())
        .merge(super::connectors::router())
        .merge(super::fleet::router())
        .merge(super::events::router())
        .merge(super::webhooks::router())
        .merge(super::webhook_deliveries::router())
        .merge(compat::router())
}

/// The complete document.
pub fn document() -> OpenApi {
    finish(api().into_openapi())
}

/// The complete document as YAML: what `openapi.yaml` holds.
pub fn yaml() -> &'static str {
    static YAML: OnceLock<String> = OnceLock::new();
    YAML.get_or_init(|| document().to_yaml().expect("the document serializes"))
}

/// This document. No authentication.
#[utoipa::path(
    get, path = "/openapi.yaml", tag = "operations", operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI document (the committed `openapi.yaml`)",
            body = super::schemas::OpenApiDocument, content_type = "application/yaml"),
    )
)]
async fn openapi_yaml() -> axum::response::Response {
    let mut response = yaml().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(YAML_CONTENT_TYPE),
    );
    response
}

/// Which of the two route families an operation belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Native,
    Cloudflare,
}

/// Adds the security schemes, and to every operation the error answers it can give
/// whatever its handler does: a refused credential, a malformed request, an unavailable
/// database. Every error answer gets its family's body.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`wrn_…`, from `POST /v1/tokens`) or an access token (a JWT, \
                     from `POST /v1/auth/login`). The requirement lists the scope the route needs.",
                ))
                .build(),
        ),
    );
    compat::openapi::security_schemes(components);
    let mut shared = BTreeMap::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let family = if path.starts_with(compat::PREFIX) {
            Family::Cloudflare
        } else {
            Family::Native
        };
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            optional_body(operation);
            add_common_errors(operation, family, path, &mut shared);
        }
    }
    components.responses.extend(shared);
    doc
}

/// The errors every operation of a kind can answer, whatever its handler does: name,
/// status, description, and whether it applies to (operation, family, path).
type Applies = fn(&Operation, Family, &str) -> bool;
const COMMON_ERRORS: [(&str, u16, &str, Applies); 9] = [
    ("BadRequest", 400, "The body is not valid JSON (`malformed_json`), or a path, query or header parameter is invalid (`validation_failed`; `field` names it)",
        |op, _, _| op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty())),
    ("Unauthorized", 401, "Missing or invalid credentials (`unauthorized`)", |op, _, _| secured(op)),
    ("Forbidden", 403, "The token lacks the scope this route needs (`forbidden`)", |op, _, _| secured(op)),
    ("AccountNotFound", 404, "The account is not the caller's, or the object does not exist in it (`not_found`)",
        |_, family, path| family == Family::Cloudflare && path.contains("{account_id}")),
    ("PayloadTooLarge", 413, "The body is larger than the route accepts (`payload_too_large`)", |op, _, _| op.request_body.is_some()),
    ("UnsupportedMediaType", 415, "The body is not sent as `application/json` (`unsupported_media_type`)", |op, _, _| op.request_body.is_some()),
    ("Unprocessable", 422, "A body field is invalid (`validation_failed`; `field` names it)", |op, _, _| op.request_body.is_some()),
    ("InternalError", 500, "An internal error (`internal_error`)", |_, _, _| true),
    ("Unavailable", 503, "The database is unreachable, or the request timed out (`service_unavailable`); retry after `Retry-After` seconds", |_, _, _| true),
];

fn secured(operation: &Operation) -> bool {
    operation.security.as_ref().is_some_and(|s| !s.is_empty())
}

/// A request body that may be absent is documented as its schema, not as "schema or null".
fn optional_body(operation: &mut Operation) {
    let Some(body) = &mut operation.request_body else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let not_null: Vec<_> = one_of
                .items
                .iter()
                .filter(|item| !matches!(item, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null)))
                .cloned()
                .collect();
            if let [only] = not_null.as_slice() {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn add_common_errors(
    operation: &mut Operation,
    family: Family,
    path: &str,
    shared: &mut BTreeMap<String, RefOr<Response>>,
) {
    for (name, status, description, applies) in COMMON_ERRORS {
        if !applies(operation, family, path) {
            continue;
        }
        let name = match family {
            Family::Native => name.to_owned(),
            Family::Cloudflare => format!("Cf{name}"),
        };
        let responses = &mut operation.responses.responses;
        if responses.contains_key(&status.to_string()) {
            continue;
        }
        let mut response = ResponseBuilder::new().description(description).build();
        error_body(&mut response, family, status);
        shared.insert(name.clone(), response.into());
        responses.insert(status.to_string(), Ref::from_response_name(name).into());
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        if let (RefOr::T(response), Ok(code)) = (response, status.parse::<u16>()) {
            error_body(response, family, code);
        }
    }
}

/// An error answer's body (its family's) and headers.
fn error_body(response: &mut Response, family: Family, status: u16) {
    if status < 400 {
        return;
    }
    if response.content.is_empty() {
        let (media_type, schema) = match family {
            Family::Native => (PROBLEM_JSON, "Problem"),
            Family::Cloudflare => ("application/json", "CfError"),
        };
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build();
        response.content.insert(media_type.to_owned(), content);
    }
    let header = match status {
        401 => Some(("WWW-Authenticate", "`Bearer`", Type::String)),
        429 | 503 => Some((
            "Retry-After",
            "Seconds to wait before retrying",
            Type::Integer,
        )),
        _ => None,
    };
    if let Some((name, description, kind)) = header {
        response.headers.entry(name.to_owned()).or_insert_with(|| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(kind))
                .description(Some(description))
                .build()
        });
    }
}

/// An `X-Auth-…` header scheme of the Cloudflare-compatible routes.
pub fn header_key(name: &str, description: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        name,
        description,
    )))
}
