//! The native tunnel routes: `/v1/tunnels…`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath};
use crate::auth::{tokens, Principal, Scope};
use crate::state::AppState;
use crate::tunnels::idempotency::{self, Claim};
use crate::tunnels::store::{self, Due, NewTunnel};
use crate::tunnels::{self, slug, Tunnel, TunnelView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show, update, remove))
}

pub(crate) fn view(state: &AppState, tunnel: Tunnel) -> TunnelView {
    TunnelView::new(tunnel, &state.config.base_domain)
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

/// How many generated slugs to try before giving up (each collision is ~1 in 1.3 million).
const SLUG_ATTEMPTS: usize = 5;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` header: 1-255 visible ASCII characters, if present.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = || {
        AppError::bad_param(
            "Idempotency-Key",
            "the Idempotency-Key header must be 1-255 visible ASCII characters",
        )
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

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
#[tracing::instrument(skip_all, err)]
async fn create(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateTunnel>,
) -> Result<(StatusCode, Json<TunnelView>), AppError> {
    caller.require(Scope::TunnelsWrite)?;
    let requested_port = tunnels::validate_port(body.requested_port)?;
    if let Some(slug) = &body.slug {
        slug::validate(slug)?;
    }
    let key = idempotency_key(&headers)?;
    let mut tx = state.db.begin().await?;
    if let Some(key) = &key {
        let request_hash = tokens::digest(&format!("{:?}|{requested_port}", body.slug));
        match idempotency::claim(&mut tx, caller.account_id, key, &request_hash).await? {
            Claim::New => {}
            Claim::Used {
                request_hash: used, ..
            } if used != request_hash => {
                return Err(AppError::Rejected {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "idempotency_key_reused",
                    detail: "this Idempotency-Key was used with a different body".into(),
                });
            }
            Claim::Used { tunnel_id, .. } => {
                let id = tunnel_id.ok_or(AppError::NotFound("tunnel"))?;
                let tunnel = current(&mut tx, caller.account_id, id).await?;
                tx.commit().await?;
                return Ok((StatusCode::CREATED, Json(view(&state, tunnel))));
            }
        }
    }
    for _ in 0..SLUG_ATTEMPTS {
        let slug = body.slug.clone().unwrap_or_else(slug::generate);
        // A holder whose lease ran out frees the slug now, not when the reaper comes by.
        let due = Due {
            slug: Some(&slug),
            ..Due::default()
        };
        store::expire_due(&mut tx, due).await?;
        let new = NewTunnel {
            id: Uuid::new_v4(),
            account_id: caller.account_id,
            slug: &slug,
            requested_port,
            lease_ttl: state.config.lease_ttl,
        };
        if let Some(tunnel) = store::insert(&mut tx, new).await? {
            if let Some(key) = &key {
                idempotency::complete(&mut tx, caller.account_id, key, tunnel.id).await?;
            }
            tx.commit().await?;
            tracing::info!(tunnel_id = %tunnel.id, slug = %tunnel.slug, "tunnel created");
            return Ok((StatusCode::CREATED, Json(view(&state, tunnel))));
        }
        if body.slug.is_some() {
            let holder = store::live_holder(&mut tx, &slug).await?;
            return Err(slug_taken(&slug, holder, caller.account_id));
        }
    }
    Err(AppError::internal(anyhow::anyhow!(
        "no free generated slug after {SLUG_ATTEMPTS} attempts"
    )))
}

/// 409 `slug_taken`; the holder's `tunnelId` only when it is the caller's own tunnel.
fn slug_taken(slug: &str, holder: Option<(Uuid, Uuid)>, account_id: Uuid) -> AppError {
    let mut err = AppError::conflict(
        "slug_taken",
        format!("the slug `{slug}` is held by a live tunnel"),
    );
    if let (AppError::Conflict { extra, .. }, Some((tunnel_id, owner))) = (&mut err, holder) {
        if owner == account_id {
            extra.insert("tunnelId".into(), Value::String(tunnel_id.to_string()));
        }
    }
    err
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
#[tracing::instrument(skip_all, err)]
async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TunnelView>, AppError> {
    caller.require(Scope::TunnelsRead)?;
    let mut tx = state.db.begin().await?;
    let tunnel = current(&mut tx, caller.account_id, id).await?;
    tx.commit().await?;
    Ok(Json(view(&state, tunnel)))
}

/// The tunnel as it is now (a run-out lease expired first), or 404.
pub(crate) async fn current(
    conn: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Tunnel, AppError> {
    store::expire_due(
        conn,
        Due {
            id: Some(id),
            ..Due::default()
        },
    )
    .await?;
    store::get(conn, account_id, id)
        .await?
        .ok_or(AppError::NotFound("tunnel"))
}

/// Documented as [`super::schemas::PatchTunnel`] (which says which fields go together).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchTunnel {
    status: String,
    last_error: Option<String>,
}

/// An explicit transition of the state machine (SPEC §3).
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
#[tracing::instrument(skip_all, err)]
async fn update(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchTunnel>,
) -> Result<Json<TunnelView>, AppError> {
    caller.require_any(&[Scope::TunnelsWrite, Scope::TunnelsHeartbeat])?;
    let to = tunnels::validate_patch(&body.status, body.last_error.as_deref())?;
    let mut tx = state.db.begin().await?;
    let before = current(&mut tx, caller.account_id, id).await?;
    let changed = store::transition(
        &mut tx,
        caller.account_id,
        id,
        to.patch_sources(),
        to,
        body.last_error.as_deref(),
    )
    .await?;
    let Some(tunnel) = changed else {
        return Err(tunnels::invalid_transition(&before.status, to));
    };
    tx.commit().await?;
    tracing::info!(tunnel_id = %id, from = %before.status, to = to.as_str(), "tunnel transitioned");
    Ok(Json(view(&state, tunnel)))
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
#[tracing::instrument(skip_all, err)]
async fn remove(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    caller.require(Scope::TunnelsWrite)?;
    let mut tx = state.db.begin().await?;
    let tunnel = current(&mut tx, caller.account_id, id).await?;
    if !store::delete_terminal(&mut tx, caller.account_id, id).await? {
        return Err(AppError::conflict(
            "tunnel_live",
            format!(
                "the tunnel is `{}`; stop it before deleting it",
                tunnel.status
            ),
        ));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
