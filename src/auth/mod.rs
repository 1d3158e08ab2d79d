//! Who is calling: scopes, the authenticated principal, and the [`Auth`] service that
//! registers users, logs them in, issues API tokens and authenticates requests.

mod api_tokens;
pub mod cache;
pub mod jwt;
pub mod password;
pub mod ratelimit;
mod service;
mod session_store;
pub mod sessions;
pub mod tokens;
pub mod users;

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use uuid::Uuid;

use crate::error::Error;

pub use api_tokens::{NewApiToken, TokenView};
pub use service::{Auth, LoggedIn, Registered, Settings};
pub use sessions::{NewSession, Session};

/// A permission a token carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    TunnelsRead,
    TunnelsWrite,
    TunnelsHeartbeat,
    DexRead,
    DexWrite,
    TokensWrite,
    EventsRead,
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::TunnelsRead,
        Scope::TunnelsWrite,
        Scope::TunnelsHeartbeat,
        Scope::DexRead,
        Scope::DexWrite,
        Scope::TokensWrite,
        Scope::EventsRead,
        Scope::WebhooksWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TunnelsRead => "tunnels:read",
            Scope::TunnelsWrite => "tunnels:write",
            Scope::TunnelsHeartbeat => "tunnels:heartbeat",
            Scope::DexRead => "dex:read",
            Scope::DexWrite => "dex:write",
            Scope::TokensWrite => "tokens:write",
            Scope::EventsRead => "events:read",
            Scope::WebhooksWrite => "webhooks:write",
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
    /// The API token the caller used; `None` for a login's access token.
    pub token_id: Option<Uuid>,
}

impl Principal {
    /// Forbidden unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Error> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this token lacks the `{}` scope",
                scope.as_str()
            )))
        }
    }

    /// Forbidden unless the caller holds at least one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), Error> {
        if scopes.iter().any(|s| self.scopes.contains(*s)) {
            return Ok(());
        }
        let names: Vec<_> = scopes.iter().map(|s| format!("`{}`", s.as_str())).collect();
        Err(Error::Forbidden(format!(
            "this token needs one of the scopes {}",
            names.join(", ")
        )))
    }
}

/// The scope names, from [`Scope::ALL`], as the OpenAPI document lists them.
pub fn scope_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Scope::ALL.map(Scope::as_str)))
        .into()
}

/// A token's scopes: at least one scope name.
pub fn scope_list_schema() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(scope_schema()))
        .min_items(Some(1))
        .into()
}
