//! The dashboard's view of an account's tunnels: filtered by state and slug, a page at a
//! time, newest first; and one tunnel's status timeline from its transition log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::list::PageQuery;
use super::timeline::{Timeline, Transition};
use super::{store, Cursor, Status, TunnelView, Tunnels};
use crate::auth::{Principal, Scope};
use crate::error::Error;

/// Tunnels a page of a search holds.
pub const SEARCH_PAGE: i64 = 100;

/// Which tunnels to find, as the caller wrote the parameters (an empty one is absent):
/// `status` (one state), `liveness` (`live`, `inactive` or `all`, the default), `slug` (a
/// part of the slug), `after` (a cursor from a previous page).
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchRequest<'a> {
    pub status: Option<&'a str>,
    pub liveness: Option<&'a str>,
    pub slug: Option<&'a str>,
    pub after: Option<&'a str>,
}

/// The parsed filters of a search.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub status: Option<Status>,
    /// `Some(true)`: live only; `Some(false)`: stopped and failed only.
    pub live: Option<bool>,
    pub slug: Option<String>,
}

/// A page of found tunnels, and where the next page starts.
pub struct Found {
    pub tunnels: Vec<TunnelView>,
    pub next: Option<Cursor>,
}

fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl SearchRequest<'_> {
    pub fn filters(&self) -> Result<Filters, Error> {
        let status = given(self.status)
            .map(|raw| {
                Status::parse(raw).ok_or_else(|| {
                    Error::bad_param(
                        "status",
                        format!("status must be one of creating, active, stopping, stopped, failed; got `{raw}`"),
                    )
                })
            })
            .transpose()?;
        let live = match given(self.liveness) {
            None | Some("all") => None,
            Some("live") => Some(true),
            Some("inactive") => Some(false),
            Some(other) => {
                return Err(Error::bad_param(
                    "live",
                    format!("live must be one of all, live, inactive; got `{other}`"),
                ))
            }
        };
        let slug = match given(self.slug) {
            Some(s) if s.chars().count() > 63 || s.chars().any(char::is_control) => {
                return Err(Error::bad_param(
                    "q",
                    "the slug search must be at most 63 characters, without control characters",
                ))
            }
            s => s.map(str::to_lowercase),
        };
        Ok(Filters { status, live, slug })
    }
}

impl Tunnels {
    /// A page of the caller's tunnels matching the filters, newest first.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn search(
        &self,
        caller: &Principal,
        request: SearchRequest<'_>,
    ) -> Result<Found, Error> {
        caller.require(Scope::TunnelsRead)?;
        let filters = request.filters()?;
        let after = match given(request.after) {
            None => None,
            Some(raw) => Some(Cursor::parse(raw).ok_or_else(|| {
                Error::bad_param("after", "after must be a cursor from a previous page")
            })?),
        };
        let mut conn = self.db.acquire().await?;
        let query = PageQuery::Search {
            filters: &filters,
            after,
            limit: SEARCH_PAGE + 1,
        };
        let mut rows = self.read_page(&mut conn, caller.account_id, query).await?;
        let more = rows.len() as i64 > SEARCH_PAGE;
        rows.truncate(SEARCH_PAGE as usize);
        let next = rows.last().filter(|_| more).map(Cursor::after);
        Ok(Found {
            tunnels: rows.into_iter().map(|t| self.view(t)).collect(),
            next,
        })
    }

    /// The tunnel's states over the `window` that ends now, from its transition log.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn timeline(
        &self,
        caller: &Principal,
        id: Uuid,
        window: Duration,
    ) -> Result<Timeline, Error> {
        caller.require(Scope::TunnelsRead)?;
        let mut tx = self.db.begin().await?;
        let tunnel = self.current(&mut tx, caller.account_id, id).await?;
        let (rows, now) = store::transitions(&mut tx, caller.account_id, id).await?;
        tx.commit().await?;
        let transitions: Vec<Transition> = rows
            .into_iter()
            .filter_map(|row| {
                Some(Transition {
                    from: Status::parse(&row.from_status)?,
                    to: Status::parse(&row.to_status)?,
                    at: row.at,
                })
            })
            .collect();
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(7));
        let start: DateTime<Utc> = now - window;
        Ok(Timeline::build(tunnel.created_at, &transitions, start, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_the_bad_parameter() {
        let ok = SearchRequest {
            status: Some("failed"),
            liveness: Some("inactive"),
            slug: Some(" My-App "),
            after: None,
        };
        let f = ok.filters().unwrap();
        assert_eq!(f.status, Some(Status::Failed));
        assert_eq!(f.live, Some(false));
        assert_eq!(f.slug.as_deref(), Some("my-app"));
        assert!(SearchRequest::default().filters().unwrap().live.is_none());
        for (bad, field) in [
            (
                SearchRequest {
                    status: Some("up"),
                    ..Default::default()
                },
                "status",
            ),
            (
                SearchRequest {
                    liveness: Some("yes"),
                    ..Default::default()
                },
                "live",
            ),
            (
                SearchRequest {
                    slug: Some("a\u{7}"),
                    ..Default::default()
                },
                "q",
            ),
        ] {
            assert!(matches!(bad.filters(), Err(Error::Invalid { field: f, .. }) if f == field));
        }
    }
}
