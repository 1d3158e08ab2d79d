//! The Cloudflare-compatible tunnel connection routes (seeds `cloudflare-tunnel-connections.txt`
//! and `cloudflare-tunnel-connector-get.txt`): the native operations of
//! [`crate::http::connectors`], answered in the envelope with the seeds' snake_case keys.
//!
//! What real clients need, beyond the shape: cloudflared's cleanup wants `200` (not `204`)
//! with `Content-Type: application/json`, and reads `client_id` from the query; SDKs decode
//! the cleanup's `result` into an object or a list, so it is `null`, which both accept.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{ok, CfCaller, Envelope};
use crate::http::connectors::{connector, connectors_of, remove_connectors};
use crate::http::error::AppError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

const CONNECTIONS: &str = "/client/v4/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections";
const CONNECTOR: &str =
    "/client/v4/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connectors/{connector_id}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(CONNECTIONS, get(list).delete(cleanup))
        .route(CONNECTOR, get(show))
}

/// `configVersion` → `config_version`, in every object of the value.
pub fn snake_case_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (snake_case(&key), snake_case_keys(value)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_case_keys).collect()),
        other => other,
    }
}

fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn snake<T: Serialize>(value: T) -> Result<Value, AppError> {
    serde_json::to_value(value)
        .map(snake_case_keys)
        .map_err(AppError::internal)
}

#[tracing::instrument(skip_all, err)]
async fn list(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiPath((_, tunnel_id)): ApiPath<(String, Uuid)>,
) -> Result<Json<Envelope<Value>>, AppError> {
    let clients = connectors_of(&state, &caller, tunnel_id, None).await?;
    Ok(ok(snake(clients)?))
}

#[derive(Deserialize)]
pub struct CleanupQuery {
    client_id: Option<String>,
}

#[tracing::instrument(skip_all, err)]
async fn cleanup(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiPath((_, tunnel_id)): ApiPath<(String, Uuid)>,
    ApiQuery(query): ApiQuery<CleanupQuery>,
) -> Result<Json<Envelope<Value>>, AppError> {
    let client_id = query.client_id.as_deref().filter(|s| !s.is_empty());
    remove_connectors(&state, &caller, tunnel_id, "client_id", client_id).await?;
    Ok(ok(Value::Null))
}

#[tracing::instrument(skip_all, err)]
async fn show(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiPath((_, tunnel_id, connector_id)): ApiPath<(String, Uuid, Uuid)>,
) -> Result<Json<Envelope<Value>>, AppError> {
    let client = connector(&state, &caller, tunnel_id, connector_id).await?;
    Ok(ok(snake(client)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_become_snake_case_at_every_depth() {
        let value = json!({"configVersion": 1, "conns": [{"isPendingReconnect": true, "id": "x"}]});
        assert_eq!(
            snake_case_keys(value),
            json!({"config_version": 1, "conns": [{"is_pending_reconnect": true, "id": "x"}]})
        );
    }
}
