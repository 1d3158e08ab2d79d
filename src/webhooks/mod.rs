//! Webhooks: an account's endpoints, and the delivery of its events to them, signed as the
//! Standard Webhooks spec says (<https://www.standardwebhooks.com>).
//!
//! Deliveries are enqueued by the database itself, in the transaction of the event (the
//! trigger of `migrations/0014_webhooks.sql`). The [`dispatcher::Dispatcher`] of every replica
//! claims the head of each endpoint's queue (`FOR UPDATE SKIP LOCKED`, with a lease), sends
//! it ([`send`]) to an address the policy allows ([`address`]), and records the attempt:
//! success, a retry after an exponential backoff with jitter, or — after a 410, or a whole
//! retry window of failures — the endpoint disabled with its reason.

pub mod address;
pub mod dispatcher;
mod queue;
pub mod retention;
pub mod send;
mod service;
pub mod signing;
mod store;
mod validate;

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::time::Timestamp;

pub use service::{DeliveryPage, EndpointPatch, NewEndpoint, Webhooks};
pub use validate::MAX_URL_LEN;

/// How long the previous secret stays valid after a rotation.
pub const PREVIOUS_SECRET_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The event type of a test ping (not in the log).
pub const PING_TYPE: &str = "webhook.ping.v1";

/// How deliveries are made; from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Deliver to loopback, private, link-local and metadata addresses too.
    pub allow_private: bool,
    /// How long an endpoint may fail before its delivery is given up and it is disabled.
    pub retry_window: Duration,
    /// The first retry waits about this long; each next one twice as long (with jitter).
    pub backoff_base: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How often the dispatcher looks for due deliveries when nothing woke it.
    pub poll_interval: Duration,
    /// How long a claimed delivery stays the claimer's.
    pub lease: Duration,
    /// How many deliveries one replica sends at once.
    pub concurrency: usize,
    /// One attempt's limit, connection and response included.
    pub timeout: Duration,
    /// On shutdown, how long the deliveries in flight may take to finish; those still going
    /// then are released for another replica to send at once.
    pub drain: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_window: Duration::from_secs(72 * 3600),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(6 * 3600),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            concurrency: 16,
            timeout: Duration::from_secs(10),
            drain: Duration::from_secs(15),
        }
    }
}

/// An endpoint as the API shows it; its secret only in the answers to its creation and to a
/// rotation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookEndpoint)]
pub struct EndpointView {
    pub id: Uuid,
    /// Where events are POSTed (http or https).
    pub url: String,
    pub description: String,
    /// The event types delivered; `null`: every type.
    #[schema(required = true, schema_with = types_schema)]
    pub types: Option<Vec<String>>,
    pub enabled: bool,
    /// Why it was disabled: a 410 answer, a whole retry window of failures, or a user.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    #[schema(required = true)]
    pub disabled_at: Option<Timestamp>,
    /// The signing secret (`whsec_…`): only in the answers to the creation and a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^whsec_[A-Za-z0-9+/=]+$")]
    pub secret: Option<String>,
    /// Until when the secret before the last rotation still signs deliveries.
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A delivery of one message to one endpoint, with its attempts.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookDelivery)]
pub struct DeliveryView {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event delivered; `null` for a ping.
    #[schema(required = true, minimum = 1)]
    pub event_id: Option<i64>,
    pub event_type: String,
    /// The `webhook-id` header: the same for every attempt and redelivery of the message.
    pub message_id: String,
    /// `pending`, `succeeded` or `failed` (given up).
    #[schema(pattern = "^(pending|succeeded|failed)$")]
    pub state: String,
    #[schema(required = true)]
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    #[schema(required = true)]
    pub finished_at: Option<Timestamp>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

/// One attempt to deliver.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookAttempt)]
pub struct AttemptView {
    pub attempted_at: Timestamp,
    /// The endpoint's answer; `null` when none came.
    #[schema(required = true)]
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// Why it failed, when it did (at most 1000 characters).
    #[schema(required = true)]
    pub error: Option<String>,
    /// The start of the answer's body (at most 4 KiB).
    #[schema(required = true)]
    pub response_body: Option<String>,
}

/// The event types an endpoint may ask for, as the OpenAPI document lists them.
pub fn types_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, Type};
    let item = crate::events::type_schema();
    ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(item))
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .into()
}

/// The random part of a ping's `webhook-id`.
fn ping_message_id() -> String {
    format!("ping_{}", Uuid::new_v4().simple())
}
