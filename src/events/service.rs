//! The event service: an account's log, a page at a time or as a live stream.

use sqlx::PgPool;
use uuid::Uuid;

use super::hub::Hub;
use super::store::{self, Filter, Gap};
use super::stream::{self, Start, StreamItem, Subscription};
use super::{Event, EventType};
use crate::auth::{Principal, Scope};
use crate::error::{Error, ErrorCode};

/// The default and largest page of the log.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

/// The event service; cheap to clone.
#[derive(Clone)]
pub struct Events {
    db: PgPool,
    hub: Hub,
}

/// Which events to read, as the caller wrote the parameters: `after` (an event id, default
/// 0), `types` (comma-separated event types), `subject` (a UUID), `limit` (1 to 1000).
#[derive(Clone, Copy, Debug, Default)]
pub struct EventQuery<'a> {
    pub after: Option<&'a str>,
    pub types: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub limit: Option<&'a str>,
}

/// A page of the log, and the position after it when the page is full.
pub struct Page {
    pub events: Vec<Event>,
    pub next_after: Option<i64>,
    pub limit: i64,
}

impl Page {
    /// The page of `events` read with `limit`: full, it has a next page after its last event.
    fn of(events: Vec<Event>, limit: i64) -> Self {
        let next_after = events
            .last()
            .filter(|_| events.len() as i64 == limit)
            .map(|e| e.id);
        Self {
            events,
            next_after,
            limit,
        }
    }
}

impl Events {
    pub fn new(db: PgPool, hub: Hub) -> Self {
        Self { db, hub }
    }

    /// The events after `after`, in order. A position whose next events were deleted by
    /// retention is refused (`events_expired`), so that no reader skips events unknowingly.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn page(&self, caller: &Principal, query: EventQuery<'_>) -> Result<Page, Error> {
        caller.require(Scope::EventsRead)?;
        let after = position("after", query.after)?.unwrap_or(0);
        let filter = filter(query.types, query.subject)?;
        let limit = page_size(query.limit)?;
        let mut tx = self.db.begin().await?;
        if after > 0 {
            match store::gap_after(&mut tx, caller.account_id, after).await? {
                Gap::None => {}
                Gap::Trimmed { resume_after } => return Err(expired(after, resume_after)),
                Gap::Ahead { last } => return Err(ahead(after, last)),
            }
        }
        let events = store::after(&mut tx, caller.account_id, after, &filter, limit).await?;
        tx.commit().await?;
        Ok(Page::of(events, limit))
    }

    /// The latest events (before the event id `before`, when given), newest first: the log
    /// read backwards, as a feed shows it. `types`, `subject` and `limit` as for [`Events::page`];
    /// the answer's `next_after` is the `before` of the next, older page.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn recent(
        &self,
        caller: &Principal,
        before: Option<&str>,
        query: EventQuery<'_>,
    ) -> Result<Page, Error> {
        caller.require(Scope::EventsRead)?;
        let before = position("before", before)?;
        let filter = filter(query.types, query.subject)?;
        let limit = page_size(query.limit)?;
        let mut conn = self.db.acquire().await?;
        let events = store::before(&mut conn, caller.account_id, before, &filter, limit).await?;
        Ok(Page::of(events, limit))
    }

    /// Follows the log: every event after the position (`last_event_id`, else `after`, else
    /// only events from now on), then each new one as it commits, from whichever replica.
    /// A position older than retention starts with a [`StreamItem::Reset`].
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn subscribe(
        &self,
        caller: &Principal,
        last_event_id: Option<&str>,
        query: EventQuery<'_>,
    ) -> Result<Subscription, Error> {
        caller.require(Scope::EventsRead)?;
        let asked = match position("Last-Event-ID", last_event_id)? {
            Some(id) => Some(id),
            None => position("after", query.after)?,
        };
        let filter = filter(query.types, query.subject)?;
        let account_id = caller.account_id;
        // Joined before reading, so nothing committed in between can fall through.
        let live = self.hub.subscribe(account_id).await?;
        let mut conn = self.db.acquire().await?;
        let (after, reset) = match asked {
            None => (store::last_id(&mut conn, account_id).await?, None),
            Some(after) => {
                let (resume_after, ahead) =
                    match store::gap_after(&mut conn, account_id, after).await? {
                        Gap::None => (after, false),
                        Gap::Trimmed { resume_after } => (resume_after, false),
                        Gap::Ahead { last } => (last, true),
                    };
                let reset = (resume_after != after).then_some(StreamItem::Reset {
                    requested: after,
                    resume_after,
                    ahead,
                });
                (resume_after, reset)
            }
        };
        drop(conn);
        let start = Start {
            db: self.db.clone(),
            closing: self.hub.closing(),
            account_id,
            after,
            filter,
            live,
        };
        Ok(stream::open(start, reset))
    }

    /// The task that wakes this process's streams; run it beside the server.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }
}

/// `limit`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
fn page_size(raw: Option<&str>) -> Result<i64, Error> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => crate::fleet::query::whole_number("limit", raw, 1, MAX_PAGE),
    }
}

/// An event id (a whole number ≥ 0), named as the caller sent it.
fn position(name: &str, raw: Option<&str>) -> Result<Option<i64>, Error> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Error::bad_param(
                    name,
                    format!("{name} must be an event id (a whole number ≥ 0); got `{s}`"),
                )
            })
        })
        .transpose()
}

fn filter(types: Option<&str>, subject: Option<&str>) -> Result<Filter, Error> {
    // An empty `types` is no filter; otherwise every comma-separated name must be a known
    // type, exactly as written (the OpenAPI pattern says the same).
    let types = types
        .filter(|t| !t.is_empty())
        .map(|raw| {
            raw.split(',')
                .map(|name| {
                    EventType::parse(name)
                        .map(|t| t.as_str().to_owned())
                        .ok_or_else(|| {
                            let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                            Error::bad_param(
                                "types",
                                format!(
                                    "unknown event type `{name}`; known types: {}",
                                    known.join(", ")
                                ),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    // A subject, when given, is a hyphenated UUID (`8-4-4-4-12` hex digits).
    let subject = subject
        .map(|raw| {
            Uuid::try_parse(raw)
                .ok()
                .filter(|_| raw.len() == 36)
                .ok_or_else(|| {
                    Error::bad_param(
                        "subject",
                        format!("subject must be a UUID like 8-4-4-4-12 hex digits; got `{raw}`"),
                    )
                })
        })
        .transpose()?;
    Ok(Filter { types, subject })
}

/// `after` is past the latest event: no such position was ever handed out.
fn ahead(after: i64, last: i64) -> Error {
    Error::conflict(
        ErrorCode::EventPositionAhead,
        format!("there is no event {after} yet: the latest is {last}; continue after {last}"),
    )
    .with("resumeAfter", last)
}

/// The events after `after` are gone: retention deleted them.
fn expired(after: i64, resume_after: i64) -> Error {
    Error::Gone {
        code: ErrorCode::EventsExpired,
        detail: format!(
            "the events after {after} are older than the retention and were deleted; \
             continue after {resume_after}"
        ),
        extra: Default::default(),
    }
    .with("resumeAfter", resume_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_filters_name_the_bad_parameter() {
        assert_eq!(position("after", Some("12")).unwrap(), Some(12));
        assert_eq!(position("after", None).unwrap(), None);
        for bad in ["-1", "x", "1.5"] {
            let Err(Error::Invalid { field, .. }) = position("after", Some(bad)) else {
                panic!("{bad}");
            };
            assert_eq!(field, "after");
        }
        let f = filter(Some("tunnel.failed.v1,token.created.v1"), None).unwrap();
        assert_eq!(f.types.unwrap().len(), 2);
        assert!(filter(Some(""), None).unwrap().types.is_none());
        for bad in [
            "tunnel.failed.v1, token.created.v1",
            "tunnel.failed.v1,",
            " ",
        ] {
            assert!(matches!(
                filter(Some(bad), None),
                Err(Error::Invalid { field, .. }) if field == "types"
            ));
        }
        for bad in ["", "nope", "67e5504410b1426f9247bb680e5fe0c8"] {
            assert!(matches!(
                filter(None, Some(bad)),
                Err(Error::Invalid { field, .. }) if field == "subject"
            ));
        }
        assert!(matches!(
            filter(Some("tunnel.failed"), None),
            Err(Error::Invalid { field, .. }) if field == "types"
        ));
        assert!(matches!(
            filter(None, Some("nope")),
            Err(Error::Invalid { field, .. }) if field == "subject"
        ));
    }
}
