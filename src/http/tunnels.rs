//! The native tunnel routes: `/v1/tunnels…`.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::auth::{Principal, Scope};
use crate::connectors::{self, origin::OriginIp};
use crate::state::AppState;
use crate::tunnels::store::{self, Due, NewTunnel};
use crate::tunnels::{self, slug, Status, Tunnel, TunnelView};

pub const HEARTBEAT_INTERVAL_HEADER: &str = "warren-heartbeat-interval";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tunnels", post(create).get(list))
        .route("/v1/tunnels/{id}", get(show).patch(update).delete(remove))
        .route("/v1/tunnels/{id}/heartbeat", post(heartbeat))
}

fn view(state: &AppState, tunnel: Tunnel) -> TunnelView {
    TunnelView::new(tunnel, &state.config.base_domain)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTunnel {
    slug: Option<String>,
    requested_port: i64,
}

/// How many generated slugs to try before giving up (each collision is ~1 in 1.3 million).
const SLUG_ATTEMPTS: usize = 5;

#[tracing::instrument(skip_all, err)]
async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<CreateTunnel>,
) -> Result<(StatusCode, Json<TunnelView>), AppError> {
    caller.require(Scope::TunnelsWrite)?;
    let requested_port = tunnels::validate_port(body.requested_port)?;
    if let Some(slug) = &body.slug {
        slug::validate(slug)?;
    }
    let mut tx = state.db.begin().await?;
    for _ in 0..SLUG_ATTEMPTS {
        let slug = body.slug.clone().unwrap_or_else(slug::generate);
        // A holder whose lease ran out frees the slug now, not when the reaper comes by.
        store::expire_due(
            &mut tx,
            Due {
                slug: Some(&slug),
                ..Due::default()
            },
        )
        .await?;
        let new = NewTunnel {
            id: Uuid::new_v4(),
            account_id: caller.account_id,
            slug: &slug,
            requested_port,
            lease_ttl: state.config.lease_ttl,
        };
        if let Some(tunnel) = store::insert(&mut tx, new).await? {
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    include_inactive: Option<String>,
}

/// `true`, `1`, `false`, `0`, exactly as the seed says.
fn parse_bool_param(name: &str, value: Option<&str>) -> Result<bool, AppError> {
    match value {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(AppError::bad_param(
            name,
            format!("{name} must be one of true, 1, false, 0; got `{other}`"),
        )),
    }
}

#[tracing::instrument(skip_all, err)]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<TunnelView>>, AppError> {
    caller.require(Scope::TunnelsRead)?;
    let include_inactive = parse_bool_param("includeInactive", query.include_inactive.as_deref())?;
    let mut tx = state.db.begin().await?;
    store::expire_due(
        &mut tx,
        Due {
            account_id: Some(caller.account_id),
            ..Due::default()
        },
    )
    .await?;
    let rows = store::list(&mut tx, caller.account_id, include_inactive).await?;
    tx.commit().await?;
    Ok(Json(rows.into_iter().map(|t| view(&state, t)).collect()))
}

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

/// A heartbeat's optional body. `connector` is validated by hand (see
/// [`connectors::parse_report`]) so that every error names its field, and before anything
/// touches the database, so a bad report changes nothing, not even the lease.
#[derive(Deserialize)]
pub struct HeartbeatBody {
    #[serde(default)]
    connector: Option<Value>,
}

#[tracing::instrument(skip_all, err)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    OriginIp(origin_ip): OriginIp,
    OptionalJson(body): OptionalJson<HeartbeatBody>,
) -> Result<Response, AppError> {
    caller.require(Scope::TunnelsHeartbeat)?;
    let report = match body.and_then(|b| b.connector) {
        Some(value) => connectors::parse_report(&value)?,
        None => None,
    };
    let (account_id, ttl) = (caller.account_id, state.config.lease_ttl);
    let mut conn = state.db.acquire().await?;
    let renewed = match &report {
        None => store::heartbeat(&mut conn, account_id, id, ttl).await?,
        Some(report) => {
            connectors::store::heartbeat(
                &mut conn,
                account_id,
                id,
                ttl,
                report,
                origin_ip.as_deref(),
            )
            .await?
        }
    };
    let Some(tunnel) = renewed else {
        return Err(refused_heartbeat(&mut conn, account_id, id).await?);
    };
    let interval = HeaderValue::from(state.config.heartbeat_interval_secs());
    Ok((
        [(HeaderName::from_static(HEARTBEAT_INTERVAL_HEADER), interval)],
        Json(view(&state, tunnel)),
    )
        .into_response())
}

/// Why a heartbeat renewed nothing: 404, or 409 `lease_expired` / `tunnel_not_live`.
async fn refused_heartbeat(
    conn: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<AppError, AppError> {
    let tunnel = current(conn, account_id, id).await?;
    let status = tunnel.status.clone();
    let mut err = if tunnel.last_error.as_deref() == Some("lease expired")
        && tunnel.status() == Status::Failed
    {
        AppError::conflict(
            "lease_expired",
            "the tunnel's lease expired before this heartbeat; create the tunnel again",
        )
    } else {
        AppError::conflict(
            "tunnel_not_live",
            format!("the tunnel is `{status}`; heartbeats are refused"),
        )
    };
    if let AppError::Conflict { extra, .. } = &mut err {
        extra.insert("status".into(), Value::String(status));
    }
    Ok(err)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchTunnel {
    status: String,
    last_error: Option<String>,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_inactive_accepts_exactly_the_seed_values() {
        assert!(parse_bool_param("x", Some("true")).unwrap());
        assert!(parse_bool_param("x", Some("1")).unwrap());
        assert!(!parse_bool_param("x", Some("false")).unwrap());
        assert!(!parse_bool_param("x", Some("0")).unwrap());
        assert!(!parse_bool_param("x", None).unwrap());
        for bad in ["yes", "TRUE", "", "2"] {
            assert!(parse_bool_param("x", Some(bad)).is_err(), "{bad}");
        }
    }
}
