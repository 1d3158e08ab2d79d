//! `GET /metrics`: Prometheus text of this server's [`Meter`]. Request counts and latency by
//! matched route and status are recorded by [`track`]; domain code counts its own events
//! (`warren_heartbeats_total`, `warren_reaper_transitions_total`, …); gauges that describe
//! the database (tunnels by status, the webhook backlog, pool use) are read when scraped.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;
use crate::state::AppState;
use crate::telemetry::Meter;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(render))
}

/// Counts and times one request by method, matched route and status (called by the HTTP
/// layer's edge middleware for every request).
pub fn track(meter: &Meter, method: String, route: String, start: Instant, response: &Response) {
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    meter.record(|| {
        metrics::counter!("warren_http_requests_total", &labels).increment(1);
        metrics::histogram!("warren_http_request_duration_seconds", &labels)
            .record(start.elapsed().as_secs_f64());
    });
}

/// Renders the metrics. Database gauges are refreshed when the database answers; while it
/// does not (the gate is closed), the rest is still served: that is when operators look.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
            content_type = "text/plain"),
    )
)]
async fn render(State(state): State<AppState>) -> Response {
    if !state.gate.is_closed() {
        if let Err(err) = refresh_database_gauges(&state).await {
            match err {
                Error::Unavailable(_) => state.gate.close(),
                other => {
                    tracing::warn!(error = %other, "cannot read the database gauges for /metrics")
                }
            }
        }
    }
    let (open, idle) = (state.db.size() as f64, state.db.num_idle() as f64);
    state.meter.record(|| {
        metrics::gauge!("warren_db_pool_connections", "state" => "open").set(open);
        metrics::gauge!("warren_db_pool_connections", "state" => "idle").set(idle);
    });
    let mut response = state.meter.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

async fn refresh_database_gauges(state: &AppState) -> Result<(), Error> {
    for (status, count) in state.tunnels.count_by_status().await? {
        state
            .meter
            .record(|| metrics::gauge!("warren_tunnels", "status" => status).set(count as f64));
    }
    let backlog = state.webhooks.backlog().await?;
    state.meter.record(|| {
        metrics::gauge!("warren_webhook_deliveries_pending").set(backlog.pending as f64);
        metrics::gauge!("warren_webhook_oldest_pending_seconds").set(backlog.oldest.as_secs_f64());
    });
    Ok(())
}
