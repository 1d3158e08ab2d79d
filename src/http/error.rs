//! The one error type of the HTTP layer, rendered once as RFC 9457 `application/problem+json`.
//!
//! Handlers and store functions return `Result<_, AppError>` and use `?`; database errors are
//! classified here (constraint names become 409/422, an unreachable database becomes 503), and
//! details of anything unexpected are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::db::gate::Unreachable;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field of the request is invalid (422, or 400 for query and path values).
    #[error("{detail}")]
    Invalid {
        status: StatusCode,
        field: String,
        detail: String,
    },
    /// A request the framework could not even read: malformed JSON, wrong content type, too big.
    #[error("{detail}")]
    Rejected {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A conflict with the current state; `extra` members are added to the problem body.
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        extra: Map<String, Value>,
    },
    #[error("too many attempts; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database gate is closed (see `db::gate`): refused without trying the database.
    #[error("the database is unavailable; try again shortly")]
    GateClosed,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// A body field failed validation: 422 `validation_failed` naming the field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A query or path value is invalid: 400 `validation_failed` naming the parameter.
    pub fn bad_param(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            status: StatusCode::BAD_REQUEST,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { status, .. } | Self::Rejected { status, .. } => *status,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::GateClosed => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "validation_failed",
            Self::Rejected { code, .. } | Self::Conflict { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) | Self::GateClosed => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            return Self::Unavailable(err);
        }
        if let Some(db) = err.as_database_error() {
            match db.constraint() {
                Some("users_email_key") => {
                    return Self::conflict("email_taken", "this email is already registered")
                }
                Some("tunnels_live_slug_key") => {
                    return Self::conflict("slug_taken", "this slug is held by a live tunnel")
                }
                Some("tunnels_transition_allowed") => {
                    return Self::conflict("invalid_transition", db.message().to_owned())
                }
                _ => {}
            }
        }
        Self::Internal(err.into())
    }
}

/// Errors that mean "the database cannot be reached right now", answered 503, not 500.
pub(crate) fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: shutdown / cannot connect now.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<sqlx::Error>() {
            Ok(sql) => sql.into(),
            Err(other) => Self::Internal(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let retry_after = match &self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Unavailable(_) | Self::GateClosed => Some(1),
            _ => None,
        };
        let unreachable = matches!(self, Self::Unavailable(_));
        let (detail, extra) = match self {
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                ("an internal error occurred".to_owned(), Map::new())
            }
            Self::Unavailable(err) => {
                tracing::warn!(error = %err, "database unavailable");
                let detail = "the database is unavailable; try again shortly".to_owned();
                (detail, Map::new())
            }
            Self::Invalid { field, detail, .. } => {
                let mut extra = Map::new();
                extra.insert("field".into(), Value::String(field));
                (detail, extra)
            }
            Self::Conflict { detail, extra, .. } => (detail, extra),
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
    code: &str,
    detail: &str,
    extra: Map<String, Value>,
) -> Response {
    let mut body = json!({
        "type": format!("urn:warren:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
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
    response
}
