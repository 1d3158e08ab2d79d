//! The webhook service: an account's endpoints, their delivery logs, redelivery and pings.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::queue::{self, Delivery};
use super::store::{self, Backlog, Endpoint};
use super::{signing, validate, DeliveryView, EndpointView, PING_TYPE, PREVIOUS_SECRET_GRACE};
use crate::auth::{Principal, Scope};
use crate::error::{Error, ErrorCode};
use crate::events::Actor;
use crate::time::Timestamp;

/// The default and largest page of a delivery log.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;
/// The most endpoints an account may have.
pub const MAX_ENDPOINTS: i64 = 100;

/// The webhook service; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    db: PgPool,
}

/// An endpoint to create.
#[derive(Clone, Debug, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub description: Option<String>,
    pub types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// The fields to change; `None` leaves one as it is. `types: Some(None)` (or an empty list)
/// delivers every type.
#[derive(Clone, Debug, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub types: Option<Option<Vec<String>>>,
    pub enabled: Option<bool>,
}

/// A page of a delivery log, newest first, and the cursor of the next one.
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub next: Option<i64>,
    pub limit: i64,
}

fn not_found() -> Error {
    Error::NotFound("webhook endpoint")
}

impl Webhooks {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// The deliveries waiting to be sent (of every account), and how long the oldest of
    /// them has waited since it was queued: how far webhooks lag, for `/metrics`.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn backlog(&self) -> Result<Backlog, Error> {
        let mut conn = self.db.acquire().await?;
        Ok(store::backlog(&mut conn).await?)
    }

    /// Creates an endpoint; its secret is in this answer only.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn create(
        &self,
        caller: &Principal,
        new: NewEndpoint,
    ) -> Result<EndpointView, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let url = validate::url(&new.url)?;
        let description = validate::description(new.description.as_deref().unwrap_or(""))?;
        let types = validate::types(new.types)?;
        let secret = signing::new_secret();
        let mut conn = self.db.acquire().await?;
        // A soft limit: two creations racing may pass it by one.
        if store::count(&mut conn, caller.account_id).await? >= MAX_ENDPOINTS {
            return Err(Error::conflict(
                ErrorCode::WebhookLimitReached,
                format!("an account may have at most {MAX_ENDPOINTS} webhook endpoints"),
            ));
        }
        let endpoint = store::insert(
            &mut conn,
            caller.account_id,
            &url,
            &description,
            types.as_deref(),
            new.enabled.unwrap_or(true),
            &secret,
        )
        .await?;
        Ok(endpoint.view(true))
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn list(&self, caller: &Principal) -> Result<Vec<EndpointView>, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let mut conn = self.db.acquire().await?;
        let endpoints = store::list(&mut conn, caller.account_id).await?;
        Ok(endpoints.into_iter().map(|e| e.view(false)).collect())
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<EndpointView, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let mut conn = self.db.acquire().await?;
        let endpoint = store::get(&mut conn, caller.account_id, id).await?;
        Ok(endpoint.ok_or_else(not_found)?.view(false))
    }

    /// Changes an endpoint. Disabling it keeps its pending deliveries; enabling it again
    /// clears the reason it was disabled for and sends them, each with a fresh retry window.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn update(
        &self,
        caller: &Principal,
        id: Uuid,
        patch: EndpointPatch,
    ) -> Result<EndpointView, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let url = patch.url.as_deref().map(validate::url).transpose()?;
        let description = patch
            .description
            .as_deref()
            .map(validate::description)
            .transpose()?;
        let types = patch.types.map(validate::types).transpose()?;
        let mut tx = self.db.begin().await?;
        let mut endpoint = store::get(&mut tx, caller.account_id, id)
            .await?
            .ok_or_else(not_found)?;
        let was_enabled = endpoint.enabled;
        apply(&mut endpoint, url, description, types, patch.enabled);
        let saved = store::save(&mut tx, &endpoint).await?;
        if saved.enabled && !was_enabled {
            queue::restart(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(saved.view(false))
    }

    /// Deletes an endpoint with its delivery log.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<(), Error> {
        caller.require(Scope::WebhooksWrite)?;
        let mut conn = self.db.acquire().await?;
        match store::delete(&mut conn, caller.account_id, id).await? {
            true => Ok(()),
            false => Err(not_found()),
        }
    }

    /// A new signing secret, in this answer only; the current one keeps signing beside it
    /// for 24 hours.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn rotate_secret(&self, caller: &Principal, id: Uuid) -> Result<EndpointView, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let secret = signing::new_secret();
        let mut conn = self.db.acquire().await?;
        let endpoint = store::rotate(
            &mut conn,
            caller.account_id,
            id,
            &secret,
            PREVIOUS_SECRET_GRACE,
        )
        .await?
        .ok_or_else(not_found)?;
        Ok(endpoint.view(true))
    }

    /// A page of the endpoint's deliveries, newest first, with their attempts. `after` is
    /// the cursor of a previous page; `limit` 1 to 100 (default 50).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn deliveries(
        &self,
        caller: &Principal,
        id: Uuid,
        after: Option<&str>,
        limit: Option<&str>,
    ) -> Result<DeliveryPage, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let after = cursor(after)?;
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(raw) => crate::fleet::query::whole_number("limit", raw, 1, MAX_PAGE)?,
        };
        let mut tx = self.db.begin().await?;
        store::get(&mut tx, caller.account_id, id)
            .await?
            .ok_or_else(not_found)?;
        let mut rows = queue::list(&mut tx, id, after, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
        let mut attempts: HashMap<Uuid, Vec<_>> = HashMap::new();
        for (delivery, attempt) in queue::attempts(&mut tx, &ids).await? {
            attempts.entry(delivery).or_default().push(attempt);
        }
        tx.commit().await?;
        let next = rows.last().filter(|_| more).map(|d| d.seq);
        let deliveries = rows
            .into_iter()
            .map(|d| {
                let tried = attempts.remove(&d.id).unwrap_or_default();
                d.view(tried)
            })
            .collect();
        Ok(DeliveryPage {
            deliveries,
            next,
            limit,
        })
    }

    /// Sends the message of one of the endpoint's deliveries again, with the same
    /// `webhook-id`, after whatever the endpoint has queued.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn redeliver(
        &self,
        caller: &Principal,
        id: Uuid,
        delivery_id: Uuid,
    ) -> Result<DeliveryView, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let mut tx = self.db.begin().await?;
        let endpoint = store::get(&mut tx, caller.account_id, id)
            .await?
            .ok_or_else(not_found)?;
        let delivery = queue::redeliver(&mut tx, caller.account_id, id, delivery_id)
            .await?
            .ok_or(Error::NotFound("delivery"))?;
        // Checked after the delivery is found (the insert rolls back), so that another
        // account's delivery id is a 404 on one's own disabled endpoint too.
        require_enabled(&endpoint)?;
        tx.commit().await?;
        Ok(delivery.view(Vec::new()))
    }

    /// Queues a test ping (`webhook.ping.v1`), delivered and signed like any event.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn ping(&self, caller: &Principal, id: Uuid) -> Result<DeliveryView, Error> {
        caller.require(Scope::WebhooksWrite)?;
        let mut tx = self.db.begin().await?;
        let endpoint = store::get(&mut tx, caller.account_id, id)
            .await?
            .ok_or_else(not_found)?;
        require_enabled(&endpoint)?;
        let payload = json!({
            "id": 0,
            "type": PING_TYPE,
            "occurredAt": Timestamp(Utc::now()),
            "accountId": caller.account_id.simple().to_string(),
            "subject": endpoint.id,
            "principal": Actor::from(caller).to_json(),
            "data": {"endpointId": endpoint.id, "url": endpoint.url},
        });
        let message_id = super::ping_message_id();
        let delivery: Delivery =
            queue::enqueue_ping(&mut tx, caller.account_id, id, &message_id, &payload).await?;
        tx.commit().await?;
        Ok(delivery.view(Vec::new()))
    }
}

/// A PATCH applied: enabling clears the reason it was disabled for; disabling records that a
/// user did it.
fn apply(
    e: &mut Endpoint,
    url: Option<String>,
    description: Option<String>,
    types: Option<Option<Vec<String>>>,
    enabled: Option<bool>,
) {
    if let Some(url) = url {
        e.url = url;
    }
    if let Some(description) = description {
        e.description = description;
    }
    if let Some(types) = types {
        e.types = types;
    }
    match enabled {
        Some(true) if !e.enabled => {
            e.enabled = true;
            e.disabled_reason = None;
            e.disabled_at = None;
        }
        Some(false) if e.enabled => {
            e.enabled = false;
            e.disabled_reason = Some("disabled through the API".to_owned());
            e.disabled_at = Some(Utc::now());
        }
        _ => {}
    }
}

fn require_enabled(endpoint: &Endpoint) -> Result<(), Error> {
    if endpoint.enabled {
        return Ok(());
    }
    Err(Error::conflict(
        ErrorCode::WebhookDisabled,
        "the endpoint is disabled: enable it (PATCH `enabled: true`) first",
    ))
}

/// The cursor of a delivery log page: a whole number from a `Link: rel="next"`.
fn cursor(raw: Option<&str>) -> Result<Option<i64>, Error> {
    raw.map(|s| {
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Error::bad_param(
                    "after",
                    "after must be a cursor taken from a `Link: rel=\"next\"` header",
                )
            })
    })
    .transpose()
}
