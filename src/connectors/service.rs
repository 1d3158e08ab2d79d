//! The connector service: a tunnel's connectors and their connections, for both route
//! families.

use sqlx::Connection;
use uuid::Uuid;

use super::store::{self, Clocks};
use super::Client;
use crate::auth::{Principal, Scope};
use crate::error::Error;
use crate::events::{self, NewEvent};
use crate::tunnels::leases::Due;
use crate::tunnels::service::find;
use crate::tunnels::Tunnels;

/// The connector service; cheap to clone.
#[derive(Clone)]
pub struct Connectors {
    clocks: Clocks,
    tunnels: Tunnels,
}

impl Connectors {
    pub fn new(clocks: Clocks, tunnels: Tunnels) -> Self {
        Self { clocks, tunnels }
    }

    /// The tunnel's connectors with their connections; not found when the tunnel is not the
    /// caller's. Only `connector` when given.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn list(
        &self,
        caller: &Principal,
        tunnel_id: Uuid,
        connector: Option<Uuid>,
    ) -> Result<Vec<Client>, Error> {
        caller.require(Scope::TunnelsRead)?;
        let mut conn = self.tunnels.fresh(Due::tunnel(tunnel_id)).await?;
        let mut tx = conn.begin().await?;
        find(&mut tx, caller.account_id, tunnel_id).await?;
        let clients = store::list(
            &mut tx,
            caller.account_id,
            tunnel_id,
            connector,
            self.clocks,
        )
        .await?;
        tx.commit().await?;
        Ok(clients)
    }

    /// One connector of the tunnel; not found for an unknown tunnel or connector.
    pub async fn get(
        &self,
        caller: &Principal,
        tunnel_id: Uuid,
        connector_id: Uuid,
    ) -> Result<Client, Error> {
        self.list(caller, tunnel_id, Some(connector_id))
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NotFound("connector"))
    }

    /// Removes one connector (`client_id`, a UUID the caller sent as the parameter named
    /// `param`), or all of them, whatever their state; an unknown connector is not found.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn remove(
        &self,
        caller: &Principal,
        tunnel_id: Uuid,
        param: &str,
        client_id: Option<&str>,
    ) -> Result<(), Error> {
        caller.require(Scope::TunnelsWrite)?;
        let connector = client_id
            .map(|raw| {
                Uuid::try_parse(raw.trim()).map_err(|_| {
                    Error::bad_param(param, format!("{param} must be a UUID; got `{raw}`"))
                })
            })
            .transpose()?;
        let mut conn = self.tunnels.fresh(Due::tunnel(tunnel_id)).await?;
        let mut tx = conn.begin().await?;
        find(&mut tx, caller.account_id, tunnel_id).await?;
        let removed = store::delete(&mut tx, tunnel_id, connector).await?;
        if connector.is_some() && removed.is_empty() {
            return Err(Error::NotFound("connector"));
        }
        let events: Vec<NewEvent> = removed
            .iter()
            .map(|gone| gone.event(caller.into()))
            .collect();
        events::store::append(&mut tx, &events).await?;
        tx.commit().await?;
        tracing::info!(tunnel_id = %tunnel_id, removed = removed.len(), "connectors cleaned up");
        Ok(())
    }
}
