//! The event log: what happened to an account's tunnels, connectors, devices and tokens, in
//! one order per account, written in the same transaction as the change it records (see
//! `migrations/0013_events.sql` for how ids stay in commit order).
//!
//! Services append with [`store::append`]; statements that change many rows at once (the
//! reaper, the heartbeat batch) call the SQL function `append_events` themselves. Readers page
//! through the log ([`Events::page`]) or follow it live ([`Events::subscribe`]), woken by the
//! database's notifications through the [`hub::Hub`].

pub mod hub;
pub mod retention;
mod service;
pub mod store;
mod stream;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Principal;
use crate::time::Timestamp;

pub use service::{EventQuery, Events, Page, MAX_PAGE};
pub use stream::{StreamItem, Subscription};

/// The kinds of event, each versioned: a change to a kind's `data` is a new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    TunnelCreated,
    TunnelActive,
    TunnelStopping,
    TunnelStopped,
    TunnelFailed,
    TunnelDeleted,
    ConnectorConnected,
    ConnectorDisconnected,
    DeviceStatusChanged,
    TokenCreated,
    TokenRevoked,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        EventType::TunnelCreated,
        EventType::TunnelActive,
        EventType::TunnelStopping,
        EventType::TunnelStopped,
        EventType::TunnelFailed,
        EventType::TunnelDeleted,
        EventType::ConnectorConnected,
        EventType::ConnectorDisconnected,
        EventType::DeviceStatusChanged,
        EventType::TokenCreated,
        EventType::TokenRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TunnelCreated => "tunnel.created.v1",
            Self::TunnelActive => "tunnel.active.v1",
            Self::TunnelStopping => "tunnel.stopping.v1",
            Self::TunnelStopped => "tunnel.stopped.v1",
            Self::TunnelFailed => "tunnel.failed.v1",
            Self::TunnelDeleted => "tunnel.deleted.v1",
            Self::ConnectorConnected => "connector.connected.v1",
            Self::ConnectorDisconnected => "connector.disconnected.v1",
            Self::DeviceStatusChanged => "device.status_changed.v1",
            Self::TokenCreated => "token.created.v1",
            Self::TokenRevoked => "token.revoked.v1",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The event of a tunnel entering `status`.
    pub fn tunnel_entered(status: crate::tunnels::Status) -> Self {
        use crate::tunnels::Status;
        match status {
            Status::Creating => Self::TunnelCreated,
            Status::Active => Self::TunnelActive,
            Status::Stopping => Self::TunnelStopping,
            Status::Stopped => Self::TunnelStopped,
            Status::Failed => Self::TunnelFailed,
        }
    }
}

/// Who caused an event: a user (with a login's access token), an API token, or Warren itself
/// (a lease or a reconnect grace that ran out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    Token(Uuid),
    Reaper,
}

impl Actor {
    /// `{"type": "user" | "token", "id": …}` or `{"type": "reaper"}`.
    pub fn to_json(self) -> Value {
        match self {
            Self::User(id) => json!({"type": "user", "id": id}),
            Self::Token(id) => json!({"type": "token", "id": id}),
            Self::Reaper => json!({"type": "reaper"}),
        }
    }
}

impl From<&Principal> for Actor {
    fn from(principal: &Principal) -> Self {
        match principal.token_id {
            Some(id) => Self::Token(id),
            None => Self::User(principal.user_id),
        }
    }
}

/// An event to append.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub account_id: Uuid,
    pub kind: EventType,
    pub subject: Uuid,
    pub actor: Actor,
    /// The object as the API shows it.
    pub data: Value,
}

impl NewEvent {
    pub fn new(
        account_id: Uuid,
        kind: EventType,
        subject: Uuid,
        actor: Actor,
        data: impl Serialize,
    ) -> Self {
        Self {
            account_id,
            kind,
            subject,
            actor,
            data: serde_json::to_value(data).unwrap_or(Value::Null),
        }
    }
}

/// An event as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The event's place in its account's log: 1, 2, 3, … without gaps.
    #[schema(minimum = 1)]
    pub id: i64,
    /// `tunnel.failed.v1`, …
    #[serde(rename = "type")]
    #[schema(schema_with = type_schema)]
    pub kind: String,
    pub occurred_at: Timestamp,
    /// 32 lowercase hex characters.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub account_id: String,
    /// The tunnel (also for its connectors' events), device or token the event is about.
    pub subject: Uuid,
    /// Who caused it: `{"type": "user" | "token", "id": …}` or `{"type": "reaper"}`.
    #[schema(value_type = Object)]
    pub principal: Value,
    /// The object as the API showed it when the event happened.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl Event {
    pub fn new(
        account_id: Uuid,
        id: i64,
        kind: String,
        occurred_at: DateTime<Utc>,
        subject: Uuid,
        principal: Value,
        data: Value,
    ) -> Self {
        Self {
            id,
            kind,
            occurred_at: Timestamp(occurred_at),
            account_id: account_id.simple().to_string(),
            subject,
            principal,
            data,
        }
    }
}

/// The event types, from [`EventType::ALL`], as the OpenAPI document lists them.
pub fn type_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(EventType::ALL.map(EventType::as_str)))
        .into()
}

/// The `types` filter as the API takes it: empty (no filter), or known event types joined by
/// commas, nothing else (no spaces).
pub fn types_filter_schema() -> utoipa::openapi::schema::Schema {
    let names: Vec<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().replace('.', "\\."))
        .collect();
    let one = format!("({})", names.join("|"));
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(
            "Comma-separated event types, e.g. `tunnel.failed.v1,connector.disconnected.v1`.",
        ))
        .pattern(Some(format!("^$|^{one}(,{one})*$")))
        .examples(["tunnel.failed.v1,connector.disconnected.v1"])
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_versioned_and_parses_back() {
        for kind in EventType::ALL {
            assert!(kind.as_str().ends_with(".v1"), "{kind:?}");
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
    }
}
