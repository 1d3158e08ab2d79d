//! The native fleet-status routes: ingest, the device list, a device's live status, over
//! [`crate::fleet::Fleet`] (which the Cloudflare-compatible routes call too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::schemas::{self, DeviceSnapshots, DeviceStatus};
use crate::auth::Principal;
use crate::fleet::query::{RawList, NATIVE};
use crate::fleet::{Ingested, RawLive};
use crate::state::AppState;

/// A full batch of 1,000 snapshots with every field is about 3 MB; the default limit is 1 MiB.
pub const INGEST_BODY_LIMIT: usize = 8 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest).layer(axum::extract::DefaultBodyLimit::max(INGEST_BODY_LIMIT)))
        .routes(routes!(list))
        .routes(routes!(live))
}

/// Stores device snapshots: one, or an array of up to 1,000 (8 MiB at most).
#[utoipa::path(
    post, path = "/v1/fleet-status/devices", tag = "fleet", operation_id = "ingestDeviceStatus",
    request_body = DeviceSnapshots,
    security(("bearer" = ["dex:write"])),
    responses(
        (status = 201, description = "Stored", body = Ingested),
        (status = 422, description = "A snapshot field is invalid (`validation_failed`; `field` is prefixed with the snapshot's index, `[3].cpuPct`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn ingest(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Ingested>), AppError> {
    let ingested = state.fleet.ingest(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(ingested)))
}

/// A page of device statuses with the counts that describe it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevicePage {
    #[schema(value_type = Vec<DeviceStatus>)]
    result: Vec<Value>,
    #[schema(inline)]
    result_info: PageInfo,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    #[schema(minimum = 0)]
    count: usize,
    #[schema(minimum = 1)]
    page: i64,
    #[schema(minimum = 1, maximum = 50)]
    per_page: i64,
    /// Exact when `totalCountExact`; otherwise a lower bound (more than 10,000 rows match
    /// past the page), and `totalPages` still exceeds `page` while later pages have rows.
    #[schema(minimum = 0)]
    total_count: i64,
    total_count_exact: bool,
    #[schema(minimum = 0)]
    total_pages: i64,
}

/// The list's query parameters, named as the native routes name them.
pub struct NativeListParams;

impl IntoParams for NativeListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        schemas::device_list_params(&NATIVE)
    }
}

/// The devices' latest status (or hourly rows, or raw snapshots), filtered and paged.
#[utoipa::path(
    get, path = "/v1/fleet-status/devices", tag = "fleet", operation_id = "listDeviceStatus",
    params(NativeListParams),
    security(("bearer" = ["dex:read"]), ("bearer" = ["dex:write"])),
    responses(
        (status = 200, description = "A page; past the end, an empty one", body = DevicePage),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(raw): ApiQuery<RawList>,
) -> Result<Json<DevicePage>, AppError> {
    let page = state.fleet.list(&caller, &raw, &NATIVE).await?;
    Ok(Json(DevicePage {
        result: page.result,
        result_info: PageInfo {
            count: page.count,
            page: page.page,
            per_page: page.per_page,
            total_count: page.total_count,
            total_count_exact: page.total_count_exact,
            total_pages: page.total_pages,
        },
    }))
}

/// The live-status parameters, named as the native routes name them.
pub struct NativeLiveParams;

impl IntoParams for NativeLiveParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        schemas::live_params(&NATIVE)
    }
}

/// The device's latest snapshot within `sinceMinutes`.
#[utoipa::path(
    get, path = "/v1/devices/{device_id}/fleet-status/live", tag = "fleet", operation_id = "getDeviceLiveStatus",
    params(("device_id" = Uuid, Path, description = "The device's id"), NativeLiveParams),
    security(("bearer" = ["dex:read"]), ("bearer" = ["dex:write"])),
    responses(
        (status = 200, description = "The device's latest snapshot", body = DeviceStatus),
        (status = 404, description = "No snapshot of this device in the window, in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn live(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(device_id): ApiPath<String>,
    ApiQuery(raw): ApiQuery<RawLive>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        state.fleet.live(&caller, &device_id, &raw, &NATIVE).await?,
    ))
}
