//! `/v1/webhooks`: an account's webhook endpoints (create, list, get, change, delete, rotate
//! the secret), over [`crate::webhooks::Webhooks`]. Their deliveries are in
//! [`super::webhook_deliveries`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Principal;
use crate::state::AppState;
use crate::webhooks::{EndpointPatch, EndpointView, NewEndpoint};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate_secret))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// An absolute `http` or `https` URL, at most 2048 characters, without credentials.
    #[schema(max_length = 2048, examples("https://example.com/warren-hook"))]
    url: String,
    /// Free text, at most 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// The event types to deliver; absent, `null` or empty: every type.
    #[schema(schema_with = crate::webhooks::types_schema)]
    types: Option<Vec<String>>,
    /// Whether deliveries start at once (default `true`).
    enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWebhook {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// The event types to deliver; `null` or empty: every type. Absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::webhooks::types_schema)]
    types: Option<Option<Vec<String>>>,
    /// `false` stops deliveries (they wait); `true` resumes them and clears
    /// `disabledReason`.
    enabled: Option<bool>,
}

/// A member that is present, even as `null`: `Some(None)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
    Option::<Vec<String>>::deserialize(d).map(Some)
}

/// Creates an endpoint; its signing secret (`whsec_…`) is in this answer only.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "webhooks", operation_id = "createWebhook",
    request_body = CreateWebhook,
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 201, description = "The endpoint, with its secret", body = EndpointView),
        (status = 409, description = "The account has 100 endpoints already (`webhook_limit_reached`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<EndpointView>), AppError> {
    let new = NewEndpoint {
        url: body.url,
        description: body.description,
        types: body.types,
        enabled: body.enabled,
    };
    let endpoint = state.webhooks.create(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(endpoint)))
}

/// The account's endpoints, oldest first, without their secrets.
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "webhooks", operation_id = "listWebhooks",
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 200, description = "The endpoints", body = Vec<EndpointView>),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<Vec<EndpointView>>, AppError> {
    Ok(Json(state.webhooks.list(&caller).await?))
}

/// One endpoint, without its secret.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "getWebhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such endpoint in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn get(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<EndpointView>, AppError> {
    Ok(Json(state.webhooks.get(&caller, id).await?))
}

/// Changes an endpoint's URL, description, types or `enabled`. Enabling a disabled endpoint
/// clears the reason it was disabled for and resumes its pending deliveries.
#[utoipa::path(
    patch, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "updateWebhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    request_body = UpdateWebhook,
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 200, description = "The endpoint as changed", body = EndpointView),
        (status = 404, description = "No such endpoint in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn update(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<EndpointView>, AppError> {
    let patch = EndpointPatch {
        url: body.url,
        description: body.description,
        types: body.types,
        enabled: body.enabled,
    };
    Ok(Json(state.webhooks.update(&caller, id, patch).await?))
}

/// Deletes an endpoint and its delivery log; nothing more is delivered to it.
#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "deleteWebhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn delete(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    state.webhooks.delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, in this answer only. For 24 hours deliveries carry a signature
/// with each of the two secrets (`previousSecretExpiresAt` says until when).
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", operation_id = "rotateWebhookSecret",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 200, description = "The endpoint, with its new secret", body = EndpointView),
        (status = 404, description = "No such endpoint in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<EndpointView>, AppError> {
    Ok(Json(state.webhooks.rotate_secret(&caller, id).await?))
}
