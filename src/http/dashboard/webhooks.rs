//! Webhook endpoints: create (the signing secret shown once), list; an endpoint's page with
//! its delivery log, a test ping, redelivery, enable/disable, secret rotation and delete.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::format::{ago, query, When};
use super::page::{html, sentence, Layout, PageError};
use super::session::{Posted, Signed};
use super::tunnels::id_param;
use crate::error::Error;
use crate::events::EventType;
use crate::state::AppState;
use crate::webhooks::{DeliveryView, EndpointPatch, EndpointView, NewEndpoint};

/// An endpoint as a row: never its secret.
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: String,
    pub types: String,
    pub enabled: bool,
    pub disabled: Option<String>,
    pub created: When,
}

impl EndpointRow {
    fn new(endpoint: &EndpointView) -> Self {
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            types: match &endpoint.types {
                Some(types) if !types.is_empty() => types.join(", "),
                _ => "every event".to_owned(),
            },
            enabled: endpoint.enabled,
            disabled: endpoint
                .disabled_reason
                .clone()
                .filter(|_| !endpoint.enabled),
            created: ago(Utc::now(), endpoint.created_at.0),
        }
    }
}

/// A delivery as a row: its message, state and latest attempt.
pub struct DeliveryRow {
    pub id: String,
    pub kind: String,
    pub event_id: String,
    pub state: String,
    pub attempts: usize,
    pub last: String,
    pub created: When,
}

impl DeliveryRow {
    fn new(delivery: &DeliveryView) -> Self {
        let last = delivery.attempts.last().map_or_else(
            || "not tried yet".to_owned(),
            |a| {
                let answer = a
                    .status_code
                    .map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}"));
                match &a.error {
                    Some(error) => format!("{answer} in {} ms: {error}", a.latency_ms),
                    None => format!("{answer} in {} ms", a.latency_ms),
                }
            },
        );
        Self {
            id: delivery.id.to_string(),
            kind: delivery.event_type.clone(),
            event_id: delivery
                .event_id
                .map_or_else(|| "ping".to_owned(), |id| id.to_string()),
            state: delivery.state.clone(),
            attempts: delivery.attempts.len(),
            last,
            created: ago(Utc::now(), delivery.created_at.0),
        }
    }
}

/// An event type checkbox.
pub struct TypeBox {
    pub name: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "webhooks.html", config = "src/http/dashboard/askama.toml")]
struct ListPage {
    layout: Layout,
    endpoints: Vec<EndpointRow>,
    types: Vec<TypeBox>,
    url: String,
    description: String,
    error: Option<String>,
}

impl ListPage {
    async fn new(
        state: &AppState,
        signed: &Signed,
        form: Option<&Posted>,
    ) -> Result<Self, PageError> {
        let endpoints = state.webhooks.list(&signed.session.principal).await?;
        let fields = form.map(|f| &f.fields);
        let ticked = fields.map(|f| f.all("type")).unwrap_or_default();
        let typed = |name| {
            fields
                .and_then(|f| f.get(name))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            layout: Layout::new(signed, "webhooks", "Webhooks"),
            endpoints: endpoints.iter().map(EndpointRow::new).collect(),
            types: EventType::ALL
                .iter()
                .map(|t| TypeBox {
                    name: t.as_str(),
                    checked: ticked.iter().any(|name| name == t.as_str()),
                })
                .collect(),
            url: typed("url"),
            description: typed("description"),
            error: None,
        })
    }
}

#[derive(Template)]
#[template(path = "webhook.html", config = "src/http/dashboard/askama.toml")]
struct EndpointPage {
    layout: Layout,
    endpoint: EndpointRow,
    deliveries: Vec<DeliveryRow>,
    older_url: Option<String>,
    /// The signing secret just made (on creation or rotation): shown this once.
    secret: Option<String>,
    notice: Option<String>,
}

impl EndpointPage {
    async fn new(
        state: &AppState,
        signed: &Signed,
        raw: &str,
        after: Option<&str>,
    ) -> Result<Self, PageError> {
        let id = id_param(raw, "webhook endpoint")?;
        let caller = &signed.session.principal;
        let endpoint = state.webhooks.get(caller, id).await?;
        let page = state.webhooks.deliveries(caller, id, after, None).await?;
        let older_url = page.next.map(|next| {
            format!(
                "/webhooks/{id}{}",
                query(&[("after", Some(&next.to_string()))])
            )
        });
        Ok(Self {
            layout: Layout::new(signed, "webhooks", format!("Webhook {}", endpoint.url)),
            endpoint: EndpointRow::new(&endpoint),
            deliveries: page.deliveries.iter().map(DeliveryRow::new).collect(),
            older_url,
            secret: None,
            notice: None,
        })
    }
}

/// `GET /webhooks`.
pub async fn list(State(state): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    let page = ListPage::new(&state, &signed, None).await?;
    Ok(html(StatusCode::OK, &page))
}

/// `POST /webhooks`: creates an endpoint and shows its signing secret, once.
pub async fn create(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    let fields = &posted.fields;
    let types = fields.all("type");
    let new = NewEndpoint {
        url: fields.get("url").unwrap_or_default().to_owned(),
        description: fields.get("description").map(str::to_owned),
        types: (!types.is_empty()).then_some(types),
        enabled: Some(true),
    };
    let caller = &posted.signed.session.principal;
    match state.webhooks.create(caller, new).await {
        Ok(endpoint) => {
            let id = endpoint.id.to_string();
            let mut page = EndpointPage::new(&state, &posted.signed, &id, None).await?;
            page.secret = endpoint.secret;
            Ok(html(StatusCode::CREATED, &page))
        }
        Err(err @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let mut page = ListPage::new(&state, &posted.signed, Some(&posted)).await?;
            page.error = Some(sentence(&err.to_string()));
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    after: Option<String>,
}

/// `GET /webhooks/{id}?after=`: the endpoint and its delivery log, newest first.
pub async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let after = q.after.as_deref().filter(|a| !a.is_empty());
    let page = EndpointPage::new(&state, &signed, &raw, after).await?;
    Ok(html(StatusCode::OK, &page))
}

/// `POST /webhooks/{id}/ping`: queues a test ping.
pub async fn ping(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "webhook endpoint")?;
    let caller = &posted.signed.session.principal;
    state.webhooks.ping(caller, id).await?;
    Ok(back_to(id))
}

/// `POST /webhooks/{id}/deliveries/{delivery}/redeliver`: sends that message again.
pub async fn redeliver(
    State(state): State<AppState>,
    Path((raw, raw_delivery)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "webhook endpoint")?;
    let delivery = id_param(&raw_delivery, "delivery")?;
    let caller = &posted.signed.session.principal;
    state.webhooks.redeliver(caller, id, delivery).await?;
    Ok(back_to(id))
}

/// `POST /webhooks/{id}/enabled`: turns delivery on (`enabled=true`) or off.
pub async fn set_enabled(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "webhook endpoint")?;
    let enabled = match posted.fields.get("enabled") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(PageError::new(StatusCode::BAD_REQUEST, "Choose on or off.")),
    };
    let patch = EndpointPatch {
        enabled: Some(enabled),
        ..EndpointPatch::default()
    };
    let caller = &posted.signed.session.principal;
    state.webhooks.update(caller, id, patch).await?;
    Ok(back_to(id))
}

/// `POST /webhooks/{id}/rotate`: a new signing secret, shown once; the old one keeps signing
/// for 24 h beside it.
pub async fn rotate(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "webhook endpoint")?;
    let caller = &posted.signed.session.principal;
    let rotated = state.webhooks.rotate_secret(caller, id).await?;
    let mut page = EndpointPage::new(&state, &posted.signed, &raw, None).await?;
    page.secret = rotated.secret;
    page.notice = Some("The previous secret keeps signing beside the new one for 24 hours.".into());
    Ok(html(StatusCode::OK, &page))
}

/// `POST /webhooks/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let id = id_param(&raw, "webhook endpoint")?;
    let caller = &posted.signed.session.principal;
    state.webhooks.delete(caller, id).await?;
    Ok(Redirect::to("/webhooks").into_response())
}

fn back_to(id: uuid::Uuid) -> Response {
    Redirect::to(&format!("/webhooks/{id}")).into_response()
}
