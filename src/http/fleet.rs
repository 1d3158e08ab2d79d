//! The native fleet-status routes (SPEC §5): ingest, the device list, a device's live status.
//!
//! The list and live functions are shared with the Cloudflare-compatible routes, which only
//! name their parameters differently and wrap the answers in their envelope.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::schemas::{self, DeviceSnapshots, DeviceStatus};
use crate::auth::{Principal, Scope};
use crate::fleet::query::{self, Names, RawList, NATIVE};
use crate::fleet::{self, store, MAX_CLOCK_SKEW};
use crate::state::AppState;

/// A full batch of 1,000 snapshots with every field is about 3 MB; the default limit is 1 MiB.
pub const INGEST_BODY_LIMIT: usize = 8 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest).layer(axum::extract::DefaultBodyLimit::max(INGEST_BODY_LIMIT)))
        .routes(routes!(list))
        .routes(routes!(live))
}

/// The scopes that may read fleet status: DEX Read, and DEX Write (as Cloudflare allows).
pub const READ_SCOPES: [Scope; 2] = [Scope::DexRead, Scope::DexWrite];

/// What an ingest stored.
#[derive(Serialize, ToSchema)]
pub struct Ingested {
    /// Snapshots in the request.
    received: usize,
    /// Snapshots stored (a snapshot already stored is not stored twice).
    stored: usize,
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
#[tracing::instrument(skip_all, err)]
async fn ingest(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Ingested>), AppError> {
    caller.require(Scope::DexWrite)?;
    let batch = fleet::parse_batch(body, Utc::now())?;
    let mut tx = state.db.begin().await?;
    let stored = store::insert_batch(&mut tx, caller.account_id, &batch).await?;
    tx.commit().await?;
    tracing::debug!(received = batch.len(), stored, "fleet snapshots stored");
    Ok((
        StatusCode::CREATED,
        Json(Ingested {
            received: batch.len(),
            stored,
        }),
    ))
}

/// A page of devices and the counts that describe it.
pub struct Page {
    pub result: Vec<Value>,
    pub count: usize,
    pub page: i64,
    pub per_page: i64,
    /// Exact, or a lower bound when `total_count_exact` is false (see [`fleet::list`]).
    pub total_count: i64,
    pub total_count_exact: bool,
    pub total_pages: i64,
}

/// Lists the caller's devices; a page past the end is an empty page, not an error.
pub async fn list_devices(
    state: &AppState,
    caller: &Principal,
    raw: &RawList,
    names: &Names,
) -> Result<Page, AppError> {
    caller.require_any(&READ_SCOPES)?;
    let q = query::parse(raw, names, Utc::now())?;
    let mut tx = state.db.begin().await?;
    let (rows, total) = fleet::list::list(&mut tx, caller.account_id, &q).await?;
    tx.commit().await?;
    let result: Vec<Value> = rows.into_iter().map(fleet::DeviceRow::render).collect();
    Ok(Page {
        count: result.len(),
        result,
        page: q.page,
        per_page: q.per_page,
        total_count: total.count,
        total_count_exact: total.exact,
        total_pages: (total.count + q.per_page - 1) / q.per_page,
    })
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
#[tracing::instrument(skip_all, err)]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(raw): ApiQuery<RawList>,
) -> Result<Json<DevicePage>, AppError> {
    let page = list_devices(&state, &caller, &raw, &NATIVE).await?;
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

/// The live-status query, as sent.
#[derive(Debug, Default, Deserialize)]
pub struct RawLive {
    #[serde(alias = "sinceMinutes")]
    pub since_minutes: Option<String>,
    #[serde(alias = "timeNow")]
    pub time_now: Option<String>,
    /// Comma-separated colos to accept the snapshot from.
    pub colo: Option<String>,
}

/// The device's latest snapshot within `since_minutes` of `time_now` (default: now); 404
/// when there is none, or when the device is another account's.
pub async fn live_device(
    state: &AppState,
    caller: &Principal,
    device_id: &str,
    raw: &RawLive,
    names: &Names,
) -> Result<Value, AppError> {
    caller.require_any(&READ_SCOPES)?;
    let device_id = Uuid::parse_str(device_id).map_err(|_| {
        AppError::bad_param(
            names.device_id,
            format!("{} must be a UUID", names.device_id),
        )
    })?;
    let since_name = names.since_minutes;
    let since = match raw
        .since_minutes
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(v) => query::whole_number(since_name, v, 1, 60)?,
        None => {
            return Err(AppError::bad_param(
                since_name,
                format!("{since_name} is required (1 to 60)"),
            ))
        }
    };
    let time_now_name = names.time_now;
    let (reference, to) = match raw
        .time_now
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(v) => {
            let t = query::instant(time_now_name, v)?;
            (t, t)
        }
        // Device clocks run a little ahead; a snapshot from "just now" must be found.
        None => {
            let now = Utc::now();
            (now, now + MAX_CLOCK_SKEW)
        }
    };
    let from: DateTime<Utc> = reference - Duration::minutes(since);
    let colos = query::colos(raw.colo.as_deref())?;
    let mut tx = state.db.begin().await?;
    let row = store::live(
        &mut tx,
        caller.account_id,
        device_id,
        from,
        to,
        colos.as_deref(),
    )
    .await?;
    tx.commit().await?;
    row.map(fleet::DeviceRow::render)
        .ok_or(AppError::NotFound("device status"))
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
#[tracing::instrument(skip_all, err)]
async fn live(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(device_id): ApiPath<String>,
    ApiQuery(raw): ApiQuery<RawLive>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        live_device(&state, &caller, &device_id, &raw, &NATIVE).await?,
    ))
}
