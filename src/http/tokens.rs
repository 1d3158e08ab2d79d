//! `POST /v1/tokens`, `GET /v1/tokens`, `DELETE /v1/tokens/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::tokens::{self, NewToken, TokenRecord};
use crate::auth::{Principal, Scope, Scopes};
use crate::state::AppState;
use crate::time::Timestamp;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

/// Ten years: long enough for any agent, short enough to stay a real expiry.
const MAX_EXPIRES_IN: i64 = 10 * 366 * 24 * 3600;

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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Token)]
pub struct TokenView {
    id: Uuid,
    name: String,
    #[schema(schema_with = super::schemas::scope_list)]
    scopes: Vec<String>,
    /// The secret (`wrn_…`), shown once: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^wrn_[0-9A-Za-z]{32,}$")]
    token: Option<String>,
    created_at: Timestamp,
    #[schema(required = true)]
    expires_at: Option<Timestamp>,
}

impl TokenView {
    fn new(record: TokenRecord, token: Option<String>) -> Self {
        Self {
            id: record.id,
            name: record.name,
            scopes: record.scopes,
            token,
            created_at: Timestamp(record.created_at),
            expires_at: record.expires_at.map(Timestamp),
        }
    }
}

fn validate(body: &CreateToken, caller: &Principal) -> Result<Scopes, AppError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "name must be 1-100 characters, none of them control characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "name must not contain control characters",
        ));
    }
    if body.scopes.is_empty() {
        return Err(AppError::invalid(
            "scopes",
            "scopes must list at least one scope",
        ));
    }
    let mut scopes = Vec::with_capacity(body.scopes.len());
    for (i, name) in body.scopes.iter().enumerate() {
        let scope = Scope::parse(name).ok_or_else(|| {
            let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            AppError::invalid(
                format!("scopes[{i}]"),
                format!("unknown scope `{name}`; known scopes: {}", known.join(", ")),
            )
        })?;
        scopes.push(scope);
    }
    let scopes: Scopes = scopes.into_iter().collect();
    if !scopes.is_subset_of(caller.scopes) {
        return Err(AppError::Forbidden(
            "a token cannot grant scopes its creator does not hold".into(),
        ));
    }
    if let Some(secs) = body.expires_in_secs {
        if !(1..=MAX_EXPIRES_IN).contains(&secs) {
            return Err(AppError::invalid(
                "expiresInSecs",
                format!("expiresInSecs must be between 1 and {MAX_EXPIRES_IN}"),
            ));
        }
    }
    Ok(scopes)
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
#[tracing::instrument(skip_all, err)]
async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenView>), AppError> {
    caller.require(Scope::TokensWrite)?;
    let scopes = validate(&body, &caller)?;
    let (token, hash) = tokens::generate();
    let mut conn = state.db.acquire().await?;
    let record = tokens::insert(
        &mut conn,
        NewToken {
            account_id: caller.account_id,
            user_id: caller.user_id,
            name: body.name.trim(),
            scopes,
            hash: &hash,
            expires_in_secs: body.expires_in_secs,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView::new(record, Some(token))),
    ))
}

/// The account's API tokens, without their secrets.
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens", operation_id = "listTokens",
    security(("bearer" = ["tokens:write"])),
    responses(
        (status = 200, description = "The tokens", body = Vec<TokenView>),
    )
)]
#[tracing::instrument(skip_all, err)]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<Vec<TokenView>>, AppError> {
    caller.require(Scope::TokensWrite)?;
    let mut conn = state.db.acquire().await?;
    let records = tokens::list(&mut conn, caller.account_id).await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| TokenView::new(r, None))
            .collect(),
    ))
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
#[tracing::instrument(skip_all, err)]
async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    caller.require(Scope::TokensWrite)?;
    let mut conn = state.db.acquire().await?;
    let hash = tokens::delete(&mut conn, caller.account_id, id)
        .await?
        .ok_or(AppError::NotFound("token"))?;
    // Refused here at once; other processes hear of it through the database's NOTIFY.
    state.tokens.evict(&hash);
    Ok(StatusCode::NO_CONTENT)
}
