//! The fleet-status service: ingest, the device list and a device's live status, for both
//! route families (which differ only in how they name the parameters, see [`Names`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::query::{self, Names, RawList};
use super::{changes, store, DeviceRow, StatusCount, MAX_CLOCK_SKEW, RETENTION};
use crate::auth::{Principal, Scope};
use crate::error::Error;
use crate::events;

/// The scopes that may read fleet status: DEX Read, and DEX Write (as Cloudflare allows).
pub const READ_SCOPES: [Scope; 2] = [Scope::DexRead, Scope::DexWrite];

/// The fleet-status service; cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    db: PgPool,
}

/// What an ingest stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ingested {
    /// Snapshots in the request.
    pub received: usize,
    /// Snapshots stored (a snapshot already stored is not stored twice).
    pub stored: usize,
}

/// A page of devices and the counts that describe it.
pub struct Page {
    pub result: Vec<Value>,
    pub count: usize,
    pub page: i64,
    pub per_page: i64,
    /// Exact, or a lower bound when `total_count_exact` is false (see [`super::list`]).
    pub total_count: i64,
    pub total_count_exact: bool,
    pub total_pages: i64,
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

impl Fleet {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// Stores one snapshot or an array of them: all valid, or nothing stored. A device whose
    /// status changed logs `device.status_changed.v1` (see [`super::changes`]).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn ingest(&self, caller: &Principal, body: Value) -> Result<Ingested, Error> {
        caller.require(Scope::DexWrite)?;
        let batch = super::parse_batch(body, Utc::now())?;
        let mut tx = self.db.begin().await?;
        let latest = changes::lock_and_read(&mut tx, caller.account_id, &batch).await?;
        let stored = store::insert_batch(&mut tx, caller.account_id, &batch).await?;
        let changed = changes::status_changes(caller, &batch, &latest);
        events::store::append(&mut tx, &changed).await?;
        tx.commit().await?;
        tracing::debug!(received = batch.len(), stored, "fleet snapshots stored");
        Ok(Ingested {
            received: batch.len(),
            stored,
        })
    }

    /// Lists the caller's devices; a page past the end is an empty page, not an error.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn list(
        &self,
        caller: &Principal,
        raw: &RawList,
        names: &Names,
    ) -> Result<Page, Error> {
        caller.require_any(&READ_SCOPES)?;
        let q = query::parse(raw, names, Utc::now())?;
        let mut tx = self.db.begin().await?;
        let (rows, total) = super::list::list(&mut tx, caller.account_id, &q).await?;
        tx.commit().await?;
        let result: Vec<Value> = rows.into_iter().map(DeviceRow::render).collect();
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

    /// How many devices were in each status, hour by hour over the last `hours` hours (1 to
    /// 168), by each device's last state in the hour; filtered by the list's dimension filters
    /// (`raw`'s time range, page and sort do not apply).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn hourly_status_counts(
        &self,
        caller: &Principal,
        raw: &RawList,
        names: &Names,
        hours: i64,
    ) -> Result<Vec<StatusCount>, Error> {
        caller.require_any(&READ_SCOPES)?;
        if !(1..=RETENTION.num_hours()).contains(&hours) {
            return Err(Error::bad_param(
                "hours",
                format!("hours must be from 1 to {}", RETENTION.num_hours()),
            ));
        }
        let filters = query::parse(raw, names, Utc::now())?.filters;
        let from = super::hourly::hour_of(Utc::now() - Duration::hours(hours - 1));
        let mut conn = self.db.acquire().await?;
        Ok(store::hourly_status_counts(&mut conn, caller.account_id, from, &filters).await?)
    }

    /// The device's latest snapshot within `since_minutes` of `time_now` (default: now); not
    /// found when there is none, or when the device is another account's.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn live(
        &self,
        caller: &Principal,
        device_id: &str,
        raw: &RawLive,
        names: &Names,
    ) -> Result<Value, Error> {
        caller.require_any(&READ_SCOPES)?;
        let device_id = Uuid::parse_str(device_id).map_err(|_| {
            Error::bad_param(
                names.device_id,
                format!("{} must be a UUID", names.device_id),
            )
        })?;
        let since_name = names.since_minutes;
        let since = match given(&raw.since_minutes) {
            Some(v) => query::whole_number(since_name, v, 1, 60)?,
            None => {
                return Err(Error::bad_param(
                    since_name,
                    format!("{since_name} is required (1 to 60)"),
                ))
            }
        };
        let (reference, to) = match given(&raw.time_now) {
            Some(v) => {
                let t = query::instant(names.time_now, v)?;
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
        let mut tx = self.db.begin().await?;
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
        row.map(DeviceRow::render)
            .ok_or(Error::NotFound("device status"))
    }
}

/// A parameter's value, unless it is absent or blank.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
