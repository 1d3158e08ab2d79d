//! The tunnels page (filtered, live) and a tunnel's page (timeline, connectors, stop and
//! delete).

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::charts;
use super::format::{ago, left, percent, query, stamp, When};
use super::page::{choices, html, Choice, Layout, PageError};
use super::session::{Posted, Signed};
use crate::connectors::Client;
use crate::state::AppState;
use crate::tunnels::{SearchRequest, Status, TunnelView};

/// A tunnel as a row of the list and the head of its page.
pub struct Row {
    pub id: Uuid,
    pub slug: String,
    pub hostname: String,
    pub status: String,
    pub port: i32,
    pub created: When,
    pub heartbeat: Option<When>,
    pub lease: Option<When>,
    pub stopped: Option<When>,
    pub last_error: Option<String>,
}

impl Row {
    fn new(t: TunnelView) -> Self {
        let now = Utc::now();
        Self {
            id: t.id,
            created: ago(now, t.created_at.0),
            heartbeat: t
                .lease
                .as_ref()
                .and_then(|l| l.last_heartbeat_at)
                .map(|at| ago(now, at.0)),
            lease: t.lease.as_ref().map(|l| left(now, l.expires_at.0)),
            stopped: t.stopped_at.map(|at| ago(now, at.0)),
            slug: t.slug,
            hostname: t.hostname,
            status: t.status,
            port: t.requested_port,
            last_error: t.last_error,
        }
    }

    fn status(&self) -> Option<Status> {
        Status::parse(&self.status)
    }

    /// A user may ask a `creating` or `active` tunnel to stop.
    pub fn can_stop(&self) -> bool {
        self.status()
            .is_some_and(|s| Status::Stopping.patch_sources().contains(&s))
    }

    /// Only `stopped` and `failed` tunnels can be deleted.
    pub fn can_delete(&self) -> bool {
        self.status().is_some_and(|s| !s.is_live())
    }
}

/// A page's query: its filters (bookmarkable), and `fragment` when the script asks for
/// the live part alone.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    live: Option<String>,
    q: Option<String>,
    after: Option<String>,
    fragment: Option<String>,
}

#[derive(Template)]
#[template(path = "tunnels.html", config = "src/http/dashboard/askama.toml")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    status_choices: Vec<Choice>,
    live_choices: Vec<Choice>,
    q: String,
    fragment_url: String,
    next_url: Option<String>,
}

#[derive(Template)]
#[template(path = "tunnel_rows.html", config = "src/http/dashboard/askama.toml")]
struct Rows {
    rows: Vec<Row>,
}

const STATUS_CHOICES: [(&str, &str); 6] = [
    ("", "Any"),
    ("creating", "creating"),
    ("active", "active"),
    ("stopping", "stopping"),
    ("stopped", "stopped"),
    ("failed", "failed"),
];
const LIVE_CHOICES: [(&str, &str); 3] = [
    ("all", "All tunnels"),
    ("live", "Live only"),
    ("inactive", "Stopped and failed"),
];

/// `GET /tunnels?status=&live=&q=&after=`: the account's tunnels, newest first.
pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query_): Query<ListQuery>,
) -> Result<Response, PageError> {
    let request = SearchRequest {
        status: query_.status.as_deref(),
        liveness: query_.live.as_deref(),
        slug: query_.q.as_deref(),
        after: query_.after.as_deref(),
    };
    let found = state
        .tunnels
        .search(&signed.session.principal, request)
        .await?;
    let rows: Vec<Row> = found.tunnels.into_iter().map(Row::new).collect();
    if query_.fragment.is_some() {
        return Ok(html(StatusCode::OK, &Rows { rows }));
    }
    let filters = [
        ("status", query_.status.as_deref()),
        ("live", query_.live.as_deref()),
        ("q", query_.q.as_deref()),
    ];
    let mut here = filters.to_vec();
    here.push(("after", query_.after.as_deref()));
    here.push(("fragment", Some("1")));
    let next = found.next.map(|c| c.to_string());
    let mut next_pairs = filters.to_vec();
    next_pairs.push(("after", next.as_deref()));
    let next_url = next
        .as_ref()
        .map(|_| format!("/tunnels{}", query(&next_pairs)));
    let page = ListPage {
        layout: Layout::new(&signed, "tunnels", "Tunnels"),
        rows,
        status_choices: choices(&STATUS_CHOICES, query_.status.as_deref()),
        live_choices: choices(&LIVE_CHOICES, query_.live.as_deref()),
        q: query_.q.clone().unwrap_or_default(),
        fragment_url: format!("/tunnels{}", query(&here)),
        next_url,
    };
    Ok(html(StatusCode::OK, &page))
}

/// A connector as a row of the tunnel's page.
pub struct ConnectorRow {
    pub id: Uuid,
    pub version: String,
    pub arch: String,
    pub origin_ip: String,
    pub connections: usize,
    pub pending: usize,
    pub colos: String,
}

impl ConnectorRow {
    fn new(client: Client) -> Self {
        let mut ips: Vec<&str> = client
            .conns
            .iter()
            .filter_map(|c| c.origin_ip.as_deref())
            .collect();
        ips.dedup();
        let mut colos: Vec<&str> = client
            .conns
            .iter()
            .filter_map(|c| c.colo_name.as_deref())
            .collect();
        colos.sort_unstable();
        colos.dedup();
        Self {
            id: client.id,
            version: client.version.clone().unwrap_or_else(|| "—".into()),
            arch: client.arch.clone().unwrap_or_else(|| "—".into()),
            origin_ip: if ips.is_empty() {
                "—".into()
            } else {
                ips.join(", ")
            },
            connections: client.conns.len(),
            pending: client
                .conns
                .iter()
                .filter(|c| c.is_pending_reconnect)
                .count(),
            colos: colos.join(", "),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    range: Option<String>,
    fragment: Option<String>,
}

/// The live part of a tunnel's page.
#[derive(Template)]
#[template(path = "tunnel_live.html", config = "src/http/dashboard/askama.toml")]
struct Live {
    csrf: String,
    t: Row,
    range: &'static str,
    chart: String,
    uptime: String,
    start: String,
    end: String,
    transitions: Vec<(String, String, String)>,
    connectors: Vec<ConnectorRow>,
}

#[derive(Template)]
#[template(path = "tunnel.html", config = "src/http/dashboard/askama.toml")]
struct ShowPage {
    layout: Layout,
    live: Live,
    fragment_url: String,
}

/// A tunnel id from the path; anything else is a tunnel that does not exist.
pub fn id_param(raw: &str, what: &str) -> Result<Uuid, PageError> {
    Uuid::try_parse(raw)
        .map_err(|_| PageError::new(StatusCode::NOT_FOUND, format!("There is no such {what}.")))
}

/// `GET /tunnels/{id}?range=24h|7d`.
pub async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "tunnel")?;
    let caller = &signed.session.principal;
    let (range, window) = match q.range.as_deref() {
        Some("7d") => ("7d", Duration::from_secs(7 * 86_400)),
        None | Some("" | "24h") => ("24h", Duration::from_secs(86_400)),
        Some(_) => {
            let message = "The range must be 24h or 7d.";
            return Err(PageError::new(StatusCode::BAD_REQUEST, message));
        }
    };
    let tunnel = state.tunnels.get(caller, id).await?;
    let timeline = state.tunnels.timeline(caller, id, window).await?;
    let clients = state.connectors.list(caller, id, None).await?;
    let label = format!(
        "Status of {} over the last {}",
        tunnel.slug,
        range_name(range)
    );
    let live = Live {
        csrf: signed.session.csrf_token.clone(),
        chart: charts::timeline(&timeline, &label),
        uptime: timeline.uptime().map_or("—".to_owned(), percent),
        start: stamp(timeline.start),
        end: stamp(timeline.end),
        transitions: timeline
            .transitions
            .iter()
            .rev()
            .map(|t| {
                (
                    stamp(t.at),
                    t.from.as_str().to_owned(),
                    t.to.as_str().to_owned(),
                )
            })
            .collect(),
        connectors: clients.into_iter().map(ConnectorRow::new).collect(),
        t: Row::new(tunnel),
        range,
    };
    if q.fragment.is_some() {
        return Ok(html(StatusCode::OK, &live));
    }
    let page = ShowPage {
        layout: Layout::new(&signed, "tunnels", format!("Tunnel {}", live.t.slug)),
        fragment_url: format!("/tunnels/{id}?range={range}&fragment=1"),
        live,
    };
    Ok(html(StatusCode::OK, &page))
}

fn range_name(range: &str) -> &'static str {
    if range == "7d" {
        "7 days"
    } else {
        "24 hours"
    }
}

/// `POST /tunnels/{id}/stop`: asks the agent to stop (the tunnel becomes `stopping`).
pub async fn stop(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "tunnel")?;
    let caller = &posted.signed.session.principal;
    state.tunnels.update(caller, id, "stopping", None).await?;
    Ok(Redirect::to(&format!("/tunnels/{id}")).into_response())
}

/// `POST /tunnels/{id}/delete`: removes a stopped or failed tunnel from the history.
pub async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "tunnel")?;
    state
        .tunnels
        .delete(&posted.signed.session.principal, id)
        .await?;
    Ok(Redirect::to("/tunnels").into_response())
}
