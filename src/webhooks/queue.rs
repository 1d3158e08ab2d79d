//! Delivery SQL: the queue the dispatchers claim from, the attempts, the delivery log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{AttemptView, DeliveryView};
use crate::events::Event;
use crate::time::{millis, Timestamp};

/// A delivery as stored.
pub struct Delivery {
    pub id: Uuid,
    pub seq: i64,
    pub endpoint_id: Uuid,
    pub event_id: Option<i64>,
    pub event_type: String,
    pub message_id: String,
    pub state: String,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Delivery {
    pub fn view(self, attempts: Vec<AttemptView>) -> DeliveryView {
        let pending = self.state == "pending";
        DeliveryView {
            id: self.id,
            endpoint_id: self.endpoint_id,
            event_id: self.event_id,
            event_type: self.event_type,
            message_id: self.message_id,
            state: self.state,
            next_attempt_at: pending.then_some(Timestamp(self.next_attempt_at)),
            created_at: Timestamp(self.created_at),
            finished_at: self.finished_at.map(Timestamp),
            attempts,
        }
    }
}

/// Queues a ping (`payload`) to an endpoint, and wakes the dispatchers.
#[tracing::instrument(skip_all, err)]
pub async fn enqueue_ping(
    conn: &mut PgConnection,
    account_id: Uuid,
    endpoint_id: Uuid,
    message_id: &str,
    payload: &Value,
) -> Result<Delivery, sqlx::Error> {
    sqlx::query_as!(
        Delivery,
        r#"WITH woken AS (SELECT pg_notify('warren_webhooks', ''))
           INSERT INTO webhook_deliveries (endpoint_id, account_id, event_type, payload, message_id)
           SELECT $1, $2, $3, $4, $5 FROM woken
           RETURNING id, seq, endpoint_id, event_id, event_type, message_id, state,
                     next_attempt_at, created_at, finished_at"#,
        endpoint_id,
        account_id,
        super::PING_TYPE,
        payload,
        message_id,
    )
    .fetch_one(conn)
    .await
}

/// Queues the message of one of the endpoint's deliveries again (same `webhook-id`, at the
/// end of the endpoint's queue); `None` when the endpoint has no such delivery.
#[tracing::instrument(skip_all, err)]
pub async fn redeliver(
    conn: &mut PgConnection,
    account_id: Uuid,
    endpoint_id: Uuid,
    delivery_id: Uuid,
) -> Result<Option<Delivery>, sqlx::Error> {
    sqlx::query_as!(
        Delivery,
        r#"WITH woken AS (SELECT pg_notify('warren_webhooks', ''))
           INSERT INTO webhook_deliveries (endpoint_id, account_id, event_id, event_type, payload, message_id)
           SELECT d.endpoint_id, d.account_id, d.event_id, d.event_type, d.payload, d.message_id
           FROM webhook_deliveries d, woken
           WHERE d.id = $1 AND d.endpoint_id = $2 AND d.account_id = $3
           RETURNING id, seq, endpoint_id, event_id, event_type, message_id, state,
                     next_attempt_at, created_at, finished_at"#,
        delivery_id,
        endpoint_id,
        account_id,
    )
    .fetch_optional(conn)
    .await
}

/// Up to `limit` of the endpoint's deliveries before the position `before` (newest first).
#[tracing::instrument(skip_all, err)]
pub async fn list(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT id, seq, endpoint_id, event_id, event_type, message_id, state,
                  next_attempt_at, created_at, finished_at
           FROM webhook_deliveries
           WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR seq < $2)
           ORDER BY seq DESC LIMIT $3"#,
        endpoint_id,
        before,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// The attempts of these deliveries, oldest first.
#[tracing::instrument(skip_all, err)]
pub async fn attempts(
    conn: &mut PgConnection,
    deliveries: &[Uuid],
) -> Result<Vec<(Uuid, AttemptView)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT delivery_id, attempted_at, status_code, latency_ms, error, response_body
           FROM webhook_attempts WHERE delivery_id = ANY($1)
           ORDER BY delivery_id, n"#,
        deliveries,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let attempt = AttemptView {
                attempted_at: Timestamp(r.attempted_at),
                status_code: r.status_code,
                latency_ms: r.latency_ms,
                error: r.error,
                response_body: r.response_body,
            };
            (r.delivery_id, attempt)
        })
        .collect())
}

/// A delivery a worker holds: what to send, where, signed with which secrets.
pub struct Claimed {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub lease_token: Uuid,
    pub attempts: i32,
    pub message_id: String,
    pub url: String,
    pub secret: String,
    /// The secret before the last rotation, while it is still valid.
    pub previous_secret: Option<String>,
    /// The body: the event serialized exactly as `GET /v1/events` does, or the ping;
    /// `None` when retention deleted the event.
    pub body: Option<Vec<u8>>,
}

/// Claims up to `limit` due deliveries, each the head of its enabled endpoint's queue, for
/// `lease`. Several workers never claim the same one (`SKIP LOCKED`, and the lease); an
/// endpoint's next delivery waits until the one before it succeeded or was given up.
#[tracing::instrument(skip_all, err)]
pub async fn claim(
    conn: &mut PgConnection,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH heads AS (
               SELECT h.id FROM webhook_endpoints e
               CROSS JOIN LATERAL (
                   SELECT d.id FROM webhook_deliveries d
                   WHERE d.endpoint_id = e.id AND d.state = 'pending'
                   ORDER BY d.seq LIMIT 1) h
               WHERE e.enabled
           ),
           due AS (
               SELECT d.id FROM webhook_deliveries d
               WHERE d.id IN (SELECT id FROM heads) AND d.state = 'pending'
                 AND d.next_attempt_at <= now()
                 AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())
               ORDER BY d.next_attempt_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED
           ),
           claimed AS (
               UPDATE webhook_deliveries d
               SET lease_token = gen_random_uuid(),
                   lease_expires_at = now() + $2::bigint * interval '1 millisecond',
                   first_attempt_at = coalesce(d.first_attempt_at, now())
               FROM due WHERE d.id = due.id
               RETURNING d.id, d.endpoint_id, d.account_id, d.event_id, d.payload, d.message_id,
                         d.attempts, d.lease_token
           )
           SELECT c.id AS "id!", c.endpoint_id AS "endpoint_id!", c.account_id AS "account_id!",
                  c.event_id, c.payload, c.message_id AS "message_id!", c.attempts AS "attempts!",
                  c.lease_token AS "lease_token!", e.url, e.secret,
                  CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END
                      AS previous_secret,
                  ev.id AS "ev_id?", ev.type AS "ev_type?", ev.occurred_at AS "ev_occurred_at?",
                  ev.subject AS "ev_subject?", ev.principal AS "ev_principal?",
                  ev.data AS "ev_data?"
           FROM claimed c
           JOIN webhook_endpoints e ON e.id = c.endpoint_id
           LEFT JOIN events ev ON ev.account_id = c.account_id AND ev.id = c.event_id"#,
        limit,
        millis(lease),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let event = match (r.ev_id, r.ev_type, r.ev_occurred_at, r.ev_subject) {
                (Some(id), Some(kind), Some(at), Some(subject)) => {
                    let principal = r.ev_principal.unwrap_or(Value::Null);
                    let data = r.ev_data.unwrap_or(Value::Null);
                    let event = Event::new(r.account_id, id, kind, at, subject, principal, data);
                    serde_json::to_vec(&event).ok()
                }
                _ => None,
            };
            Claimed {
                id: r.id,
                endpoint_id: r.endpoint_id,
                lease_token: r.lease_token,
                attempts: r.attempts,
                message_id: r.message_id,
                url: r.url,
                secret: r.secret,
                previous_secret: r.previous_secret,
                body: r
                    .payload
                    .and_then(|p| serde_json::to_vec(&p).ok())
                    .or(event),
            }
        })
        .collect())
}

/// One attempt's outcome, to record.
pub struct Outcome<'a> {
    /// A 2xx answer came.
    pub succeeded: bool,
    /// Retrying cannot help (410 Gone, the event deleted): fail now.
    pub give_up: bool,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<&'a str>,
    pub response_body: Option<&'a str>,
}

/// Gives back the deliveries still held with these leases (delivery id, lease token): a
/// worker stopping before their attempts finished. Another worker may claim them at once.
#[tracing::instrument(skip_all, err)]
pub async fn release(conn: &mut PgConnection, leases: &[(Uuid, Uuid)]) -> Result<u64, sqlx::Error> {
    let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = leases.iter().copied().unzip();
    let released = sqlx::query!(
        "UPDATE webhook_deliveries d SET lease_token = NULL, lease_expires_at = NULL
         FROM unnest($1::uuid[], $2::uuid[]) AS r(id, lease_token)
         WHERE d.id = r.id AND d.lease_token = r.lease_token AND d.state = 'pending'",
        &ids,
        &tokens,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(released)
}

/// What became of the delivery after an attempt.
pub struct Settled {
    pub state: String,
    pub attempts: i32,
}

/// Records an attempt of a delivery still held with `lease_token`: succeeded, or — when
/// the outcome gives up, or when its retry window (counted from its first attempt) is over — `failed`,
/// else pending again after `backoff` (never later than the window's end, so the last
/// attempt falls on it). `None` when the lease was lost (another worker has it now).
#[tracing::instrument(skip_all, err)]
pub async fn settle(
    conn: &mut PgConnection,
    id: Uuid,
    lease_token: Uuid,
    backoff: Duration,
    window: Duration,
    outcome: &Outcome<'_>,
) -> Result<Option<Settled>, sqlx::Error> {
    let settled = sqlx::query!(
        r#"UPDATE webhook_deliveries
           SET attempts = attempts + 1, lease_token = NULL, lease_expires_at = NULL,
               state = CASE WHEN $3 THEN 'succeeded'
                            WHEN $4 OR first_attempt_at + $6::bigint * interval '1 millisecond' <= now()
                                THEN 'failed'
                            ELSE 'pending' END,
               next_attempt_at = least(now() + $5::bigint * interval '1 millisecond',
                                       first_attempt_at + $6::bigint * interval '1 millisecond'),
               finished_at = CASE WHEN $3 OR $4
                                       OR first_attempt_at + $6::bigint * interval '1 millisecond' <= now()
                                  THEN date_trunc('milliseconds', now()) END
           WHERE id = $1 AND lease_token = $2
           RETURNING state, attempts"#,
        id,
        lease_token,
        outcome.succeeded,
        outcome.give_up,
        millis(backoff),
        millis(window),
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(settled) = settled else {
        return Ok(None);
    };
    sqlx::query!(
        r#"INSERT INTO webhook_attempts (delivery_id, n, attempted_at, status_code, latency_ms,
                                         error, response_body)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        id,
        settled.attempts,
        outcome.attempted_at,
        outcome.status_code,
        outcome.latency_ms,
        outcome.error,
        outcome.response_body,
    )
    .execute(conn)
    .await?;
    Ok(Some(Settled {
        state: settled.state,
        attempts: settled.attempts,
    }))
}

/// After an endpoint is enabled again, its pending deliveries start afresh: due now, with a
/// new retry window.
#[tracing::instrument(skip_all, err)]
pub async fn restart(conn: &mut PgConnection, endpoint_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH woken AS (SELECT pg_notify('warren_webhooks', ''))
         UPDATE webhook_deliveries SET next_attempt_at = now(), first_attempt_at = NULL
         FROM woken WHERE endpoint_id = $1 AND state = 'pending'",
        endpoint_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
