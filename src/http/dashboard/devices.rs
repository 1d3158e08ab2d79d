//! The device fleet: the list with the API's filters and sorts (the same query, parsed by
//! `fleet::query`), a chart of hourly counts by status, and a device's page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use super::charts;
use super::format::{iso, query};
use super::page::{choices, html, Choice, Layout, PageError};
use super::session::Signed;
use super::tunnels::id_param;
use crate::auth::Principal;
use crate::fleet::query::{RawList, NATIVE, SORT_KEYS};
use crate::state::AppState;

/// A device (or one of its hours) as a row.
pub struct DeviceRow {
    pub device_id: String,
    pub status: String,
    pub colo: String,
    pub platform: String,
    pub mode: String,
    pub version: String,
    pub timestamp: String,
}

fn text(device: &Value, key: &str) -> String {
    match &device[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl DeviceRow {
    fn new(device: &Value) -> Self {
        Self {
            device_id: text(device, "deviceId"),
            status: text(device, "status"),
            colo: text(device, "colo"),
            platform: text(device, "platform"),
            mode: text(device, "mode"),
            version: text(device, "version"),
            timestamp: text(device, "timestamp"),
        }
    }

    pub fn status_class(&self) -> String {
        charts::class_of(&self.status)
    }
}

/// The list's query: the API's parameters (native names), the chart's `hours` (24 or
/// 168), and `fragment` for the script.
#[derive(Deserialize, Default)]
pub struct DevicesQuery {
    #[serde(flatten)]
    raw: RawList,
    hours: Option<String>,
    fragment: Option<String>,
}

fn hours(raw: Option<&str>) -> Result<i64, PageError> {
    match raw {
        None | Some("" | "24") => Ok(24),
        Some("168") => Ok(168),
        Some(_) => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "The chart covers 24 or 168 hours.",
        )),
    }
}

/// The chart of hourly status counts, and its legend: (status, class, devices now).
struct Chart {
    svg: String,
    legend: Vec<(String, String)>,
}

async fn chart(
    state: &AppState,
    caller: &Principal,
    raw: &RawList,
    hours: i64,
    label: &str,
) -> Result<Chart, PageError> {
    let counts = state
        .fleet
        .hourly_status_counts(caller, raw, &NATIVE, hours)
        .await?;
    let order = charts::status_order(&counts);
    let columns = charts::hours(&counts, Utc::now(), hours);
    Ok(Chart {
        svg: charts::hourly_bars(&columns, &order, label),
        legend: order
            .into_iter()
            .map(|s| {
                let class = charts::class_of(&s);
                (s, class)
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "devices.html", config = "src/http/dashboard/askama.toml")]
struct ListPage {
    layout: Layout,
    live: ListLive,
    raw: RawList,
    source_choices: Vec<Choice>,
    sort_choices: Vec<Choice>,
    fragment_url: String,
}

#[derive(Template)]
#[template(path = "devices_live.html", config = "src/http/dashboard/askama.toml")]
struct ListLive {
    rows: Vec<DeviceRow>,
    chart: String,
    legend: Vec<(String, String)>,
    hours: i64,
    summary: String,
    prev_url: Option<String>,
    next_url: Option<String>,
    day_url: String,
    week_url: String,
}

const SOURCES: [(&str, &str); 3] = [
    ("last_seen", "Latest per device (last hour)"),
    ("hourly", "Hour by hour"),
    ("raw", "Every report"),
];

/// The query parameters of the list as given, for its links.
fn pairs<'a>(raw: &'a RawList, hours: Option<&'a str>) -> Vec<(&'static str, Option<&'a str>)> {
    vec![
        ("source", raw.source.as_deref()),
        ("from", raw.from.as_deref()),
        ("to", raw.to.as_deref()),
        ("colo", raw.colo.as_deref()),
        ("deviceId", raw.device_id.as_deref()),
        ("mode", raw.mode.as_deref()),
        ("platform", raw.platform.as_deref()),
        ("status", raw.status.as_deref()),
        ("version", raw.version.as_deref()),
        ("sortBy", raw.sort_by.as_deref()),
        ("perPage", raw.per_page.as_deref()),
        ("hours", hours),
    ]
}

fn with<'a>(
    mut pairs: Vec<(&'static str, Option<&'a str>)>,
    extra: &[(&'static str, &'a str)],
) -> String {
    for (name, value) in extra {
        pairs.retain(|(n, _)| n != name);
        pairs.push((name, Some(value)));
    }
    format!("/devices{}", query(&pairs))
}

/// `GET /devices?…`: the fleet list and the hourly chart.
pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<DevicesQuery>,
) -> Result<Response, PageError> {
    let caller = &signed.session.principal;
    let hours = hours(q.hours.as_deref())?;
    let page = state.fleet.list(caller, &q.raw, &NATIVE).await?;
    let chart = chart(
        &state,
        caller,
        &q.raw,
        hours,
        "Devices by status, hour by hour",
    )
    .await?;
    let base = pairs(&q.raw, q.hours.as_deref());
    let number = page.page.to_string();
    let (prev, next) = ((page.page - 1).to_string(), (page.page + 1).to_string());
    let total = if page.total_count_exact {
        page.total_count.to_string()
    } else {
        format!("at least {}", page.total_count)
    };
    let live = ListLive {
        rows: page.result.iter().map(DeviceRow::new).collect(),
        chart: chart.svg,
        legend: chart.legend,
        hours,
        summary: format!(
            "Page {} of {}; {total} rows",
            page.page,
            page.total_pages.max(1)
        ),
        prev_url: (page.page > 1).then(|| with(base.clone(), &[("page", &prev)])),
        next_url: (page.page < page.total_pages).then(|| with(base.clone(), &[("page", &next)])),
        day_url: with(base.clone(), &[("hours", "24"), ("page", &number)]),
        week_url: with(base.clone(), &[("hours", "168"), ("page", &number)]),
    };
    if q.fragment.is_some() {
        return Ok(html(StatusCode::OK, &live));
    }
    let fragment_url = with(base, &[("page", &number), ("fragment", "1")]);
    let page = ListPage {
        layout: Layout::new(&signed, "devices", "Devices"),
        live,
        source_choices: choices(&SOURCES, q.raw.source.as_deref()),
        sort_choices: choices(
            &SORT_KEYS.map(|k| (k, k)),
            Some(q.raw.sort_by.as_deref().unwrap_or("timestamp")),
        ),
        raw: q.raw,
        fragment_url,
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Deserialize, Default)]
pub struct DeviceQuery {
    page: Option<String>,
    hours: Option<String>,
}

#[derive(Template)]
#[template(path = "device.html", config = "src/http/dashboard/askama.toml")]
struct DevicePage {
    layout: Layout,
    device: DeviceRow,
    fields: Vec<(String, String)>,
    history: Vec<DeviceRow>,
    chart: String,
    legend: Vec<(String, String)>,
    hours: i64,
    prev_url: Option<String>,
    next_url: Option<String>,
}

/// `GET /devices/{id}`: the device's latest snapshot, its hours of the last 7 days, and
/// its status hour by hour.
pub async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(raw_id): Path<String>,
    Query(q): Query<DeviceQuery>,
) -> Result<Response, PageError> {
    let id = id_param(&raw_id, "device")?.to_string();
    let caller = &signed.session.principal;
    let hours = hours(q.hours.as_deref())?;
    let week_ago = iso(Utc::now() - chrono::Duration::days(7) + chrono::Duration::minutes(1));
    let latest = RawList {
        source: Some("raw".into()),
        device_id: Some(id.clone()),
        from: Some(week_ago.clone()),
        per_page: Some("1".into()),
        ..RawList::default()
    };
    let latest = state.fleet.list(caller, &latest, &NATIVE).await?;
    let Some(device) = latest.result.first() else {
        let message = "There is no such device, or it has not reported in the last 7 days.";
        return Err(PageError::new(StatusCode::NOT_FOUND, message));
    };
    let mut fields: Vec<(String, String)> = device
        .as_object()
        .map(|o| o.keys().map(|k| (k.clone(), text(device, k))).collect())
        .unwrap_or_default();
    fields.sort();
    let history = RawList {
        source: Some("hourly".into()),
        device_id: Some(id.clone()),
        from: Some(week_ago),
        per_page: Some("24".into()),
        page: q.page.clone(),
        ..RawList::default()
    };
    let history = state.fleet.list(caller, &history, &NATIVE).await?;
    let for_chart = RawList {
        device_id: Some(id.clone()),
        ..RawList::default()
    };
    let chart = chart(
        &state,
        caller,
        &for_chart,
        hours,
        "This device's status, hour by hour",
    )
    .await?;
    let here = format!("/devices/{id}?hours={hours}&page=");
    let page = DevicePage {
        layout: Layout::new(&signed, "devices", format!("Device {id}")),
        device: DeviceRow::new(device),
        fields,
        history: history.result.iter().map(DeviceRow::new).collect(),
        chart: chart.svg,
        legend: chart.legend,
        hours,
        prev_url: (history.page > 1).then(|| format!("{here}{}", history.page - 1)),
        next_url: (history.page < history.total_pages)
            .then(|| format!("{here}{}", history.page + 1)),
    };
    Ok(html(StatusCode::OK, &page))
}
