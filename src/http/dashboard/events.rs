//! The account's event feed, newest first, live.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::format::{ago, query, When};
use super::page::{choices, html, Choice, Layout, PageError};
use super::session::Signed;
use crate::events::{Event, EventQuery, EventType};
use crate::state::AppState;

/// Events a page of the feed shows.
const FEED_PAGE: &str = "50";

/// An event as a row of the feed.
pub struct EventRow {
    pub id: i64,
    pub when: When,
    pub kind: String,
    pub link: Option<String>,
    pub actor: String,
    pub summary: String,
}

fn field<'a>(data: &'a Value, key: &str) -> &'a str {
    data[key].as_str().unwrap_or("?")
}

impl EventRow {
    /// The event as a row for the user `viewer`.
    pub fn new(event: &Event, viewer: Uuid) -> Self {
        let data = &event.data;
        let kind = event.kind.as_str();
        let subject = event.subject.to_string();
        let (link, summary) = match kind.split('.').next().unwrap_or_default() {
            "tunnel" | "connector" if kind != EventType::TunnelDeleted.as_str() => {
                let summary = if kind.starts_with("tunnel.") {
                    let error = data["lastError"]
                        .as_str()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    format!(
                        "{} is {}{error}",
                        field(data, "slug"),
                        field(data, "status")
                    )
                } else {
                    let id = field(data, "id");
                    let short = id.get(..8).unwrap_or(id);
                    let version = data["version"].as_str().unwrap_or("unknown version");
                    format!("connector {short} ({version})")
                };
                (Some(format!("/tunnels/{subject}")), summary)
            }
            "tunnel" => (None, format!("{} was deleted", field(data, "slug"))),
            "device" => (
                Some(format!("/devices/{subject}")),
                format!(
                    "status {} in {}",
                    field(data, "status"),
                    field(data, "colo")
                ),
            ),
            "token" => (None, format!("token “{}”", field(data, "name"))),
            _ => (None, String::new()),
        };
        let actor = match event.principal["type"].as_str() {
            Some("reaper") => "Warren".to_owned(),
            Some("token") => "API token".to_owned(),
            Some("user") if event.principal["id"] == json!(viewer) => "you".to_owned(),
            Some("user") => "another user".to_owned(),
            _ => "—".to_owned(),
        };
        Self {
            id: event.id,
            when: ago(Utc::now(), event.occurred_at.0),
            kind: event.kind.clone(),
            link,
            actor,
            summary,
        }
    }
}

#[derive(Deserialize, Default)]
pub struct FeedQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject: Option<String>,
    before: Option<String>,
    fragment: Option<String>,
}

#[derive(Template)]
#[template(path = "events.html", config = "src/http/dashboard/askama.toml")]
struct FeedPage {
    layout: Layout,
    rows: Vec<EventRow>,
    type_choices: Vec<Choice>,
    subject: String,
    paged: bool,
    fragment_url: String,
    older_url: Option<String>,
}

#[derive(Template)]
#[template(path = "event_rows.html", config = "src/http/dashboard/askama.toml")]
struct Rows {
    rows: Vec<EventRow>,
}

/// "Any", then every event type.
fn type_options() -> Vec<(&'static str, &'static str)> {
    let mut options = vec![("", "Any")];
    options.extend(EventType::ALL.map(|t| (t.as_str(), t.as_str())));
    options
}

/// `GET /events?type=&subject=&before=`.
pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<FeedQuery>,
) -> Result<Response, PageError> {
    let filter = EventQuery {
        after: None,
        // The form sends its blank fields as empty values: blank means "any".
        types: q.kind.as_deref().filter(|t| !t.is_empty()),
        subject: q
            .subject
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()),
        limit: Some(FEED_PAGE),
    };
    let page = state
        .events
        .recent(&signed.session.principal, q.before.as_deref(), filter)
        .await?;
    let viewer = signed.session.principal.user_id;
    let rows: Vec<EventRow> = page
        .events
        .iter()
        .map(|e| EventRow::new(e, viewer))
        .collect();
    if q.fragment.is_some() {
        return Ok(html(StatusCode::OK, &Rows { rows }));
    }
    let filters = [
        ("type", q.kind.as_deref()),
        ("subject", q.subject.as_deref()),
    ];
    let older = page.next_after.map(|id| id.to_string());
    let mut older_pairs = filters.to_vec();
    older_pairs.push(("before", older.as_deref()));
    let older_url = older
        .as_ref()
        .map(|_| format!("/events{}", query(&older_pairs)));
    let mut here = filters.to_vec();
    here.push(("fragment", Some("1")));
    let fragment_url = format!("/events{}", query(&here));
    let page = FeedPage {
        layout: Layout::new(&signed, "events", "Events"),
        rows,
        type_choices: choices(&type_options(), q.kind.as_deref()),
        subject: q.subject.clone().unwrap_or_default(),
        paged: q.before.is_some(),
        fragment_url,
        older_url,
    };
    Ok(html(StatusCode::OK, &page))
}
