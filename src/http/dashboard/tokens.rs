//! API tokens: create (the secret shown once), list, revoke.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use super::format::{ago, left, When};
use super::page::{html, Layout, PageError};
use super::session::{Posted, Signed};
use super::tunnels::id_param;
use crate::auth::{NewApiToken, Scope, TokenView};
use crate::error::Error;
use crate::state::AppState;

/// A token as a row: never its secret.
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created: When,
    pub expires: Option<When>,
}

impl TokenRow {
    fn new(token: &TokenView) -> Self {
        let now = Utc::now();
        Self {
            id: token.id.to_string(),
            name: token.name.clone(),
            scopes: token.scopes.join(", "),
            created: ago(now, token.created_at.0),
            expires: token.expires_at.map(|at| left(now, at.0)),
        }
    }
}

/// The lifetimes offered: (form value, label, seconds).
const LIFETIMES: [(&str, &str, Option<i64>); 5] = [
    ("never", "Never expires", None),
    ("1d", "1 day", Some(86_400)),
    ("30d", "30 days", Some(30 * 86_400)),
    ("90d", "90 days", Some(90 * 86_400)),
    ("365d", "1 year", Some(365 * 86_400)),
];

/// A scope checkbox: its name and whether it is ticked.
pub struct ScopeBox {
    pub name: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "tokens.html", config = "src/http/dashboard/askama.toml")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    scopes: Vec<ScopeBox>,
    lifetimes: Vec<(&'static str, &'static str, bool)>,
    name: String,
    /// The secret of the token just created: shown this once.
    created: Option<(String, String)>,
    error: Option<String>,
}

impl TokensPage {
    async fn new(
        state: &AppState,
        signed: &Signed,
        form: Option<&Posted>,
    ) -> Result<Self, PageError> {
        let tokens = state.auth.list_tokens(&signed.session.principal).await?;
        let fields = form.map(|f| &f.fields);
        let ticked = fields.map(|f| f.all("scope")).unwrap_or_default();
        let lifetime = fields.and_then(|f| f.get("expires")).unwrap_or("never");
        Ok(Self {
            layout: Layout::new(signed, "tokens", "API tokens"),
            tokens: tokens.iter().map(TokenRow::new).collect(),
            scopes: Scope::ALL
                .iter()
                .map(|s| ScopeBox {
                    name: s.as_str(),
                    checked: ticked.iter().any(|t| t == s.as_str()),
                })
                .collect(),
            lifetimes: LIFETIMES
                .iter()
                .map(|(value, label, _)| (*value, *label, *value == lifetime))
                .collect(),
            name: fields
                .and_then(|f| f.get("name"))
                .unwrap_or_default()
                .to_owned(),
            created: None,
            error: None,
        })
    }
}

/// `GET /tokens`.
pub async fn list(State(state): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    let page = TokensPage::new(&state, &signed, None).await?;
    Ok(html(StatusCode::OK, &page))
}

/// `POST /tokens`: creates a token and shows its secret, once (the answer is never cached).
pub async fn create(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    let fields = &posted.fields;
    let lifetime = fields.get("expires").unwrap_or("never");
    let expires_in_secs = match LIFETIMES.iter().find(|(value, _, _)| *value == lifetime) {
        Some((_, _, secs)) => *secs,
        None => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Choose a lifetime from the list.",
            ))
        }
    };
    let new = NewApiToken {
        name: fields.get("name").unwrap_or_default().to_owned(),
        scopes: fields.all("scope"),
        expires_in_secs,
    };
    let caller = &posted.signed.session.principal;
    match state.auth.create_token(caller, new).await {
        Ok(token) => {
            let mut page = TokensPage::new(&state, &posted.signed, None).await?;
            page.created = Some((token.name.clone(), token.token.clone().unwrap_or_default()));
            Ok(html(StatusCode::CREATED, &page))
        }
        Err(err @ Error::Invalid { .. }) => {
            let mut page = TokensPage::new(&state, &posted.signed, Some(&posted)).await?;
            page.error = Some(super::page::sentence(&err.to_string()));
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(err) => Err(err.into()),
    }
}

/// `POST /tokens/{id}/revoke`: the token stops working at once.
pub async fn revoke(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "token")?;
    state
        .auth
        .revoke_token(&posted.signed.session.principal, id)
        .await?;
    Ok(Redirect::to("/tokens").into_response())
}
