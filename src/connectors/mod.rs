//! Connectors (agent processes serving a tunnel, several for high availability) and their
//! connections to edge locations: the report a heartbeat carries, its validation, and
//! Cloudflare's Client shape, which the API answers.

pub mod report;
mod service;
pub mod store;
pub mod sweeper;

use serde::Serialize;
use uuid::Uuid;

use crate::time::Timestamp;

pub use report::{parse_report, Report, ReportedConnection};
pub use service::Connectors;

/// A connector as the API shows it: Cloudflare's Client (camelCase here; the compatible
/// routes rename the keys to Cloudflare's snake_case).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Connector)]
pub struct Client {
    pub id: Uuid,
    #[schema(required = true, examples("linux_amd64"))]
    pub arch: Option<String>,
    #[schema(required = true, minimum = 0)]
    pub config_version: Option<i64>,
    #[schema(inline)]
    pub conns: Vec<Connection>,
    pub features: Vec<String>,
    #[schema(required = true)]
    pub run_at: Option<Timestamp>,
    #[schema(required = true, examples("2026.1.0"))]
    pub version: Option<String>,
}

impl Client {
    /// The connector as its report describes it, every connection live.
    pub fn reported(report: &Report, origin_ip: Option<&str>) -> Self {
        Self {
            id: report.id,
            arch: report.arch.clone(),
            config_version: report.config_version,
            conns: report
                .connections
                .iter()
                .map(|c| Connection {
                    id: c.id,
                    client_id: report.id,
                    client_version: report.version.clone(),
                    colo_name: c.colo_name.clone(),
                    is_pending_reconnect: false,
                    opened_at: c.opened_at.map(Timestamp),
                    origin_ip: origin_ip.map(str::to_owned),
                    uuid: c.id,
                })
                .collect(),
            features: report.features.clone(),
            run_at: report.run_at.map(Timestamp),
            version: report.version.clone(),
        }
    }

    /// A connector as it last reported itself, without its connections (they are gone).
    pub fn last_known(
        id: Uuid,
        arch: Option<String>,
        version: Option<String>,
        config_version: Option<i64>,
        features: Vec<String>,
        run_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        Self {
            id,
            arch,
            config_version,
            conns: Vec::new(),
            features,
            run_at: run_at.map(Timestamp),
            version,
        }
    }
}

/// One connection of a [`Client`]. `uuid` and `id` are both the connection's UUID, as
/// Cloudflare defines them; `clientId` is the connector's id, `clientVersion` its version.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: Uuid,
    pub client_id: Uuid,
    #[schema(required = true)]
    pub client_version: Option<String>,
    #[schema(required = true, examples("FRA"))]
    pub colo_name: Option<String>,
    pub is_pending_reconnect: bool,
    #[schema(required = true)]
    pub opened_at: Option<Timestamp>,
    #[schema(required = true)]
    pub origin_ip: Option<String>,
    pub uuid: Uuid,
}
