//! The Cloudflare-compatible routes under `/client/v4`: the same domain code as the native
//! routes, answered in Cloudflare's envelope
//! `{"success", "errors": [{code, message}], "messages", "result", "result_info"?}`.
//!
//! Errors are produced as problem+json like everywhere else and converted once, by
//! [`envelope_errors`], for every response under `/client/v4` — including the router's own
//! 404/405, extractor rejections, timeouts and panics — so no error can escape the envelope,
//! and each keeps its real HTTP status (Cloudflare clients never look at `success`).

use axum::body::{to_bytes, Body};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Principal;
use crate::error::{Error, ErrorCode};
use crate::http::error::{AppError, PROBLEM_JSON};
use crate::state::AppState;

pub mod dex;
pub mod openapi;
pub mod tunnels;

pub const PREFIX: &str = "/client/v4/";

/// Every compatible route. Each resource adds its own router here.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(tunnels::router())
        .merge(dex::router())
}

/// `result_info` of a paged list.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ResultInfo {
    pub count: u64,
    pub page: u64,
    pub per_page: u64,
    pub total_count: u64,
    pub total_pages: u64,
}

#[derive(Serialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub result: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
}

/// A successful answer in the envelope.
pub fn ok<T: Serialize>(result: T) -> Json<Envelope<T>> {
    Json(Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result,
        result_info: None,
    })
}

/// A successful page in the envelope, with `result_info`.
pub fn ok_paged<T: Serialize>(result: T, info: ResultInfo) -> Json<Envelope<T>> {
    Json(Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result,
        result_info: Some(info),
    })
}

/// Whether a request path belongs to the compatible family.
pub fn is_compat(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// Turns a problem+json answer to a `/client/v4` request into the envelope (called by the
/// HTTP layer's edge middleware, for every response of the family).
pub async fn envelope_errors(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Every problem answer carries its code (see `http::error::problem`).
    let code = parts
        .extensions
        .get::<ErrorCode>()
        .copied()
        .unwrap_or(ErrorCode::InternalError);
    let problem: Value = match to_bytes(body, 64 * 1024).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let message = problem["detail"]
        .as_str()
        .unwrap_or_else(|| parts.status.canonical_reason().unwrap_or("error"));
    let mut error = json!({ "code": code.cloudflare(), "message": message });
    if let Some(field) = problem["field"].as_str() {
        error["source"] = json!({ "pointer": format!("/{field}") });
    }
    let body = json!({
        "success": false,
        "errors": [error],
        "messages": [],
        "result": null,
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// The caller of a compatible route: `Authorization: Bearer` (API token or access token) or
/// `X-Auth-Email` + `X-Auth-Key` (an API token of that user's), and the `account_id` in the
/// path must be the caller's own account — another one is 404, as if it did not exist.
#[derive(Clone, Debug)]
pub struct CfCaller(pub Principal);

impl<S> FromRequestParts<S> for CfCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let principal = match email_and_key(&parts.headers)? {
            Some((email, key)) => app.auth.authenticate_email_key(email, key).await?,
            None => Principal::from_request_parts(parts, state).await?,
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| match e {
                // `%FF` in a path segment: the client's mistake, named ("… in `account_id`").
                RawPathParamsRejection::InvalidUtf8InPathParam(e) => {
                    AppError::rejected(e.status(), ErrorCode::ValidationFailed, e.body_text())
                }
                other => Error::internal(anyhow::anyhow!("path parameters: {other}")).into(),
            })?;
        if let Some((_, account)) = params.iter().find(|(name, _)| *name == "account_id") {
            if !is_account(&principal, account) {
                return Err(Error::NotFound("account").into());
            }
        }
        Ok(Self(principal))
    }
}

fn email_and_key(headers: &HeaderMap) -> Result<Option<(&str, &str)>, Error> {
    let text = |name: &str| -> Result<Option<&str>, Error> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    Error::Unauthorized(format!("the {name} header is not valid text"))
                })
            })
            .transpose()
    };
    match (text("x-auth-email")?, text("x-auth-key")?) {
        (Some(email), Some(key)) => Ok(Some((email.trim(), key.trim()))),
        (None, None) => Ok(None),
        _ => Err(Error::Unauthorized(
            "X-Auth-Email and X-Auth-Key must be sent together".into(),
        )),
    }
}

/// An account id as Cloudflare writes it (32 hex characters); a dashed UUID is accepted too.
fn is_account(principal: &Principal, account: &str) -> bool {
    uuid::Uuid::try_parse(account).is_ok_and(|id| id == principal.account_id)
}
