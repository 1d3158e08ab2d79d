//! Cloudflare's DEX fleet-status routes: the list and live status of
//! [`crate::fleet::Fleet`], under Cloudflare's paths and parameter names (`per_page`, `sort_by`, `device_id`,
//! `since_minutes`, `time_now`), in the envelope with `result_info`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{AccountId, CfDevicePage, CfLiveStatus};
use super::{ok_paged, CfCaller, Envelope, ResultInfo};
use crate::fleet::query::{RawList, CLOUDFLARE};
use crate::fleet::RawLive;
use crate::http::error::AppError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::schemas;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(live))
}

/// The list's query parameters, as Cloudflare names them.
pub struct ListParams;

impl IntoParams for ListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        schemas::device_list_params(&CLOUDFLARE)
    }
}

/// The live-status parameters, as Cloudflare names them.
pub struct LiveParams;

impl IntoParams for LiveParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        schemas::live_params(&CLOUDFLARE)
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A page of devices; a page past the end is `200` with `result: []`, so a client that asks
/// for `page + 1` until the result is empty stops cleanly. `total_count` is exact up to
/// 10,000 rows past the page, a lower bound beyond (see `fleet::list`): `total_pages` then
/// still exceeds `page` while later pages have rows.
#[utoipa::path(
    get, path = "/client/v4/accounts/{account_id}/dex/fleet-status/devices",
    tag = "cloudflare", operation_id = "cfListDeviceStatus",
    params(
        AccountId,
        ListParams,
    ),
    security(
        ("bearer" = ["dex:read"]), ("bearer" = ["dex:write"]),
        ("authEmail" = ["dex:read"], "authKey" = ["dex:read"]),
        ("authEmail" = ["dex:write"], "authKey" = ["dex:write"]),
    ),
    responses(
        (status = 200, description = "A page; past the end, `result: []`", body = CfDevicePage),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiQuery(raw): ApiQuery<RawList>,
) -> Result<Json<Envelope<Vec<Value>>>, AppError> {
    let page = state.fleet.list(&caller, &raw, &CLOUDFLARE).await?;
    let info = ResultInfo {
        count: page.count as u64,
        page: count(page.page),
        per_page: count(page.per_page),
        total_count: count(page.total_count),
        total_pages: count(page.total_pages),
    };
    Ok(ok_paged(page.result, info))
}

/// The device's latest snapshot. Clients read this answer as a bare device object, so the
/// device's fields stand at the top level; the envelope's keys stand beside them, and
/// `result` holds the device too, for clients that unwrap the envelope.
#[utoipa::path(
    get, path = "/client/v4/accounts/{account_id}/dex/devices/{device_id}/fleet-status/live",
    tag = "cloudflare", operation_id = "cfGetDeviceLiveStatus",
    params(
        AccountId,
        ("device_id" = Uuid, Path, description = "The device's id"),
        LiveParams,
    ),
    security(
        ("bearer" = ["dex:read"]), ("bearer" = ["dex:write"]),
        ("authEmail" = ["dex:read"], "authKey" = ["dex:read"]),
        ("authEmail" = ["dex:write"], "authKey" = ["dex:write"]),
    ),
    responses(
        (status = 200, description = "The device's latest snapshot", body = CfLiveStatus),
        (status = 404, description = "The account is not the caller's, or no snapshot of this device in the window"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn live(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiPath((_account_id, device_id)): ApiPath<(String, String)>,
    ApiQuery(raw): ApiQuery<RawLive>,
) -> Result<Json<Value>, AppError> {
    let device = state
        .fleet
        .live(&caller, &device_id, &raw, &CLOUDFLARE)
        .await?;
    let mut body = device.clone();
    if let Value::Object(map) = &mut body {
        map.insert("success".into(), Value::Bool(true));
        map.insert("errors".into(), json!([]));
        map.insert("messages".into(), json!([]));
        map.insert("result".into(), device);
    }
    Ok(Json(body))
}
