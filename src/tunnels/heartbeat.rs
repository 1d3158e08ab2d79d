//! The heartbeat: the hot path. A lease renewal goes through the batcher; a connector report
//! rides along. No password check, ever.

use serde_json::Value;
use uuid::Uuid;

use super::leases::{self, Due, Renewal};
use super::service::{find, Tunnels};
use super::{Tunnel, TunnelView};
use crate::auth::{Principal, Scope};
use crate::connectors::{self, Client, Report};
use crate::error::{Error, ErrorCode};
use crate::events::{self, EventType, NewEvent};

impl Tunnels {
    /// Renews the lease (`creating` → `active`) and records the connector the agent reports.
    /// `connector` is validated before anything touches the database, so a bad report
    /// changes nothing, not even the lease. A tunnel that cannot be renewed is not found, or
    /// a conflict saying whether its lease ran out (`lease_expired`) or it was ended
    /// (`tunnel_not_live`).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn heartbeat(
        &self,
        caller: &Principal,
        id: Uuid,
        origin_ip: Option<&str>,
        connector: Option<&Value>,
    ) -> Result<TunnelView, Error> {
        caller.require(Scope::TunnelsHeartbeat)?;
        let report = match connector {
            Some(value) => connectors::parse_report(value)?,
            None => None,
        };
        let renewal = Renewal {
            account_id: caller.account_id,
            tunnel_id: id,
            connector: report.as_ref().map(|r| (r.id, r.fingerprint(origin_ip))),
            actor: caller.into(),
        };
        // The batch renews the lease, and bumps an unchanged connector along with it; a new
        // or changed connector is then written in a transaction of its own.
        let renewed = match (self.heartbeats.renew(renewal.clone()).await?, &report) {
            (Some(renewed), Some(report)) if !renewed.connector_seen => {
                self.record_connector(renewal, report, origin_ip).await?
            }
            (renewed, _) => renewed.map(|r| r.tunnel),
        };
        let result = if renewed.is_some() {
            "accepted"
        } else {
            "refused"
        };
        self.meter.record(|| {
            metrics::counter!("warren_heartbeats_total", "result" => result).increment(1)
        });
        match renewed {
            Some(tunnel) => Ok(self.view(tunnel)),
            None => Err(self.refusal(caller, id).await?),
        }
    }

    /// Renews the lease again and writes the connector's report in one transaction: the
    /// renewal locks the tunnel's row, so the reaper cannot end it in between. A connector
    /// that is new logs `connector.connected.v1`.
    async fn record_connector(
        &self,
        renewal: Renewal,
        report: &Report,
        origin_ip: Option<&str>,
    ) -> Result<Option<Tunnel>, Error> {
        let mut tx = self.db.begin().await?;
        let (tunnel_id, account_id, actor) = (renewal.tunnel_id, renewal.account_id, renewal.actor);
        let settings = &self.settings;
        let renewed = leases::renew_many(
            &mut tx,
            &[renewal],
            settings.lease_ttl,
            &settings.base_domain,
        )
        .await?;
        let Some(row) = renewed.into_iter().next() else {
            return Ok(None);
        };
        if connectors::store::record_report(&mut tx, tunnel_id, report, origin_ip).await? {
            let connected = NewEvent::new(
                account_id,
                EventType::ConnectorConnected,
                tunnel_id,
                actor,
                Client::reported(report, origin_ip),
            );
            events::store::append(&mut tx, &[connected]).await?;
        }
        tx.commit().await?;
        Ok(Some(row.tunnel))
    }

    /// Why a heartbeat renewed nothing: not found, `lease_expired` or `tunnel_not_live`.
    async fn refusal(&self, caller: &Principal, id: Uuid) -> Result<Error, Error> {
        let mut conn = self.fresh(Due::tunnel(id)).await?;
        let tunnel = find(&mut conn, caller.account_id, id).await?;
        let err = if tunnel
            .status()
            .is_lease_expiry(tunnel.last_error.as_deref())
        {
            Error::conflict(
                ErrorCode::LeaseExpired,
                "the tunnel's lease expired before this heartbeat; create the tunnel again",
            )
        } else {
            Error::conflict(
                ErrorCode::TunnelNotLive,
                format!("the tunnel is `{}`; heartbeats are refused", tunnel.status),
            )
        };
        Ok(err.with("tunnelStatus", tunnel.status))
    }
}
