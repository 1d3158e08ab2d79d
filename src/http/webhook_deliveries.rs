//! A webhook endpoint's deliveries: the log with its attempts, a redelivery, a test ping;
//! over [`crate::webhooks::Webhooks`].

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{ApiPath, ApiQuery};
use crate::auth::Principal;
use crate::error::Error;
use crate::state::AppState;
use crate::webhooks::DeliveryView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(ping))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The cursor of the next page, as the `Link` header gives it.
    #[param(value_type = Option<i64>, minimum = 1)]
    after: Option<String>,
}

/// The endpoint's deliveries, newest first, each with its attempts (time, status, latency,
/// error, the start of the answer), with `Link: <…>; rel="next"` when there are more.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "listWebhookDeliveries",
    params(("id" = Uuid, Path, description = "The endpoint's id"), DeliveriesQuery),
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 200, description = "The deliveries, newest first", body = Vec<DeliveryView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when there is a next page"))),
        (status = 404, description = "No such endpoint in the caller's account (`not_found`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn deliveries(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Response, AppError> {
    let page = state
        .webhooks
        .deliveries(&caller, id, query.after.as_deref(), query.limit.as_deref())
        .await?;
    let body = Json(page.deliveries);
    let Some(next) = page.next else {
        return Ok(body.into_response());
    };
    let link = format!(
        "</v1/webhooks/{id}/deliveries?limit={}&after={next}>; rel=\"next\"",
        page.limit
    );
    let link = HeaderValue::from_str(&link).map_err(Error::internal)?;
    Ok(([(header::LINK, link)], body).into_response())
}

/// Delivers the message of one of the endpoint's deliveries again: a new delivery, after
/// whatever the endpoint has queued, with the same body and `webhook-id` (receivers that
/// deduplicate by it see the same message). The endpoint must be enabled.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver", tag = "webhooks",
    operation_id = "redeliverWebhook",
    params(
        ("id" = Uuid, Path, description = "The endpoint's id"),
        ("deliveryId" = Uuid, Path, description = "The delivery to repeat"),
    ),
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 202, description = "The new delivery, queued", body = DeliveryView),
        (status = 404, description = "No such endpoint in the caller's account, or no such delivery of it (`not_found`)"),
        (status = 409, description = "The endpoint is disabled (`webhook_disabled`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn redeliver(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<DeliveryView>), AppError> {
    let delivery = state.webhooks.redeliver(&caller, id, delivery_id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// Queues a test event, `webhook.ping.v1`, delivered and signed like every other; its
/// delivery shows in the log.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/ping", tag = "webhooks", operation_id = "pingWebhook",
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    security(("bearer" = ["webhooks:write"])),
    responses(
        (status = 202, description = "The ping's delivery, queued", body = DeliveryView),
        (status = 404, description = "No such endpoint in the caller's account (`not_found`)"),
        (status = 409, description = "The endpoint is disabled (`webhook_disabled`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn ping(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<DeliveryView>), AppError> {
    let delivery = state.webhooks.ping(&caller, id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
