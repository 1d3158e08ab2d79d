//! `POST /v1/auth/register` and `POST /v1/auth/login`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::AppError;
use super::extract::ApiJson;
use crate::auth::{password, users, Scopes};
use crate::connectors::origin::OriginIp;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
}

const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 1024;

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(max_length = 254, examples("ada@example.com"))]
    email: String,
    /// At least 12 characters when registering.
    #[schema(max_length = 1024, examples("correct horse battery staple"))]
    password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    id: Uuid,
    email: String,
    /// 32 lowercase hex characters, as Cloudflare writes account ids.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    account_id: String,
}

/// Plain syntax: `local@domain.tld`, no spaces, at most 254 characters.
fn validate_email(email: &str) -> Result<(), AppError> {
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if valid {
        Ok(())
    } else {
        Err(AppError::invalid(
            "email",
            "email must be an address such as `name@example.com`",
        ))
    }
}

fn validate_password(password: &str) -> Result<(), AppError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        return Err(AppError::invalid(
            "password",
            format!("password must be at least {MIN_PASSWORD} characters long"),
        ));
    }
    if len > MAX_PASSWORD {
        return Err(AppError::invalid(
            "password",
            format!("password must be at most {MAX_PASSWORD} characters long"),
        ));
    }
    Ok(())
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
#[tracing::instrument(skip_all, err)]
async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Registered>), AppError> {
    let email = body.email.trim().to_owned();
    validate_email(&email)?;
    validate_password(&body.password)?;
    let hash = password::hash(body.password).await?;

    let mut tx = state.db.begin().await?;
    users::lock_registrations(&mut tx).await?;
    if !state.config.allow_registration && users::any_user_exists(&mut tx).await? {
        return Err(AppError::Forbidden(
            "registration is closed on this server (WARREN_ALLOW_REGISTRATION=false)".into(),
        ));
    }
    let user = users::create_with_account(&mut tx, &email, &hash).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            id: user.id,
            email: user.email,
            account_id: user.account_id.simple().to_string(),
        }),
    ))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedIn {
    /// A JWT (HS256) carrying every scope.
    access_token: String,
    #[schema(pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
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
#[tracing::instrument(skip_all, err)]
async fn login(
    State(state): State<AppState>,
    OriginIp(client): OriginIp,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Json<LoggedIn>, AppError> {
    // Both counted on every attempt, so neither guessing one account's password from many
    // addresses nor many accounts' from one address gets far.
    let limiter = &state.login_limiter;
    // The client's address, through trusted proxies' X-Forwarded-For (WARREN_TRUSTED_PROXIES),
    // so that clients behind one proxy are not all counted as one.
    let address = client.unwrap_or_default();
    let by_address = limiter.attempt(&format!("ip:{address}"));
    let by_email = limiter.attempt(&format!("email:{}", body.email.trim().to_lowercase()));
    if let Err(retry_after) = by_address.and(by_email) {
        return Err(AppError::RateLimited { retry_after });
    }
    // PostgreSQL text cannot hold NUL: such an email is no one's, and is not looked up.
    let user = if body.email.contains('\0') {
        None
    } else {
        let mut conn = state.db.acquire().await?;
        users::credentials_by_email(&mut conn, body.email.trim()).await?
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = password::verify(body.password, stored).await?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            return Err(AppError::Unauthorized(
                "the email or password is incorrect".into(),
            ))
        }
    };
    let access_token = state.keys.issue(user.id, user.account_id, Scopes::all())?;
    Ok(Json(LoggedIn {
        access_token,
        token_type: "Bearer",
        expires_in: state.keys.ttl().as_secs(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_syntax_is_checked() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@.co", "a@b.co.",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
