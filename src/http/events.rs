//! `GET /v1/events` (a page of the account's log) and `GET /v1/events/stream` (the log as
//! Server-Sent Events), over [`crate::events::Events`].

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::bearer;
use super::error::AppError;
use super::extract::ApiQuery;
use crate::auth::Principal;
use crate::error::Error;
use crate::events::{Event, EventQuery, StreamItem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stream))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this id (default 0: from the oldest kept).
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    /// Comma-separated event types, e.g. `tunnel.failed.v1,connector.disconnected.v1`.
    #[param(schema_with = crate::events::types_filter_schema)]
    types: Option<String>,
    /// Only events about this tunnel, device or token (a hyphenated UUID).
    #[param(value_type = Option<uuid::Uuid>)]
    subject: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

impl EventsQuery {
    fn as_query(&self) -> EventQuery<'_> {
        EventQuery {
            after: self.after.as_deref(),
            types: self.types.as_deref(),
            subject: self.subject.as_deref(),
            limit: self.limit.as_deref(),
        }
    }
}

/// The account's events after `after`, oldest first, with `Link: <…>; rel="next"` when the
/// page is full.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "listEvents",
    params(EventsQuery),
    security(("bearer" = ["events:read"])),
    responses(
        (status = 200, description = "The events, in order", body = Vec<Event>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when the page is full"))),
        (status = 409, description = "`after` is past the latest event (`event_position_ahead`); `resumeAfter` is the latest"),
        (status = 410, description = "The events after `after` were deleted by retention (`events_expired`); `resumeAfter` says where the log continues"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, AppError> {
    let page = state.events.page(&caller, query.as_query()).await?;
    let body = Json(page.events);
    let Some(next) = page.next_after else {
        return Ok(body.into_response());
    };
    let mut link = format!("</v1/events?after={next}&limit={}", page.limit);
    for (name, value) in [("types", &query.types), ("subject", &query.subject)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            link.push_str(&format!("&{name}={}", encode(value)));
        }
    }
    link.push_str(">; rel=\"next\"");
    let link = HeaderValue::from_str(&link).map_err(Error::internal)?;
    Ok(([(header::LINK, link)], body).into_response())
}

/// A query value with what a URL cannot hold percent-encoded.
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The account's events as Server-Sent Events: each with `id:` (its id), `event:` (its
/// type) and `data:` (the event). Resumes after `Last-Event-ID` (or `after`); without
/// either, only events from now on. A position older than retention gets `event: reset`
/// first (its `id:` is where the stream goes on). An idle stream sends `: keep-alive`
/// every 15 s. The stream ends once its token is revoked or has expired (checked every 5 s).
#[utoipa::path(
    get, path = "/v1/events/stream", tag = "events", operation_id = "streamEvents",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this event (what the browser's EventSource sends when it reconnects); wins over `after`"),
    ),
    security(("bearer" = ["events:read"])),
    responses(
        (status = 200, description = "The stream of events", content_type = "text/event-stream", body = String),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn stream(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    let last_event_id =
        match headers.get("last-event-id") {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                Error::bad_param("Last-Event-ID", "Last-Event-ID must be an event id")
            })?),
        };
    let subscription = state
        .events
        .subscribe(&caller, last_event_id, query.as_query())
        .await?;
    // The stream ends once its token no longer holds (revoked, or an access token expired).
    let token = bearer(&headers)?.unwrap_or_default().to_owned();
    let revoked = bearer_revoked(state.clone(), token);
    let items = subscription
        .into_stream()
        .map(|item| Ok::<_, Infallible>(sse(item)))
        .take_until(revoked);
    // An idle stream sends `: keep-alive`, so proxies keep it open (every 15 s by default).
    let keep_alive = KeepAlive::new()
        .interval(state.config.event_keep_alive)
        .text("keep-alive");
    Ok(Sse::new(items).keep_alive(keep_alive))
}

/// Resolves once `token` is refused, checked every `event_auth_recheck`. A check the database
/// could not answer is no refusal: the stream goes on, and the next check decides.
async fn bearer_revoked(state: AppState, token: String) {
    loop {
        tokio::time::sleep(state.config.event_auth_recheck).await;
        if let Err(Error::Unauthorized(_)) = state.auth.authenticate_bearer(&token).await {
            return;
        }
    }
}

fn sse(item: StreamItem) -> SseEvent {
    match item {
        StreamItem::Event(event) => SseEvent::default()
            .id(event.id.to_string())
            .event(event.kind.as_str())
            .data(serde_json::to_string(&*event).unwrap_or_default()),
        StreamItem::Reset {
            requested,
            resume_after,
            ahead,
        } => SseEvent::default()
            .id(resume_after.to_string())
            .event("reset")
            .data(
                json!({
                    "reason": match ahead {
                        false => "the events after the requested position are older than the retention and were deleted",
                        true => "the requested position is past the latest event",
                    },
                    "requested": requested,
                    "resumeAfter": resume_after,
                })
                .to_string(),
            ),
    }
}
