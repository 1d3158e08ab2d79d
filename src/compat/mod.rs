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

use crate::auth::{tokens, Principal};
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

/// The envelope error code (always ≥ 1000) for each problem code.
pub fn error_code(code: &str) -> u32 {
    match code {
        "validation_failed" => 1001,
        "malformed_json" => 1002,
        "unsupported_media_type" => 1003,
        "payload_too_large" => 1004,
        "not_found" => 1005,
        "method_not_allowed" => 1006,
        "invalid_transition" | "tunnel_not_live" | "tunnel_live" => 1007,
        "slug_taken" | "email_taken" => 1008,
        "lease_expired" => 1009,
        "service_unavailable" => 1010,
        "unauthorized" => 10000,
        "forbidden" => 10001,
        _ => 1000,
    }
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
    let problem: Value = match to_bytes(body, 64 * 1024).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let code = problem["code"].as_str().unwrap_or("error");
    let message = problem["detail"]
        .as_str()
        .unwrap_or_else(|| parts.status.canonical_reason().unwrap_or("error"));
    let mut error = json!({ "code": error_code(code), "message": message });
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
            Some((email, key)) => {
                let mut conn = app.db.acquire().await?;
                tokens::principal_for_email_key(&mut conn, email, key)
                    .await?
                    .ok_or_else(|| {
                        AppError::Unauthorized(
                            "X-Auth-Email and X-Auth-Key do not match an API token".into(),
                        )
                    })?
            }
            None => Principal::from_request_parts(parts, state).await?,
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| match e {
                // `%FF` in a path segment: the client's mistake, named ("… in `account_id`").
                RawPathParamsRejection::InvalidUtf8InPathParam(e) => AppError::Rejected {
                    status: e.status(),
                    code: "validation_failed",
                    detail: e.body_text(),
                },
                other => AppError::internal(anyhow::anyhow!("path parameters: {other}")),
            })?;
        if let Some((_, account)) = params.iter().find(|(name, _)| *name == "account_id") {
            if !is_account(&principal, account) {
                return Err(AppError::NotFound("account"));
            }
        }
        Ok(Self(principal))
    }
}

fn email_and_key(headers: &HeaderMap) -> Result<Option<(&str, &str)>, AppError> {
    let text = |name: &str| -> Result<Option<&str>, AppError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    AppError::Unauthorized(format!("the {name} header is not valid text"))
                })
            })
            .transpose()
    };
    match (text("x-auth-email")?, text("x-auth-key")?) {
        (Some(email), Some(key)) => Ok(Some((email.trim(), key.trim()))),
        (None, None) => Ok(None),
        _ => Err(AppError::Unauthorized(
            "X-Auth-Email and X-Auth-Key must be sent together".into(),
        )),
    }
}

/// An account id as Cloudflare writes it (32 hex characters); a dashed UUID is accepted too.
fn is_account(principal: &Principal, account: &str) -> bool {
    uuid::Uuid::try_parse(account).is_ok_and(|id| id == principal.account_id)
}

/// A whole number from a query value, accepting the decimals real clients send (`2.0`).
/// Absent gives `default`; anything else outside `min..=max` is a 400 naming the parameter.
pub fn whole_param(
    name: &str,
    value: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, AppError> {
    let Some(raw) = value else {
        return Ok(default);
    };
    let bad = || {
        AppError::bad_param(
            name,
            format!("{name} must be a whole number from {min} to {max}; got `{raw}`"),
        )
    };
    let number: f64 = raw.trim().parse().map_err(|_| bad())?;
    if !number.is_finite() || number.fract() != 0.0 || number < min as f64 || number > max as f64 {
        return Err(bad());
    }
    Ok(number as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_params_accept_whole_valued_decimals_only() {
        assert_eq!(whole_param("page", Some("1.0"), 1, 1, 100).unwrap(), 1);
        assert_eq!(whole_param("page", Some("2"), 1, 1, 100).unwrap(), 2);
        assert_eq!(whole_param("page", None, 7, 1, 100).unwrap(), 7);
        for bad in ["1.5", "0", "101", "abc", "", "NaN", "inf", "-1"] {
            assert!(whole_param("page", Some(bad), 1, 1, 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_envelope_code_is_at_least_1000() {
        for code in ["validation_failed", "unauthorized", "anything", "not_found"] {
            assert!(error_code(code) >= 1000);
        }
    }
}
