//! `GET /v1/tunnels`: the account's tunnels, newest first, a page at a time.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::AppError;
use super::extract::ApiQuery;
use crate::auth::Principal;
use crate::error::Error;
use crate::state::AppState;
use crate::tunnels::{ListRequest, TunnelView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Also list `stopped` and `failed` tunnels: `true`, `1`, `false` or `0`.
    #[param(value_type = Option<String>, pattern = "^(true|false|1|0)$")]
    include_inactive: Option<String>,
    /// Page size, 1 to 1000 (the default).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The cursor of the next page, as the `Link` header gives it.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-fA-F]{32}$")]
    after: Option<String>,
}

/// A page of the account's tunnels, newest first, with `Link: <…>; rel="next"` when there
/// is more. The body stays a bare array, as it has always been.
#[utoipa::path(
    get, path = "/v1/tunnels", tag = "tunnels", operation_id = "listTunnels",
    params(ListQuery),
    security(("bearer" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The account's tunnels, newest first", body = Vec<TunnelView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when there is a next page"))),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, AppError> {
    let request = ListRequest {
        include_inactive: query.include_inactive.as_deref(),
        limit: query.limit.as_deref(),
        after: query.after.as_deref(),
    };
    let page = state.tunnels.list(&caller, request).await?;
    let body = Json(page.tunnels);
    let include_inactive = page.include_inactive;
    let Some(next) = page.next else {
        return Ok(body.into_response());
    };
    let link = format!(
        "</v1/tunnels?limit={}&after={next}{}>; rel=\"next\"",
        page.limit,
        if include_inactive {
            "&includeInactive=true"
        } else {
            ""
        }
    );
    let link = HeaderValue::from_str(&link).map_err(Error::internal)?;
    Ok(([(header::LINK, link)], body).into_response())
}
