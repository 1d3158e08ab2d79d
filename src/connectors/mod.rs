//! Connectors (agent processes serving a tunnel, several for high availability) and their
//! connections to edge locations: the report a heartbeat carries, its validation, and the
//! seed's Client shape (`cloudflare-tunnel-connections.txt`).

pub mod origin;
pub mod report;
pub mod store;
pub mod sweeper;

use serde::Serialize;
use uuid::Uuid;

use crate::time::Timestamp;

pub use report::{parse_report, Report, ReportedConnection};

/// A connector as the API shows it: the seed's Client (camelCase here; the compatible routes
/// rename the keys to the seed's snake_case).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub id: Uuid,
    pub arch: Option<String>,
    pub config_version: Option<i64>,
    pub conns: Vec<Connection>,
    pub features: Vec<String>,
    pub run_at: Option<Timestamp>,
    pub version: Option<String>,
}

/// One connection of a [`Client`]. `uuid` and `id` are both the connection's UUID, as the
/// seed defines them; `clientId` is the connector's id, `clientVersion` its version.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: Uuid,
    pub client_id: Uuid,
    pub client_version: Option<String>,
    pub colo_name: Option<String>,
    pub is_pending_reconnect: bool,
    pub opened_at: Option<Timestamp>,
    pub origin_ip: Option<String>,
    pub uuid: Uuid,
}
