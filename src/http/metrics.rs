//! `GET /metrics`: Prometheus text. Request counts and latency by matched route and status
//! are recorded by [`track`]; domain code counts its own events with the `metrics` macros
//! (`warren_heartbeats_total`, `warren_reaper_transitions_total`, …); gauges that describe
//! the database (tunnels by status, pool use) are read when scraped.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::AppError;
use crate::state::AppState;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(render))
}

/// The process-wide recorder (installed on first use).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("warren_http_request_duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("warren_heartbeat_batch_size".into()),
                    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                )
            })
            .expect("bucket lists are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Counts and times one request by method, matched route and status (called by the HTTP
/// layer's edge middleware for every request).
pub fn track(method: String, route: String, start: Instant, response: &Response) {
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("warren_http_requests_total", &labels).increment(1);
    metrics::histogram!("warren_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
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
    let handle = handle();
    if !state.gate.is_closed() {
        if let Err(err) = refresh_tunnel_gauges(&state.db).await {
            match AppError::from(err) {
                AppError::Unavailable(_) => state.gate.close(),
                other => tracing::warn!(error = %other, "cannot count tunnels for /metrics"),
            }
        }
    }
    metrics::gauge!("warren_db_pool_connections", "state" => "open").set(state.db.size() as f64);
    metrics::gauge!("warren_db_pool_connections", "state" => "idle")
        .set(state.db.num_idle() as f64);
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

async fn refresh_tunnel_gauges(db: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    let mut conn = db.acquire().await?;
    for (status, count) in crate::tunnels::store::count_by_status(&mut conn).await? {
        metrics::gauge!("warren_tunnels", "status" => status).set(count as f64);
    }
    Ok(())
}
