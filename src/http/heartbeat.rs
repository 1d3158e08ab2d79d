//! `POST /v1/tunnels/{id}/heartbeat`: the hot path. A lease renewal goes through the batcher
//! ([`crate::tunnels::batcher`]); a connector report rides along. No password check, ever.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiPath, OptionalJson};
use super::tunnels::{current, view};
use crate::auth::{Principal, Scope};
use crate::connectors::{self, origin::OriginIp};
use crate::state::AppState;
use crate::tunnels::batcher::Renewal;
use crate::tunnels::{Status, TunnelView};

pub const HEARTBEAT_INTERVAL_HEADER: &str = "warren-heartbeat-interval";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat))
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
