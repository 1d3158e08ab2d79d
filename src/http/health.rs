//! `GET /healthz` (the process is up) and `GET /readyz` (the database answers).

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::PgPool;

use super::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(db): State<PgPool>) -> Result<Json<Value>, AppError> {
    let ping = sqlx::query_scalar!("SELECT 1 AS \"one!\"").fetch_one(&db);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(err)) => Err(AppError::Unavailable(err)),
        Err(_) => Err(AppError::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}
