//! The native connector routes: `/v1/tunnels/{id}/connections` and
//! `/v1/tunnels/{id}/connectors/{connectorId}`. The operations are shared with the
//! Cloudflare-compatible routes (`crate::compat::tunnels`), which only change the shape.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiPath, ApiQuery};
use super::tunnels::current;
use crate::auth::{Principal, Scope};
use crate::connectors::store::{self, Clocks};
use crate::connectors::Client;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, cleanup))
        .routes(routes!(show))
}

fn clocks(state: &AppState) -> Clocks {
    Clocks {
        lease_ttl: state.config.lease_ttl,
        grace: state.config.reconnect_grace,
    }
}

/// The tunnel's connectors with their connections; 404 when the tunnel is not the caller's.
pub(crate) async fn connectors_of(
    state: &AppState,
    caller: &Principal,
    tunnel_id: Uuid,
    connector: Option<Uuid>,
) -> Result<Vec<Client>, AppError> {
    caller.require(Scope::TunnelsRead)?;
    let mut tx = state.db.begin().await?;
    current(&mut tx, caller.account_id, tunnel_id).await?;
    let clients = store::list(
        &mut tx,
        caller.account_id,
        tunnel_id,
        connector,
        clocks(state),
    )
    .await?;
    tx.commit().await?;
    Ok(clients)
}

/// One connector of the tunnel; 404 for an unknown tunnel or connector.
pub(crate) async fn connector(
    state: &AppState,
    caller: &Principal,
    tunnel_id: Uuid,
    connector_id: Uuid,
) -> Result<Client, AppError> {
    connectors_of(state, caller, tunnel_id, Some(connector_id))
        .await?
        .into_iter()
        .next()
        .ok_or(AppError::NotFound("connector"))
}

/// Removes one connector (`client_id`, validated as a UUID under the name `param`) or all of
/// them, whatever their state; an unknown connector is 404.
pub(crate) async fn remove_connectors(
    state: &AppState,
    caller: &Principal,
    tunnel_id: Uuid,
    param: &str,
    client_id: Option<&str>,
) -> Result<(), AppError> {
    caller.require(Scope::TunnelsWrite)?;
    let connector = client_id
        .map(|raw| {
            Uuid::try_parse(raw.trim()).map_err(|_| {
                AppError::bad_param(param, format!("{param} must be a UUID; got `{raw}`"))
            })
        })
        .transpose()?;
    let mut tx = state.db.begin().await?;
    current(&mut tx, caller.account_id, tunnel_id).await?;
    let removed = store::delete(&mut tx, tunnel_id, connector).await?;
    if connector.is_some() && removed == 0 {
        return Err(AppError::NotFound("connector"));
    }
    tx.commit().await?;
    tracing::info!(tunnel_id = %tunnel_id, removed, "connectors cleaned up");
    Ok(())
}

/// The tunnel's connectors with their connections (the seed's Client shape, camelCase).
#[utoipa::path(
    get, path = "/v1/tunnels/{id}/connections", tag = "connectors", operation_id = "listConnections",
    params(("id" = Uuid, Path, description = "The tunnel's id")),
    security(("bearer" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The connectors, with connections pending reconnect flagged", body = Vec<Client>),
        (status = 404, description = "No such tunnel in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err)]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<Client>>, AppError> {
    Ok(Json(connectors_of(&state, &caller, id, None).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CleanupQuery {
    /// The connector to remove; all of them when absent.
    #[param(value_type = Option<Uuid>)]
    client_id: Option<String>,
}

/// Removes one connector, or all of them, whatever their state.
#[utoipa::path(
    delete, path = "/v1/tunnels/{id}/connections", tag = "connectors", operation_id = "deleteConnections",
    params(("id" = Uuid, Path, description = "The tunnel's id"), CleanupQuery),
    security(("bearer" = ["tunnels:write"])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such tunnel in the caller's account, or no such connector (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err)]
async fn cleanup(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<CleanupQuery>,
) -> Result<StatusCode, AppError> {
    remove_connectors(&state, &caller, id, "clientId", query.client_id.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One connector of the tunnel.
#[utoipa::path(
    get, path = "/v1/tunnels/{id}/connectors/{connector_id}", tag = "connectors", operation_id = "getConnector",
    params(
        ("id" = Uuid, Path, description = "The tunnel's id"),
        ("connector_id" = Uuid, Path, description = "The connector's id"),
    ),
    security(("bearer" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The connector", body = Client),
        (status = 404, description = "No such tunnel in the caller's account, or no such connector (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err)]
async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath((id, connector_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Client>, AppError> {
    Ok(Json(connector(&state, &caller, id, connector_id).await?))
}
