//! Event SQL. Every function takes a connection; appending belongs in the transaction of the
//! change the events record.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Event, NewEvent};
use crate::time::millis;

/// Appends `events` (in order) in the caller's transaction; how many were appended. Takes the
/// accounts' sequence locks until the transaction ends: call it after every other write.
#[tracing::instrument(skip_all, err(level = "info"), fields(events = events.len()))]
pub async fn append(conn: &mut PgConnection, events: &[NewEvent]) -> Result<u64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let accounts: Vec<Uuid> = events.iter().map(|e| e.account_id).collect();
    let types: Vec<String> = events.iter().map(|e| e.kind.as_str().to_owned()).collect();
    let subjects: Vec<Uuid> = events.iter().map(|e| e.subject).collect();
    let principals: Vec<Value> = events.iter().map(|e| e.actor.to_json()).collect();
    let datas: Vec<Value> = events.iter().map(|e| e.data.clone()).collect();
    let appended = sqlx::query_scalar!(
        r#"SELECT append_events($1, $2, $3, $4, $5) AS "appended!""#,
        &accounts,
        &types,
        &subjects,
        &principals,
        &datas,
    )
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(appended).unwrap_or(0))
}

/// Which events to read: those after `after`, optionally only of `types` or about `subject`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub types: Option<Vec<String>>,
    pub subject: Option<Uuid>,
}

/// An event as stored.
struct Row {
    id: i64,
    kind: String,
    occurred_at: DateTime<Utc>,
    subject: Uuid,
    principal: Value,
    data: Value,
}

impl Row {
    fn event(self, account_id: Uuid) -> Event {
        let Self {
            id,
            kind,
            occurred_at,
            subject,
            principal,
            data,
        } = self;
        Event::new(account_id, id, kind, occurred_at, subject, principal, data)
    }
}

/// Up to `limit` of the account's events after `after`, in order.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn after(
    conn: &mut PgConnection,
    account_id: Uuid,
    after: i64,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, type AS kind, occurred_at, subject, principal, data FROM events
           WHERE account_id = $1 AND id > $2
             AND ($3::text[] IS NULL OR type = ANY($3))
             AND ($4::uuid IS NULL OR subject = $4)
           ORDER BY id
           LIMIT $5"#,
        account_id,
        after,
        filter.types.as_deref(),
        filter.subject,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.event(account_id)).collect())
}

/// Up to `limit` of the account's events before `before` (all when `None`), newest first.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn before(
    conn: &mut PgConnection,
    account_id: Uuid,
    before: Option<i64>,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, type AS kind, occurred_at, subject, principal, data FROM events
           WHERE account_id = $1 AND ($2::bigint IS NULL OR id < $2)
             AND ($3::text[] IS NULL OR type = ANY($3))
             AND ($4::uuid IS NULL OR subject = $4)
           ORDER BY id DESC
           LIMIT $5"#,
        account_id,
        before,
        filter.types.as_deref(),
        filter.subject,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.event(account_id)).collect())
}

/// The id of the account's latest event (0 before the first).
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn last_id(conn: &mut PgConnection, account_id: Uuid) -> Result<i64, sqlx::Error> {
    let last = sqlx::query_scalar!(
        "SELECT last_id FROM event_sequences WHERE account_id = $1",
        account_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(last.unwrap_or(0))
}

/// Where a reader's position `after` stands against the account's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gap {
    /// Nothing after `after` is missing.
    None,
    /// Events after `after` were deleted by retention; the log goes on after `resume_after`
    /// (the oldest kept minus one, or the latest when nothing newer is kept).
    Trimmed { resume_after: i64 },
    /// `after` is past the latest event (`last`): it was never handed out (the log was
    /// restored from an older backup, say, or the caller made it up).
    Ahead { last: i64 },
}

/// Whether events after `after` are missing. Ids have no gaps, so the event `after + 1` is
/// missing exactly when it was deleted.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn gap_after(
    conn: &mut PgConnection,
    account_id: Uuid,
    after: i64,
) -> Result<Gap, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT coalesce((SELECT last_id FROM event_sequences WHERE account_id = $1), 0) AS "last!",
                  EXISTS (SELECT 1 FROM events WHERE account_id = $1 AND id = $3) AS "next_kept!",
                  (SELECT min(id) FROM events WHERE account_id = $1 AND id > $2) AS oldest_kept"#,
        account_id,
        after,
        // Added here, not in SQL, where the largest position would overflow.
        after.saturating_add(1),
    )
    .fetch_one(conn)
    .await?;
    if after > row.last {
        return Ok(Gap::Ahead { last: row.last });
    }
    if row.last == after || row.next_kept {
        return Ok(Gap::None);
    }
    Ok(Gap::Trimmed {
        resume_after: row.oldest_kept.map_or(row.last, |oldest| oldest - 1),
    })
}

/// Deletes up to `limit` events older than `retention`; how many.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn delete_older_than(
    conn: &mut PgConnection,
    retention: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM events WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM events
             WHERE occurred_at < now() - $1::bigint * interval '1 millisecond'
             LIMIT $2))",
        millis(retention),
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
