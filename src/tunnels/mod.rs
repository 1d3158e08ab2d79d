//! Tunnels: the state machine, their JSON shape, and the rules a request must follow.

pub mod batcher;
pub mod clock;
pub mod idempotency;
pub mod reaper;
pub mod slug;
pub mod store;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::http::error::AppError;
use crate::time::Timestamp;

/// `creating → active → stopping → stopped`, and `failed` from any live state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Active,
    Stopping,
    Stopped,
    Failed,
}

impl Status {
    pub const LIVE: [Status; 3] = [Status::Creating, Status::Active, Status::Stopping];
    pub const ALL: [Status; 5] = [
        Status::Creating,
        Status::Active,
        Status::Stopping,
        Status::Stopped,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Active => "active",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }

    /// The states an explicit request (PATCH) may move a tunnel to `self` from.
    pub fn patch_sources(self) -> &'static [Status] {
        match self {
            Status::Creating => &[],
            Status::Active => &[Status::Creating],
            Status::Stopping => &[Status::Creating, Status::Active],
            Status::Stopped => &[Status::Stopping],
            Status::Failed => &[Status::Creating, Status::Active, Status::Stopping],
        }
    }
}

/// A tunnel row as stored.
#[derive(Clone, Debug)]
pub struct Tunnel {
    pub id: Uuid,
    pub account_id: Uuid,
    pub slug: String,
    pub status: String,
    pub requested_port: i32,
    pub created_at: DateTime<Utc>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Tunnel {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }
}

/// A tunnel exactly as the API shows it (seed `list-tunnels-v1.txt`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Tunnel)]
pub struct TunnelView {
    pub id: Uuid,
    /// `{slug}.{base domain}`.
    #[schema(examples("my-app.example.com"))]
    pub hostname: String,
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", examples("my-app"))]
    pub slug: String,
    #[schema(schema_with = crate::http::schemas::tunnel_status)]
    pub status: String,
    #[schema(minimum = 1, maximum = 65535)]
    pub requested_port: i32,
    pub created_at: Timestamp,
    /// The lease of a live tunnel; `null` once it is `stopped` or `failed`.
    #[schema(required = true)]
    pub lease: Option<LeaseView>,
    #[schema(required = true)]
    pub stopped_at: Option<Timestamp>,
    #[schema(required = true)]
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Lease)]
pub struct LeaseView {
    /// `null` until the first heartbeat.
    #[schema(required = true)]
    pub last_heartbeat_at: Option<Timestamp>,
    pub expires_at: Timestamp,
}

impl TunnelView {
    pub fn new(tunnel: Tunnel, base_domain: &str) -> Self {
        Self {
            id: tunnel.id,
            hostname: format!("{}.{}", tunnel.slug, base_domain),
            lease: tunnel.lease_expires_at.map(|expires_at| LeaseView {
                last_heartbeat_at: tunnel.last_heartbeat_at.map(Timestamp),
                expires_at: Timestamp(expires_at),
            }),
            slug: tunnel.slug,
            status: tunnel.status,
            requested_port: tunnel.requested_port,
            created_at: Timestamp(tunnel.created_at),
            stopped_at: tunnel.stopped_at.map(Timestamp),
            last_error: tunnel.last_error,
        }
    }
}

pub const MAX_LAST_ERROR: usize = 1024;

/// `requestedPort` must be 1–65535.
pub fn validate_port(port: i64) -> Result<i32, AppError> {
    if (1..=65535).contains(&port) {
        Ok(port as i32)
    } else {
        Err(AppError::invalid(
            "requestedPort",
            format!("requestedPort must be between 1 and 65535, got {port}"),
        ))
    }
}

/// The PATCH body's rules: the target must be a known state, and `failed` needs a reason.
pub fn validate_patch(status: &str, last_error: Option<&str>) -> Result<Status, AppError> {
    let target = Status::parse(status).ok_or_else(|| {
        AppError::invalid(
            "status",
            format!(
                "status must be one of creating, active, stopping, stopped, failed; got `{status}`"
            ),
        )
    })?;
    match (target, last_error) {
        (Status::Failed, None) => Err(AppError::invalid(
            "lastError",
            "lastError is required when reporting a failure",
        )),
        (Status::Failed, Some(err)) if err.trim().is_empty() => Err(AppError::invalid(
            "lastError",
            "lastError must not be empty",
        )),
        (_, Some(err)) if err.chars().count() > MAX_LAST_ERROR => Err(AppError::invalid(
            "lastError",
            format!("lastError must be at most {MAX_LAST_ERROR} characters"),
        )),
        // PostgreSQL text cannot hold NUL; other control characters (a newline) may stay.
        (_, Some(err)) if err.contains('\0') => Err(AppError::invalid(
            "lastError",
            "lastError must not contain NUL characters",
        )),
        (other, Some(_)) if other != Status::Failed => Err(AppError::invalid(
            "lastError",
            "lastError may only be given with status `failed`",
        )),
        _ => Ok(target),
    }
}

/// The 409 for a transition the state machine does not allow.
pub fn invalid_transition(from: &str, to: Status) -> AppError {
    let mut err = AppError::conflict(
        "invalid_transition",
        format!("a tunnel cannot go from `{from}` to `{}`", to.as_str()),
    );
    if let AppError::Conflict { extra, .. } = &mut err {
        extra.insert("from".into(), from.into());
        extra.insert("to".into(), to.as_str().into());
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_sources_follow_the_spec_table() {
        assert_eq!(Status::Active.patch_sources(), &[Status::Creating]);
        assert_eq!(
            Status::Stopping.patch_sources(),
            &[Status::Creating, Status::Active]
        );
        assert_eq!(Status::Stopped.patch_sources(), &[Status::Stopping]);
        assert!(Status::Creating.patch_sources().is_empty());
    }

    #[test]
    fn failing_requires_a_reason_and_only_failing_takes_one() {
        assert!(validate_patch("failed", None).is_err());
        assert!(validate_patch("failed", Some("boom")).is_ok());
        assert!(validate_patch("stopping", Some("boom")).is_err());
        assert!(validate_patch("paused", None).is_err());
    }
}
