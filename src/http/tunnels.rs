//! The native tunnel routes: `/v1/tunnels…`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::auth::{tokens, Principal, Scope};
use crate::connectors::{self, origin::OriginIp};
use crate::state::AppState;
use crate::tunnels::batcher::Renewal;
use crate::tunnels::idempotency::{self, Claim};
use crate::tunnels::store::{self, Cursor, Due, NewTunnel};
use crate::tunnels::{self, slug, Status, Tunnel, TunnelView};

pub const HEARTBEAT_INTERVAL_HEADER: &str = "warren-heartbeat-interval";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, update, remove))
        .routes(routes!(heartbeat))
}

fn view(state: &AppState, tunnel: Tunnel) -> TunnelView {
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

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Also list `stopped` and `failed` tunnels: `true`, `1`, `false` or `0`.
    #[param(value_type = Option<String>, pattern = "^(true|false|1|0)$")]
    include_inactive: Option<String>,
    /// Page size, 1 to 1000 (the default).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The cursor of the next page, as the `Link` header gives it.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-fA-F]{32}$")]
    after: Option<String>,
}

/// The default and largest page of `GET /v1/tunnels`.
pub const MAX_PAGE: i64 = 1000;

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

fn parse_limit(value: Option<&str>) -> Result<i64, AppError> {
    let Some(raw) = value else {
        return Ok(MAX_PAGE);
    };
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(AppError::bad_param(
            "limit",
            format!("limit must be a whole number from 1 to {MAX_PAGE}; got `{raw}`"),
        )),
    }
}

/// A cursor is `{createdAt in microseconds}_{id}` of the last tunnel of the previous page.
fn encode_cursor(tunnel: &Tunnel) -> String {
    format!(
        "{}_{}",
        tunnel.created_at.timestamp_micros(),
        tunnel.id.simple()
    )
}

fn parse_cursor(value: Option<&str>) -> Result<Option<Cursor>, AppError> {
    let Some(raw) = value else {
        return Ok(None);
    };
    let parsed = raw.split_once('_').and_then(|(micros, id)| {
        Some(Cursor {
            created_at: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    });
    parsed.map(Some).ok_or_else(|| {
        AppError::bad_param(
            "after",
            "after must be a cursor taken from a `Link: rel=\"next\"` header",
        )
    })
}

/// A page of the account's tunnels, newest first, with `Link: <…>; rel="next"` when there
/// is more. The body stays the seed's bare array.
#[utoipa::path(
    get, path = "/v1/tunnels", tag = "tunnels", operation_id = "listTunnels",
    params(ListQuery),
    security(("bearer" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The account's tunnels, newest first", body = Vec<TunnelView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when there is a next page"))),
    )
)]
#[tracing::instrument(skip_all, err)]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, AppError> {
    caller.require(Scope::TunnelsRead)?;
    let include_inactive = parse_bool_param("includeInactive", query.include_inactive.as_deref())?;
    let limit = parse_limit(query.limit.as_deref())?;
    let after = parse_cursor(query.after.as_deref())?;
    let mut tx = state.db.begin().await?;
    store::expire_due(
        &mut tx,
        Due {
            account_id: Some(caller.account_id),
            ..Due::default()
        },
    )
    .await?;
    let mut rows = store::list(
        &mut tx,
        caller.account_id,
        include_inactive,
        after,
        limit + 1,
    )
    .await?;
    tx.commit().await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => Some(format!(
            "</v1/tunnels?limit={limit}&after={}{}>; rel=\"next\"",
            encode_cursor(last),
            if include_inactive {
                "&includeInactive=true"
            } else {
                ""
            }
        )),
        _ => None,
    };
    let body = Json(
        rows.into_iter()
            .map(|t| view(&state, t))
            .collect::<Vec<_>>(),
    );
    Ok(match next {
        Some(link) => {
            let link = HeaderValue::from_str(&link).map_err(AppError::internal)?;
            ([(header::LINK, link)], body).into_response()
        }
        None => body.into_response(),
    })
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

/// A heartbeat's optional body. `connector` is validated by hand (see
/// [`connectors::parse_report`]) so that every error names its field, and before anything
/// touches the database, so a bad report changes nothing, not even the lease.
#[derive(Deserialize, ToSchema)]
pub struct HeartbeatBody {
    #[serde(default)]
    #[schema(value_type = Option<super::schemas::ConnectorReport>)]
    connector: Option<Value>,
}

/// Renews the lease (`creating` → `active`). The body is optional.
#[utoipa::path(
    post, path = "/v1/tunnels/{id}/heartbeat", tag = "tunnels", operation_id = "heartbeatTunnel",
    params(("id" = Uuid, Path, description = "The tunnel's id")),
    request_body(content = Option<HeartbeatBody>, description = "Optional: the connector serving the tunnel"),
    security(("bearer" = ["tunnels:heartbeat"])),
    responses(
        (status = 200, description = "The renewed tunnel; an agent that sees `stopping` shuts down", body = TunnelView,
            headers(("Warren-Heartbeat-Interval" = u64, description = "Seconds until the next heartbeat (TTL / 3)"))),
        (status = 404, description = "No such tunnel in the caller's account (`not_found`)"),
        (status = 409, description = "The tunnel is `stopped` or `failed` (`tunnel_not_live`, or `lease_expired` when the reaper failed it)"),
    )
)]
#[tracing::instrument(skip_all)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    OriginIp(origin_ip): OriginIp,
    OptionalJson(body): OptionalJson<HeartbeatBody>,
) -> Response {
    // Every answer the heartbeat logic gives, refusals and 503s included, tells the interval.
    let interval = HeaderValue::from(state.config.heartbeat_interval_secs());
    let header = [(HeaderName::from_static(HEARTBEAT_INTERVAL_HEADER), interval)];
    let answer = renew(&state, &caller, id, origin_ip.as_deref(), body).await;
    (header, answer).into_response()
}

#[tracing::instrument(skip_all, err)]
async fn renew(
    state: &AppState,
    caller: &Principal,
    id: Uuid,
    origin_ip: Option<&str>,
    body: Option<HeartbeatBody>,
) -> Result<Json<TunnelView>, AppError> {
    caller.require(Scope::TunnelsHeartbeat)?;
    let report = match body.and_then(|b| b.connector) {
        Some(value) => connectors::parse_report(&value)?,
        None => None,
    };
    let (account_id, ttl) = (caller.account_id, state.config.lease_ttl);
    let renewal = Renewal {
        account_id,
        tunnel_id: id,
        connector: report.as_ref().map(|r| (r.id, r.fingerprint(origin_ip))),
    };
    // The batch renews the lease, and bumps an unchanged connector along with it; a new or
    // changed connector is then written by its own statement.
    let renewed = match (state.heartbeats.renew(renewal).await?, &report) {
        (Some(renewed), Some(report)) if !renewed.connector_seen => {
            let mut conn = state.db.acquire().await?;
            connectors::store::heartbeat(&mut conn, account_id, id, ttl, report, origin_ip).await?
        }
        (renewed, _) => renewed.map(|r| r.tunnel),
    };
    let Some(tunnel) = renewed else {
        metrics::counter!("warren_heartbeats_total", "result" => "refused").increment(1);
        let mut conn = state.db.acquire().await?;
        return Err(refused_heartbeat(&mut conn, account_id, id).await?);
    };
    metrics::counter!("warren_heartbeats_total", "result" => "accepted").increment(1);
    Ok(Json(view(state, tunnel)))
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
        extra.insert("tunnelStatus".into(), Value::String(status));
    }
    Ok(err)
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
