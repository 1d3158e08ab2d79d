//! The native tunnel routes: `/v1/tunnels…`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Principal;
use crate::state::AppState;
use crate::tunnels::{NewTunnel, TunnelView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show, update, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTunnel {
    /// A DNS label; generated when absent.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", examples("my-app"))]
    slug: Option<String>,
    #[schema(minimum = 1, maximum = 65535, examples(3000))]
    requested_port: i64,
}

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Creates a tunnel in state `creating` with a fresh lease.
#[utoipa::path(
    post, path = "/v1/tunnels", tag = "tunnels", operation_id = "createTunnel",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        pattern = "^[!-~]+$",
        description = "A retry with the same key and body within 24 hours returns the same tunnel; the same key with another body is a 422")),
    request_body = CreateTunnel,
    security(("bearer" = ["tunnels:write"])),
    responses(
        (status = 201, description = "The new tunnel (or, for a repeated Idempotency-Key, the one it created)", body = TunnelView),
        (status = 404, description = "The tunnel an Idempotency-Key created has been deleted since (`not_found`)"),
        (status = 409, description = "The slug is held by a live tunnel (`slug_taken`); `tunnelId` names it when it is the caller's own"),
        (status = 422, description = "A body field is invalid (`validation_failed`, naming `field`), or the Idempotency-Key was used with another body (`idempotency_key_reused`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn create(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateTunnel>,
) -> Result<(StatusCode, Json<TunnelView>), AppError> {
    let new = NewTunnel {
        slug: body.slug,
        requested_port: body.requested_port,
    };
    let key = headers.get(IDEMPOTENCY_KEY).map(|v| v.as_bytes());
    let tunnel = state.tunnels.create(&caller, new, key).await?;
    Ok((StatusCode::CREATED, Json(tunnel)))
}

/// One tunnel of the caller's account.
#[utoipa::path(
    get, path = "/v1/tunnels/{id}", tag = "tunnels", operation_id = "getTunnel",
    params(("id" = Uuid, Path, description = "The tunnel's id")),
    security(("bearer" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The tunnel", body = TunnelView),
        (status = 404, description = "No such tunnel in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TunnelView>, AppError> {
    Ok(Json(state.tunnels.get(&caller, id).await?))
}

/// Documented as [`super::schemas::PatchTunnel`] (which says which fields go together).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchTunnel {
    status: String,
    last_error: Option<String>,
}

/// An explicit transition of the state machine.
#[utoipa::path(
    patch, path = "/v1/tunnels/{id}", tag = "tunnels", operation_id = "updateTunnel",
    params(("id" = Uuid, Path, description = "The tunnel's id")),
    request_body = super::schemas::PatchTunnel,
    security(("bearer" = ["tunnels:write"]), ("bearer" = ["tunnels:heartbeat"])),
    responses(
        (status = 200, description = "The tunnel in its new state", body = TunnelView),
        (status = 404, description = "No such tunnel in the caller's account (`not_found`)"),
        (status = 409, description = "The state machine does not allow this transition (`invalid_transition`, with `from` and `to`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn update(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchTunnel>,
) -> Result<Json<TunnelView>, AppError> {
    let tunnel = state
        .tunnels
        .update(&caller, id, &body.status, body.last_error.as_deref())
        .await?;
    Ok(Json(tunnel))
}

/// Removes a `stopped` or `failed` tunnel from the history.
#[utoipa::path(
    delete, path = "/v1/tunnels/{id}", tag = "tunnels", operation_id = "deleteTunnel",
    params(("id" = Uuid, Path, description = "The tunnel's id")),
    security(("bearer" = ["tunnels:write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such tunnel in the caller's account (`not_found`)"),
        (status = 409, description = "The tunnel is live; stop it first (`tunnel_live`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn remove(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    state.tunnels.delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
