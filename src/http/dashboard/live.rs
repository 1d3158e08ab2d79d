//! `GET /live`: the account's events as Server-Sent Events for the dashboard's script,
//! authenticated by the session cookie. Each message says only what changed (`type`,
//! `subject`); the script then re-renders the parts of the page that show it, from the
//! server. The stream ends when the session does (it expires or its user signs out).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::page::PageError;
use super::session::Signed;
use crate::events::{EventQuery, StreamItem};
use crate::state::AppState;

pub const PATH: &str = "/live";

pub async fn stream(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, PageError> {
    // The browser's EventSource sends the last id it saw when it reconnects.
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
    let subscription = state
        .events
        .subscribe(&signed.session.principal, last, EventQuery::default())
        .await?;
    let items = subscription
        .into_stream()
        .map(|item| Ok::<_, Infallible>(message(item)));
    let left = (signed.session.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    let ended = session_ended(state.clone(), signed.secret.clone(), left);
    let items = items.take_until(ended);
    let keep_alive = KeepAlive::new()
        .interval(state.config.event_keep_alive)
        .text("keep-alive");
    Ok(Sse::new(items).keep_alive(keep_alive))
}

/// Resolves when the session expires (`left` from now) or is gone (signed out), checked
/// every `event_auth_recheck`. A check the database could not answer is not an end.
async fn session_ended(state: AppState, secret: String, left: std::time::Duration) {
    let checks = async {
        loop {
            tokio::time::sleep(state.config.event_auth_recheck).await;
            if let Ok(None) = state.auth.session(&secret).await {
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(left) => {}
        _ = checks => {}
    }
}

fn message(item: StreamItem) -> SseEvent {
    match item {
        StreamItem::Event(event) => SseEvent::default()
            .id(event.id.to_string())
            .data(json!({"type": event.kind, "subject": event.subject}).to_string()),
        // Events were missed: the page reloads everything it shows.
        StreamItem::Reset { resume_after, .. } => SseEvent::default()
            .id(resume_after.to_string())
            .data(json!({"type": "reset"}).to_string()),
    }
}
