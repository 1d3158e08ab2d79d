//! `GET /v1/tunnels`: the account's tunnels, newest first, a page at a time.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::ApiQuery;
use super::tunnels::view;
use crate::auth::{Principal, Scope};
use crate::state::AppState;
use crate::tunnels::store::{self, Cursor, Due};
use crate::tunnels::{Tunnel, TunnelView};

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

/// The default and largest page of `GET /v1/tunnels`.
pub const MAX_PAGE: i64 = 1000;

/// `true`, `1`, `false`, `0`, exactly as the seed says.
fn parse_bool_param(name: &str, value: Option<&str>) -> Result<bool, AppError> {
    match value {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(AppError::bad_param(
            name,
            format!("{name} must be one of true, 1, false, 0; got `{other}`"),
        )),
    }
}

fn parse_limit(value: Option<&str>) -> Result<i64, AppError> {
    let Some(raw) = value else {
        return Ok(MAX_PAGE);
    };
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(AppError::bad_param(
            "limit",
            format!("limit must be a whole number from 1 to {MAX_PAGE}; got `{raw}`"),
        )),
    }
}

/// A cursor is `{createdAt in microseconds}_{id}` of the last tunnel of the previous page.
fn encode_cursor(tunnel: &Tunnel) -> String {
    format!(
        "{}_{}",
        tunnel.created_at.timestamp_micros(),
        tunnel.id.simple()
    )
}

fn parse_cursor(value: Option<&str>) -> Result<Option<Cursor>, AppError> {
    let Some(raw) = value else {
        return Ok(None);
    };
    let parsed = raw.split_once('_').and_then(|(micros, id)| {
        Some(Cursor {
            // Within what PostgreSQL can store (a cursor is made from a creation time).
            created_at: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)
                .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(t)))?,
            id: Uuid::try_parse(id).ok()?,
        })
    });
    parsed.map(Some).ok_or_else(|| {
        AppError::bad_param(
            "after",
            "after must be a cursor taken from a `Link: rel=\"next\"` header",
        )
    })
}

/// A page of the account's tunnels, newest first, with `Link: <…>; rel="next"` when there
/// is more. The body stays the seed's bare array.
#[utoipa::path(
    get, path = "/v1/tunnels", tag = "tunnels", operation_id = "listTunnels",
    params(ListQuery),
    security(("bearer" = ["tunnels:read"])),
    responses(
        (status = 200, description = "The account's tunnels, newest first", body = Vec<TunnelView>,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when there is a next page"))),
    )
)]
#[tracing::instrument(skip_all, err)]
async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, AppError> {
    caller.require(Scope::TunnelsRead)?;
    let include_inactive = parse_bool_param("includeInactive", query.include_inactive.as_deref())?;
    let limit = parse_limit(query.limit.as_deref())?;
    let after = parse_cursor(query.after.as_deref())?;
    let mut tx = state.db.begin().await?;
    store::expire_due(
        &mut tx,
        Due {
            account_id: Some(caller.account_id),
            ..Due::default()
        },
    )
    .await?;
    let mut rows = store::list(
        &mut tx,
        caller.account_id,
        include_inactive,
        after,
        limit + 1,
    )
    .await?;
    tx.commit().await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => Some(format!(
            "</v1/tunnels?limit={limit}&after={}{}>; rel=\"next\"",
            encode_cursor(last),
            if include_inactive {
                "&includeInactive=true"
            } else {
                ""
            }
        )),
        _ => None,
    };
    let body = Json(
        rows.into_iter()
            .map(|t| view(&state, t))
            .collect::<Vec<_>>(),
    );
    Ok(match next {
        Some(link) => {
            let link = HeaderValue::from_str(&link).map_err(AppError::internal)?;
            ([(header::LINK, link)], body).into_response()
        }
        None => body.into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_inactive_accepts_exactly_the_seed_values() {
        assert!(parse_bool_param("x", Some("true")).unwrap());
        assert!(parse_bool_param("x", Some("1")).unwrap());
        assert!(!parse_bool_param("x", Some("false")).unwrap());
        assert!(!parse_bool_param("x", Some("0")).unwrap());
        assert!(!parse_bool_param("x", None).unwrap());
        for bad in ["yes", "TRUE", "", "2"] {
            assert!(parse_bool_param("x", Some(bad)).is_err(), "{bad}");
        }
    }
}
