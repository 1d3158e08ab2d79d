//! The domain's one error type, and the one list of error codes.
//!
//! Domain services and stores return [`Error`]; they know nothing of HTTP. The HTTP layer
//! (`crate::http::error`) turns an [`Error`] into a status and a body once, for both route
//! families: the problem+json `code` and the Cloudflare envelope's numeric code both come
//! from [`ErrorCode`], so the two can never disagree or fall back to a default.
//!
//! Database errors are classified here: the names of the constraints that stand for a rule
//! (a taken email or slug, a forbidden transition) become conflicts, an unreachable database
//! becomes [`Error::Unavailable`], and anything else is internal (logged, never shown).

use serde_json::{Map, Value};

/// Every error code an answer can carry: the problem+json `code` ([`ErrorCode::as_str`]) and
/// the Cloudflare envelope's `errors[].code` ([`ErrorCode::cloudflare`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ValidationFailed,
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    SlugTaken,
    EmailTaken,
    InvalidTransition,
    TunnelNotLive,
    TunnelLive,
    LeaseExpired,
    IdempotencyKeyReused,
    RateLimited,
    ServiceUnavailable,
    InternalError,
    EventsExpired,
    EventPositionAhead,
    WebhookDisabled,
    WebhookLimitReached,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::ValidationFailed,
        ErrorCode::MalformedJson,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::SlugTaken,
        ErrorCode::EmailTaken,
        ErrorCode::InvalidTransition,
        ErrorCode::TunnelNotLive,
        ErrorCode::TunnelLive,
        ErrorCode::LeaseExpired,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::RateLimited,
        ErrorCode::ServiceUnavailable,
        ErrorCode::InternalError,
        ErrorCode::EventsExpired,
        ErrorCode::EventPositionAhead,
        ErrorCode::WebhookDisabled,
        ErrorCode::WebhookLimitReached,
    ];

    /// The stable snake_case name: problem+json's `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::SlugTaken => "slug_taken",
            Self::EmailTaken => "email_taken",
            Self::InvalidTransition => "invalid_transition",
            Self::TunnelNotLive => "tunnel_not_live",
            Self::TunnelLive => "tunnel_live",
            Self::LeaseExpired => "lease_expired",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RateLimited => "rate_limited",
            Self::ServiceUnavailable => "service_unavailable",
            Self::InternalError => "internal_error",
            Self::EventsExpired => "events_expired",
            Self::EventPositionAhead => "event_position_ahead",
            Self::WebhookDisabled => "webhook_disabled",
            Self::WebhookLimitReached => "webhook_limit_reached",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The Cloudflare envelope's numeric code. Cloudflare's own authentication errors are
    /// 10000 and 10001; every other code is at least 1000, and codes that a client would
    /// handle alike share a number.
    pub fn cloudflare(self) -> u32 {
        match self {
            Self::BadRequest
            | Self::IdempotencyKeyReused
            | Self::RateLimited
            | Self::InternalError => 1000,
            Self::ValidationFailed => 1001,
            Self::MalformedJson => 1002,
            Self::UnsupportedMediaType => 1003,
            Self::PayloadTooLarge => 1004,
            Self::NotFound => 1005,
            Self::MethodNotAllowed => 1006,
            Self::InvalidTransition | Self::TunnelNotLive | Self::TunnelLive => 1007,
            Self::SlugTaken | Self::EmailTaken => 1008,
            Self::LeaseExpired => 1009,
            Self::ServiceUnavailable => 1010,
            Self::EventsExpired => 1011,
            Self::EventPositionAhead => 1012,
            Self::WebhookDisabled | Self::WebhookLimitReached => 1013,
            Self::Unauthorized => 10000,
            Self::Forbidden => 10001,
        }
    }
}

/// Where an invalid value came from: a body field, or a query, path or header parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Body,
    Param,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value of the request is invalid; `field` names it.
    #[error("{detail}")]
    Invalid {
        input: Input,
        field: String,
        detail: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A conflict with the current state; `extra` members are added to the answer.
    #[error("{detail}")]
    Conflict {
        code: ErrorCode,
        detail: String,
        extra: Map<String, Value>,
    },
    /// A well-formed request the rules refuse for a reason other than one field's value.
    #[error("{detail}")]
    Unprocessable { code: ErrorCode, detail: String },
    /// What was asked for existed once and is gone for good; `extra` says where to go on.
    #[error("{detail}")]
    Gone {
        code: ErrorCode,
        detail: String,
        extra: Map<String, Value>,
    },
    #[error("too many attempts; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A body field is invalid.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            input: Input::Body,
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A query, path or header parameter is invalid.
    pub fn bad_param(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            input: Input::Param,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// Adds a member to a conflict's or a gone's answer (other errors carry none).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Self::Conflict { extra, .. } | Self::Gone { extra, .. } = &mut self {
            extra.insert(key.to_owned(), value.into());
        }
        self
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::ValidationFailed,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::Gone { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            return Self::Unavailable(err);
        }
        if let Some(db) = err.as_database_error() {
            match db.constraint() {
                Some("users_email_key") => {
                    return Self::conflict(
                        ErrorCode::EmailTaken,
                        "this email is already registered",
                    )
                }
                Some("tunnels_live_slug_key") => {
                    return Self::conflict(
                        ErrorCode::SlugTaken,
                        "this slug is held by a live tunnel",
                    )
                }
                Some("tunnels_transition_allowed") => {
                    return Self::conflict(ErrorCode::InvalidTransition, db.message().to_owned())
                }
                _ => {}
            }
        }
        Self::Internal(err.into())
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<sqlx::Error>() {
            Ok(sql) => sql.into(),
            Err(other) => Self::Internal(other),
        }
    }
}

/// Errors that mean "the database cannot be reached right now" (503, not 500).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        // The other end broke off mid-conversation: a proxy or load balancer in front of a
        // primary that is gone accepts the connection, then closes it during the startup
        // (`unexpected response from SSLRequest`). A failover, not a bug of ours.
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: shutdown / cannot connect now.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// Whether PostgreSQL aborted the transaction to break a deadlock (it may be tried again).
pub fn is_deadlock(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.code().as_deref() == Some("40P01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_unique_name_and_a_cloudflare_code_of_at_least_1000() {
        let mut names = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(names.insert(code.as_str()), "{code:?} repeats a name");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!(code.cloudflare() >= 1000, "{code:?}");
        }
    }

    #[test]
    fn a_connection_broken_off_during_the_startup_is_unavailable_not_internal() {
        let broken = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(matches!(Error::from(broken), Error::Unavailable(_)));
        let bug = sqlx::Error::ColumnNotFound("x".into());
        assert!(matches!(Error::from(bug), Error::Internal(_)));
    }
}
