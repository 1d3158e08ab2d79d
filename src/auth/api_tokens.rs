//! API tokens as the service hands them out: created with a subset of the caller's scopes,
//! listed without their secrets, revoked at once.

use serde::Serialize;
use uuid::Uuid;

use super::service::Auth;
use super::tokens::{self, NewToken, TokenRecord};
use super::{Principal, Scope, Scopes};
use crate::error::Error;
use crate::events::{self, EventType, NewEvent};
use crate::time::Timestamp;

/// Ten years: long enough for any agent, short enough to stay a real expiry.
pub const MAX_EXPIRES_IN: i64 = 10 * 366 * 24 * 3600;

/// A token to create.
#[derive(Clone, Debug)]
pub struct NewApiToken {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_in_secs: Option<i64>,
}

/// A token as the API shows it; the secret only in the answer to its creation.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Token)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    #[schema(schema_with = crate::auth::scope_list_schema)]
    pub scopes: Vec<String>,
    /// The secret (`wrn_…`), shown once: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^wrn_[0-9A-Za-z]{32,}$")]
    pub token: Option<String>,
    pub created_at: Timestamp,
    #[schema(required = true)]
    pub expires_at: Option<Timestamp>,
}

impl TokenView {
    fn new(record: TokenRecord, token: Option<String>) -> Self {
        Self {
            id: record.id,
            name: record.name,
            scopes: record.scopes,
            token,
            created_at: Timestamp(record.created_at),
            expires_at: record.expires_at.map(Timestamp),
        }
    }
}

impl Auth {
    /// Creates an API token; the secret is in this answer only.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn create_token(
        &self,
        caller: &Principal,
        new: NewApiToken,
    ) -> Result<TokenView, Error> {
        caller.require(Scope::TokensWrite)?;
        let scopes = validate(&new, caller)?;
        let (token, hash) = tokens::generate();
        let mut tx = self.db.begin().await?;
        let record = tokens::insert(
            &mut tx,
            NewToken {
                account_id: caller.account_id,
                user_id: caller.user_id,
                name: new.name.trim(),
                scopes,
                hash: &hash,
                expires_in_secs: new.expires_in_secs,
            },
        )
        .await?;
        let view = TokenView::new(record, None);
        let created = NewEvent::new(
            caller.account_id,
            EventType::TokenCreated,
            view.id,
            caller.into(),
            &view,
        );
        events::store::append(&mut tx, &[created]).await?;
        tx.commit().await?;
        Ok(TokenView {
            token: Some(token),
            ..view
        })
    }

    /// The account's API tokens, without their secrets.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn list_tokens(&self, caller: &Principal) -> Result<Vec<TokenView>, Error> {
        caller.require(Scope::TokensWrite)?;
        let mut conn = self.db.acquire().await?;
        let records = tokens::list(&mut conn, caller.account_id).await?;
        Ok(records
            .into_iter()
            .map(|r| TokenView::new(r, None))
            .collect())
    }

    /// Revokes a token at once: refused here before this returns, and on other replicas as
    /// soon as the database's notification reaches them. The revocation is logged with the
    /// revoking caller as its principal, which may be the token itself.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn revoke_token(&self, caller: &Principal, id: Uuid) -> Result<(), Error> {
        caller.require(Scope::TokensWrite)?;
        let mut tx = self.db.begin().await?;
        let deleted = tokens::delete(&mut tx, caller.account_id, id)
            .await?
            .ok_or(Error::NotFound("token"))?;
        let view = TokenView::new(deleted.record, None);
        let revoked = NewEvent::new(
            caller.account_id,
            EventType::TokenRevoked,
            view.id,
            caller.into(),
            &view,
        );
        events::store::append(&mut tx, &[revoked]).await?;
        tx.commit().await?;
        self.cache.evict(&deleted.hash);
        Ok(())
    }
}

fn validate(new: &NewApiToken, caller: &Principal) -> Result<Scopes, Error> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "name must be 1-100 characters, none of them control characters",
        ));
    }
    if new.scopes.is_empty() {
        return Err(Error::invalid(
            "scopes",
            "scopes must list at least one scope",
        ));
    }
    let mut scopes = Vec::with_capacity(new.scopes.len());
    for (i, name) in new.scopes.iter().enumerate() {
        let scope = Scope::parse(name).ok_or_else(|| {
            let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            Error::invalid(
                format!("scopes[{i}]"),
                format!("unknown scope `{name}`; known scopes: {}", known.join(", ")),
            )
        })?;
        scopes.push(scope);
    }
    let scopes: Scopes = scopes.into_iter().collect();
    if !scopes.is_subset_of(caller.scopes) {
        return Err(Error::Forbidden(
            "a token cannot grant scopes its creator does not hold".into(),
        ));
    }
    if let Some(secs) = new.expires_in_secs {
        if !(1..=MAX_EXPIRES_IN).contains(&secs) {
            return Err(Error::invalid(
                "expiresInSecs",
                format!("expiresInSecs must be between 1 and {MAX_EXPIRES_IN}"),
            ));
        }
    }
    Ok(scopes)
}
