//! The HTTP layer: two thin adapters over the domain services — the native routes (one
//! module per resource, each with its `router()`) and the Cloudflare-compatible routes
//! ([`compat`]) — with the error, extractor and OpenAPI code they share; and the web
//! dashboard ([`dashboard`]), HTML pages over the same services.

pub mod auth;
pub mod caller;
pub mod compat;
pub mod connectors;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod fleet;
pub mod health;
pub mod heartbeat;
pub mod metrics;
pub mod openapi;
pub mod schemas;
pub mod tokens;
pub mod tunnel_list;
pub mod tunnels;
pub mod webhook_deliveries;
pub mod webhooks;

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};
use serde_json::Map;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::db::gate::Unreachable;
use crate::error::ErrorCode;
use crate::state::AppState;
use error::{problem, AppError};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A request still running after this is answered 503: the longest a SIGTERM drain waits for
/// a request in flight (the Helm chart's grace period is checked against it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route of the service, with the layers every request goes through: the API's
/// routes, exactly those the OpenAPI document describes (see [`openapi::api`]), and beside
/// them the web dashboard's pages ([`dashboard::router`]), which are not part of the API.
pub fn router(state: AppState) -> Router {
    let (routes, _document): (Router<AppState>, _) = openapi::api().split_for_parts();
    routes
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    HeaderName::from_static("x-auth-key"),
                ]))
                .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(MatchedPath::as_str)
                        .unwrap_or("unmatched");
                    tracing::info_span!("http", method = %req.method(), route)
                }))
                .layer(middleware::from_fn_with_state(state.clone(), edge))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    REQUEST_TIMEOUT,
                )),
        )
        .with_state(state)
}

/// Paths that never touch the database, so they answer while the gate is closed.
const WITHOUT_DATABASE: [&str; 3] = ["/healthz", "/metrics", "/openapi.yaml"];

/// What every request goes through, in one middleware rather than four: each `from_fn`
/// layer boxes its future and clones the service behind it on every request, which the
/// heartbeat profile showed as a fifth of the process's CPU.
///
/// - While the database is unreachable, database-backed requests are refused at once (see
///   [`crate::db::gate`]); a response that found the database gone closes the gate.
/// - Error answers without a body (the timeout's, a panic's) become problem+json, and any
///   problem+json answer to a `/client/v4` request becomes the envelope.
/// - Every request is counted and timed by method, matched route and status.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let is_compat = compat::is_compat(req.uri().path());
    let gate = &state.gate;
    let response = if gate.is_closed() && !WITHOUT_DATABASE.contains(&req.uri().path()) {
        AppError::GateClosed.into_response()
    } else {
        let response = next.run(req).await;
        if response.extensions().get::<Unreachable>().is_some() {
            gate.close();
        }
        ensure_problem(response)
    };
    let response = if is_compat {
        compat::envelope_errors(response).await
    } else {
        response
    };
    metrics::track(&state.meter, method, route, start, &response);
    response
}

async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::rejected(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::rejected(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{} does not accept {method}", uri.path()),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    AppError::from(crate::error::Error::internal(anyhow::anyhow!(
        "handler panicked"
    )))
    .into_response()
}

/// Error answers that some layer produced without a body (a timeout, for one) become
/// problem+json like every other error.
fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    let has_type = response.headers().contains_key(header::CONTENT_TYPE);
    if !(status.is_client_error() || status.is_server_error()) || has_type {
        return response;
    }
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        s if s.is_server_error() => ErrorCode::InternalError,
        _ => ErrorCode::BadRequest,
    };
    let detail = status.canonical_reason().unwrap_or("error").to_lowercase();
    let mut fresh = problem(status, code, &detail, Map::new());
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    // A timed-out request gets the same advice as every other 503 (see the OpenAPI document).
    if status == StatusCode::SERVICE_UNAVAILABLE {
        fresh
            .headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static("1"));
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bodiless_503_such_as_the_timeouts_becomes_problem_json_with_retry_after() {
        let bare = StatusCode::SERVICE_UNAVAILABLE.into_response();
        let answer = ensure_problem(bare);
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(answer.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn a_bodiless_413_becomes_problem_json_without_retry_after() {
        let answer = ensure_problem(StatusCode::PAYLOAD_TOO_LARGE.into_response());
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(!answer.headers().contains_key(header::RETRY_AFTER));
    }
}
