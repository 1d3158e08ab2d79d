//! The HTTP layer's error: a domain [`Error`], or a request the framework could not even read,
//! rendered once as RFC 9457 `application/problem+json`.
//!
//! Handlers return `Result<_, AppError>` and use `?` on domain calls. Details of anything
//! unexpected are logged, never sent. Every error answer carries its [`ErrorCode`] as a
//! response extension, which the Cloudflare envelope reads for its numeric code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::db::gate::Unreachable;
use crate::error::{Error, ErrorCode, Input};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] Error),
    /// A request the framework could not read: malformed JSON, wrong content type, too big,
    /// no such route.
    #[error("{detail}")]
    Rejected {
        status: StatusCode,
        code: ErrorCode,
        detail: String,
    },
    /// The database gate is closed (see `db::gate`): refused without trying the database.
    #[error("the database is unavailable; try again shortly")]
    GateClosed,
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::Domain(err.into())
    }
}

impl AppError {
    pub fn rejected(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Rejected {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Rejected { status, .. } => *status,
            Self::GateClosed => StatusCode::SERVICE_UNAVAILABLE,
            Self::Domain(err) => status_of(err),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected { code, .. } => *code,
            Self::GateClosed => ErrorCode::ServiceUnavailable,
            Self::Domain(err) => err.code(),
        }
    }
}

/// The status of a domain error.
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::Invalid {
            input: Input::Body, ..
        }
        | Error::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Invalid {
            input: Input::Param,
            ..
        } => StatusCode::BAD_REQUEST,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::Gone { .. } => StatusCode::GONE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let retry_after = match &self {
            Self::Domain(Error::RateLimited { retry_after }) => Some(*retry_after),
            Self::Domain(Error::Unavailable(_)) | Self::GateClosed => Some(1),
            _ => None,
        };
        let unreachable = matches!(self, Self::Domain(Error::Unavailable(_)));
        let (detail, extra) = match self {
            Self::Domain(Error::Internal(err)) => {
                tracing::error!(error = ?err, "request failed");
                ("an internal error occurred".to_owned(), Map::new())
            }
            Self::Domain(Error::Unavailable(err)) => {
                tracing::warn!(error = %err, "database unavailable");
                let detail = "the database is unavailable; try again shortly".to_owned();
                (detail, Map::new())
            }
            Self::Domain(Error::Invalid { field, detail, .. }) => {
                let mut extra = Map::new();
                extra.insert("field".into(), Value::String(field));
                (detail, extra)
            }
            Self::Domain(Error::Conflict { detail, extra, .. })
            | Self::Domain(Error::Gone { detail, extra, .. }) => (detail, extra),
            other => (other.to_string(), Map::new()),
        };
        let mut response = problem(status, code, &detail, extra);
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unreachable {
            response.extensions_mut().insert(Unreachable);
        }
        response
    }
}

/// A problem+json response with a stable `code`; `extra` members are merged into the body.
pub fn problem(
    status: StatusCode,
    code: ErrorCode,
    detail: &str,
    extra: Map<String, Value>,
) -> Response {
    let mut body = json!({
        "type": format!("urn:warren:problem:{}", code.as_str()),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code.as_str(),
    });
    if let Value::Object(map) = &mut body {
        // Extension members never replace the standard ones.
        for (key, value) in extra {
            map.entry(key).or_insert(value);
        }
    }
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response.extensions_mut().insert(code);
    response
}
