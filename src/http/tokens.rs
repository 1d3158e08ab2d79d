//! `POST /v1/tokens`, `GET /v1/tokens`, `DELETE /v1/tokens/{id}`, over [`crate::auth::Auth`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::{NewApiToken, Principal, TokenView};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateToken {
    /// 1-100 characters (surrounding spaces are trimmed).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        examples("agent on host-1")
    )]
    name: String,
    /// Scopes the caller holds itself.
    #[schema(schema_with = super::schemas::scope_list)]
    scopes: Vec<String>,
    /// Lifetime in seconds; no expiry when absent.
    #[schema(minimum = 1, maximum = 316224000)]
    expires_in_secs: Option<i64>,
}

/// Creates an API token; the secret is in this answer only.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens", operation_id = "createToken",
    request_body = CreateToken,
    security(("bearer" = ["tokens:write"])),
    responses(
        (status = 201, description = "The token, with its secret", body = TokenView),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenView>), AppError> {
    let new = NewApiToken {
        name: body.name,
        scopes: body.scopes,
        expires_in_secs: body.expires_in_secs,
    };
    let token = state.auth.create_token(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// The account's API tokens, without their secrets.
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens", operation_id = "listTokens",
    security(("bearer" = ["tokens:write"])),
    responses(
        (status = 200, description = "The tokens", body = Vec<TokenView>),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<Vec<TokenView>>, AppError> {
    Ok(Json(state.auth.list_tokens(&caller).await?))
}

/// Revokes a token at once.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "deleteToken",
    params(("id" = Uuid, Path, description = "The token's id")),
    security(("bearer" = ["tokens:write"])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    state.auth.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
