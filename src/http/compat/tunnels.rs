//! The Cloudflare-compatible tunnel connection routes: the operations of
//! [`crate::connectors::Connectors`], answered in the envelope with Cloudflare's snake_case
//! keys.
//!
//! What real clients need, beyond the shape: cloudflared's cleanup wants `200` (not `204`)
//! with `Content-Type: application/json`, and reads `client_id` from the query; SDKs decode
//! the cleanup's `result` into an object or a list, so it is `null`, which both accept.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::openapi::{AccountId, CfConnectorList, CfConnectorResult, CfEmptyResult};
use super::{ok, CfCaller, Envelope};
use crate::error::Error;
use crate::http::error::AppError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, cleanup))
        .routes(routes!(show))
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

pub(crate) fn snake_case(key: &str) -> String {
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

fn snake<T: Serialize>(value: T) -> Result<Value, Error> {
    serde_json::to_value(value)
        .map(snake_case_keys)
        .map_err(Error::internal)
}

/// The tunnel's connectors with their connections.
#[utoipa::path(
    get, path = "/client/v4/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections",
    tag = "cloudflare", operation_id = "cfListConnections",
    params(
        AccountId,
        ("tunnel_id" = Uuid, Path, description = "The tunnel's id"),
    ),
    security(("bearer" = ["tunnels:read"]), ("authEmail" = ["tunnels:read"], "authKey" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The connectors", body = CfConnectorList),
        (status = 404, description = "The account is not the caller's, or no such tunnel in it"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiPath((_, tunnel_id)): ApiPath<(String, Uuid)>,
) -> Result<Json<Envelope<Value>>, AppError> {
    let clients = state.connectors.list(&caller, tunnel_id, None).await?;
    Ok(ok(snake(clients)?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CleanupQuery {
    /// The connector to remove; all of them when absent or empty.
    #[param(
        pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    client_id: Option<String>,
}

/// Removes one connector (`client_id`), or all of them, whatever their state. Answers `200`
/// with `result: null`, as cloudflared expects.
#[utoipa::path(
    delete, path = "/client/v4/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections",
    tag = "cloudflare", operation_id = "cfDeleteConnections",
    params(
        AccountId,
        ("tunnel_id" = Uuid, Path, description = "The tunnel's id"),
        CleanupQuery,
    ),
    security(("bearer" = ["tunnels:write"]), ("authEmail" = ["tunnels:write"], "authKey" = ["tunnels:write"])),
    responses(
        (status = 200, description = "Removed", body = CfEmptyResult),
        (status = 404, description = "The account is not the caller's, or no such tunnel or connector in it"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn cleanup(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiPath((_, tunnel_id)): ApiPath<(String, Uuid)>,
    ApiQuery(query): ApiQuery<CleanupQuery>,
) -> Result<Json<Envelope<Value>>, AppError> {
    let client_id = query.client_id.as_deref().filter(|s| !s.is_empty());
    state
        .connectors
        .remove(&caller, tunnel_id, "client_id", client_id)
        .await?;
    Ok(ok(Value::Null))
}

/// One connector of the tunnel.
#[utoipa::path(
    get, path = "/client/v4/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connectors/{connector_id}",
    tag = "cloudflare", operation_id = "cfGetConnector",
    params(
        AccountId,
        ("tunnel_id" = Uuid, Path, description = "The tunnel's id"),
        ("connector_id" = Uuid, Path, description = "The connector's id"),
    ),
    security(("bearer" = ["tunnels:read"]), ("authEmail" = ["tunnels:read"], "authKey" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The connector", body = CfConnectorResult),
        (status = 404, description = "The account is not the caller's, or no such tunnel or connector in it"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn show(
    State(state): State<AppState>,
    CfCaller(caller): CfCaller,
    ApiPath((_, tunnel_id, connector_id)): ApiPath<(String, Uuid, Uuid)>,
) -> Result<Json<Envelope<Value>>, AppError> {
    let client = state
        .connectors
        .get(&caller, tunnel_id, connector_id)
        .await?;
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
