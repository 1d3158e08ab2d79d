//! Who is calling: scopes, the authenticated principal, and its extractor.

pub mod cache;
pub mod jwt;
pub mod password;
pub mod ratelimit;
pub mod tokens;
pub mod users;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap};
use uuid::Uuid;

use crate::http::error::AppError;
use crate::state::AppState;

/// A permission a token carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    TunnelsRead,
    TunnelsWrite,
    TunnelsHeartbeat,
    DexRead,
    DexWrite,
    TokensWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::TunnelsRead,
        Scope::TunnelsWrite,
        Scope::TunnelsHeartbeat,
        Scope::DexRead,
        Scope::DexWrite,
        Scope::TokensWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TunnelsRead => "tunnels:read",
            Scope::TunnelsWrite => "tunnels:write",
            Scope::TunnelsHeartbeat => "tunnels:heartbeat",
            Scope::DexRead => "dex:read",
            Scope::DexWrite => "dex:write",
            Scope::TokensWrite => "tokens:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// Scopes from stored names; names this version does not know are ignored.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        names
            .iter()
            .filter_map(|n| Scope::parse(n.as_ref()))
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: Uuid,
    pub account_id: Uuid,
    pub scopes: Scopes,
}

impl Principal {
    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this token lacks the `{}` scope",
                scope.as_str()
            )))
        }
    }

    /// 403 unless the caller holds at least one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), AppError> {
        if scopes.iter().any(|s| self.scopes.contains(*s)) {
            return Ok(());
        }
        let names: Vec<_> = scopes.iter().map(|s| format!("`{}`", s.as_str())).collect();
        Err(AppError::Forbidden(format!(
            "this token needs one of the scopes {}",
            names.join(", ")
        )))
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("the Authorization header is not valid text".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AppError::Unauthorized(
            "the Authorization header must be `Bearer <token>`".into(),
        ));
    }
    Ok(Some(token.trim()))
}

/// Authenticates a bearer token: an API token (`wrn_…`) or an access token (JWT).
pub async fn authenticate_bearer(state: &AppState, token: &str) -> Result<Principal, AppError> {
    if token.starts_with(tokens::PREFIX) {
        let hash = tokens::digest(token);
        if let Some(principal) = state.tokens.get(&hash) {
            return Ok(principal);
        }
        let epoch = state.tokens.epoch();
        let mut conn = state.db.acquire().await?;
        let grant = tokens::principal_for(&mut conn, &hash)
            .await?
            .ok_or_else(|| AppError::Unauthorized("the API token is invalid or revoked".into()))?;
        let principal = grant.principal;
        state
            .tokens
            .insert(epoch, hash, principal.clone(), grant.expires_at);
        Ok(principal)
    } else {
        state.keys.verify(token)
    }
}

impl<S> FromRequestParts<S> for Principal
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        match bearer(&parts.headers)? {
            Some(token) => authenticate_bearer(&state, token).await,
            None => Err(AppError::Unauthorized(
                "this route needs an `Authorization: Bearer <token>` header".into(),
            )),
        }
    }
}
