//! `POST /v1/auth/register` and `POST /v1/auth/login`, over [`crate::auth::Auth`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::OriginIp;
use super::error::AppError;
use super::extract::ApiJson;
use crate::auth::{LoggedIn, Registered};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
}

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(max_length = 254, examples("ada@example.com"))]
    email: String,
    /// At least 12 characters when registering.
    #[schema(max_length = 1024, examples("correct horse battery staple"))]
    password: String,
}

/// Registers a user with a new account. Open to anyone only when the server allows
/// registration; the very first user may always register.
#[utoipa::path(
    post, path = "/v1/auth/register", tag = "auth", operation_id = "register",
    request_body = super::schemas::Registration,
    responses(
        (status = 201, description = "The new user", body = Registered),
        (status = 403, description = "Registration is closed on this server (`forbidden`)"),
        (status = 409, description = "The email is already registered (`email_taken`)"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Registered>), AppError> {
    let registered = state.auth.register(&body.email, body.password).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

/// Exchanges an email and password for an access token. Rate-limited per client address
/// and per email.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth", operation_id = "login",
    request_body = Credentials,
    responses(
        (status = 200, description = "An access token", body = LoggedIn),
        (status = 401, description = "The email or password is incorrect (`unauthorized`); which one is never said"),
        (status = 429, description = "Too many attempts (`rate_limited`); retry after `Retry-After` seconds"),
    )
)]
#[tracing::instrument(skip_all, err(level = "info"))]
async fn login(
    State(state): State<AppState>,
    OriginIp(client): OriginIp,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Json<LoggedIn>, AppError> {
    // The client's address comes through trusted proxies' X-Forwarded-For
    // (WARREN_TRUSTED_PROXIES), so that clients behind one proxy are not all counted as one.
    let logged_in = state
        .auth
        .login(&body.email, body.password, client.as_deref())
        .await?;
    Ok(Json(logged_in))
}
