//! The native connector routes: `/v1/tunnels/{id}/connections` and
//! `/v1/tunnels/{id}/connectors/{connectorId}`, over [`crate::connectors::Connectors`] (which
//! the Cloudflare-compatible routes call too).

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
use crate::auth::Principal;
use crate::connectors::Client;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, cleanup))
        .routes(routes!(show))
}

/// The tunnel's connectors with their connections (Cloudflare's Client shape, camelCase).
#[utoipa::path(
    get, path = "/v1/tunnels/{id}/connections", tag = "connectors", operation_id = "listConnections",
    params(("id" = Uuid, Path, description = "The tunnel's id")),
    security(("bearer" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The connectors, with connections pending reconnect flagged", body = Vec<Client>),
        (status = 404, description = "No such tunnel in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<Client>>, AppError> {
    Ok(Json(state.connectors.list(&caller, id, None).await?))
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
#[tracing::instrument(skip_all, err(level = "info"))]
async fn cleanup(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<CleanupQuery>,
) -> Result<StatusCode, AppError> {
    let client_id = query.client_id.as_deref();
    state
        .connectors
        .remove(&caller, id, "clientId", client_id)
        .await?;
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
#[tracing::instrument(skip_all, err(level = "info"))]
async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath((id, connector_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Client>, AppError> {
    Ok(Json(state.connectors.get(&caller, id, connector_id).await?))
}
