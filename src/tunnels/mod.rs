//! Tunnels: the state machine, their JSON shape, and the rules a request must follow.
//!
//! [`Tunnels`] is the service both route families call; [`store`] holds the SQL, [`batcher`]
//! the heartbeat group commit, [`reaper`] and [`clock`] the lease expiry.

/// A [`Tunnel`] from a record (of `query!`) that selected every tunnel column, moving its
/// fields out and leaving the record's other columns readable.
macro_rules! tunnel_of {
    ($r:ident) => {
        $crate::tunnels::Tunnel {
            id: $r.id,
            account_id: $r.account_id,
            slug: $r.slug,
            status: $r.status,
            requested_port: $r.requested_port,
            created_at: $r.created_at,
            last_heartbeat_at: $r.last_heartbeat_at,
            lease_expires_at: $r.lease_expires_at,
            stopped_at: $r.stopped_at,
            last_error: $r.last_error,
        }
    };
}

pub mod batcher;
pub mod clock;
mod heartbeat;
pub mod idempotency;
pub mod leases;
mod list;
pub mod reaper;
mod search;
pub mod service;
pub mod slug;
pub mod store;
pub mod timeline;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use uuid::Uuid;

use crate::error::{Error, ErrorCode};
use crate::time::Timestamp;

pub use list::{ListRequest, Page, MAX_PAGE};
pub use search::{Filters, Found, SearchRequest, SEARCH_PAGE};
pub use service::{NewTunnel, Settings, Tunnels};

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

    /// Whether this end came from the reaper, not a request: the lease ran out.
    pub fn is_lease_expiry(self, last_error: Option<&str>) -> bool {
        self == Status::Failed && last_error == Some(LEASE_EXPIRED)
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

/// Where a page of the tunnel list starts: after this tunnel in newest-first order. Its text
/// form is `{createdAt in microseconds}_{id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// The cursor of the page that follows `last`.
    pub fn after(last: &Tunnel) -> Self {
        Self {
            created_at: last.created_at,
            id: last.id,
        }
    }

    /// A cursor from its text form; `None` unless it is one (and within what PostgreSQL can
    /// store, since a cursor is made from a creation time).
    pub fn parse(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('_')?;
        Some(Self {
            created_at: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)
                .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(t)))?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}_{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }
}

/// A tunnel exactly as the API shows it.
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
    #[schema(schema_with = status_schema)]
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

/// The tunnel states, from [`Status::ALL`], as the OpenAPI document lists them.
pub fn status_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Status::ALL.map(Status::as_str)))
        .into()
}

pub const MAX_LAST_ERROR: usize = 1024;

/// The `lastError` of a tunnel the reaper failed (the statements that expire leases write it).
pub const LEASE_EXPIRED: &str = "lease expired";

/// `requestedPort` must be 1–65535.
pub fn validate_port(port: i64) -> Result<i32, Error> {
    if (1..=65535).contains(&port) {
        Ok(port as i32)
    } else {
        Err(Error::invalid(
            "requestedPort",
            format!("requestedPort must be between 1 and 65535, got {port}"),
        ))
    }
}

/// The PATCH body's rules: the target must be a known state, and `failed` needs a reason.
pub fn validate_patch(status: &str, last_error: Option<&str>) -> Result<Status, Error> {
    let target = Status::parse(status).ok_or_else(|| {
        Error::invalid(
            "status",
            format!(
                "status must be one of creating, active, stopping, stopped, failed; got `{status}`"
            ),
        )
    })?;
    match (target, last_error) {
        (Status::Failed, None) => Err(Error::invalid(
            "lastError",
            "lastError is required when reporting a failure",
        )),
        (Status::Failed, Some(err)) if err.trim().is_empty() => {
            Err(Error::invalid("lastError", "lastError must not be empty"))
        }
        (_, Some(err)) if err.chars().count() > MAX_LAST_ERROR => Err(Error::invalid(
            "lastError",
            format!("lastError must be at most {MAX_LAST_ERROR} characters"),
        )),
        // PostgreSQL text cannot hold NUL; other control characters (a newline) may stay.
        (_, Some(err)) if err.contains('\0') => Err(Error::invalid(
            "lastError",
            "lastError must not contain NUL characters",
        )),
        (other, Some(_)) if other != Status::Failed => Err(Error::invalid(
            "lastError",
            "lastError may only be given with status `failed`",
        )),
        _ => Ok(target),
    }
}

/// The conflict for a transition the state machine does not allow, naming both states.
pub fn invalid_transition(from: &str, to: Status) -> Error {
    Error::conflict(
        ErrorCode::InvalidTransition,
        format!("a tunnel cannot go from `{from}` to `{}`", to.as_str()),
    )
    .with("from", from)
    .with("to", to.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_sources_follow_the_state_machine() {
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
