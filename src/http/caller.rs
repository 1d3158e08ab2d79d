//! Who is calling: the authenticated [`Principal`] and the caller's address ([`OriginIp`]),
//! as extractors over the auth service and the trusted-proxy configuration.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap};

use super::error::AppError;
use crate::auth::Principal;
use crate::error::Error;
use crate::state::AppState;

/// The bearer token of a request, if it carries one.
pub(super) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("the Authorization header is not valid text".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthorized(
            "the Authorization header must be `Bearer <token>`".into(),
        ));
    }
    Ok(Some(token.trim()))
}

/// The caller, from `Authorization: Bearer` (an API token or an access token).
impl<S> FromRequestParts<S> for Principal
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        match bearer(&parts.headers)? {
            Some(token) => Ok(state.auth.authenticate_bearer(token).await?),
            None => Err(Error::Unauthorized(
                "this route needs an `Authorization: Bearer <token>` header".into(),
            )
            .into()),
        }
    }
}

/// The caller's address as text (through trusted proxies' `X-Forwarded-For`, see
/// [`crate::net::TrustedProxies`]); `None` when the server has no peer address.
pub struct OriginIp(pub Option<String>);

impl<S> FromRequestParts<S> for OriginIp
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(Self(None));
        };
        let app = AppState::from_ref(state);
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let ip = app.config.trusted_proxies.client_ip(peer.ip(), forwarded);
        Ok(Self(Some(ip.to_string())))
    }
}
