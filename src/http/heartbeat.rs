//! `POST /v1/tunnels/{id}/heartbeat`: the hot path (see [`crate::tunnels::Tunnels::heartbeat`]).

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

use super::caller::OriginIp;
use super::error::AppError;
use super::extract::{ApiPath, OptionalJson};
use crate::auth::Principal;
use crate::state::AppState;
use crate::tunnels::TunnelView;

pub const HEARTBEAT_INTERVAL_HEADER: &str = "warren-heartbeat-interval";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat))
}

/// A heartbeat's optional body: the connector serving the tunnel. Every error in it names its
/// field, and a bad report changes nothing, not even the lease.
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
    let interval = HeaderValue::from(state.tunnels.settings().heartbeat_interval_secs());
    let header = [(HeaderName::from_static(HEARTBEAT_INTERVAL_HEADER), interval)];
    let connector = body.and_then(|b| b.connector);
    let answer: Result<Json<TunnelView>, AppError> = state
        .tunnels
        .heartbeat(&caller, id, origin_ip.as_deref(), connector.as_ref())
        .await
        .map(Json)
        .map_err(AppError::from);
    (header, answer).into_response()
}
