//! The tunnel list: a page at a time, newest first, with a cursor for the next page.

use sqlx::PgConnection;
use uuid::Uuid;

use super::leases::{self, Due};
use super::search::Filters;
use super::store;
use super::{Cursor, Tunnel, TunnelView, Tunnels};
use crate::auth::{Principal, Scope};
use crate::error::Error;

/// Which tunnels to list, as the caller wrote the parameters: `includeInactive` (`true`, `1`,
/// `false`, `0`), `limit` (1 to 1000, the default) and `after` (a cursor from a previous page).
#[derive(Clone, Copy, Debug, Default)]
pub struct ListRequest<'a> {
    pub include_inactive: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub after: Option<&'a str>,
}

/// A page of tunnels, newest first, and where the next page starts if there is one.
pub struct Page {
    pub tunnels: Vec<TunnelView>,
    pub next: Option<Cursor>,
    /// The request as understood, for the link to the next page.
    pub include_inactive: bool,
    pub limit: i64,
}

impl Tunnels {
    /// A page of the caller's tunnels, newest first; only live ones unless asked.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn list(&self, caller: &Principal, request: ListRequest<'_>) -> Result<Page, Error> {
        caller.require(Scope::TunnelsRead)?;
        let include_inactive = parse_bool_param("includeInactive", request.include_inactive)?;
        let limit = parse_limit(request.limit)?;
        let after = parse_cursor(request.after)?;
        let mut conn = self.db.acquire().await?;
        let query = PageQuery::List {
            include_inactive,
            after,
            limit: limit + 1,
        };
        let mut rows = self.read_page(&mut conn, caller.account_id, query).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next = rows.last().filter(|_| more).map(Cursor::after);
        Ok(Page {
            tunnels: rows.into_iter().map(|t| self.view(t)).collect(),
            next,
            include_inactive,
            limit,
        })
    }

    /// A page of the account's tunnels as `query` asks. Leases that ran out are expired
    /// before they are shown, but only those on the page (the rest of the account is not this
    /// request's business: the reaper gets to them), and the page is read again.
    pub(super) async fn read_page(
        &self,
        conn: &mut PgConnection,
        account_id: Uuid,
        query: PageQuery<'_>,
    ) -> Result<Vec<Tunnel>, Error> {
        let mut rows = Vec::new();
        for round in 1..=EXPIRY_ROUNDS {
            rows = match query {
                PageQuery::List {
                    include_inactive,
                    after,
                    limit,
                } => store::list(conn, account_id, include_inactive, after, limit).await?,
                PageQuery::Search {
                    filters,
                    after,
                    limit,
                } => store::search(conn, account_id, filters, after, limit).await?,
            };
            let due: Vec<Uuid> = rows.iter().filter(|r| r.1).map(|r| r.0.id).collect();
            if due.is_empty() || round == EXPIRY_ROUNDS {
                break;
            }
            let due = Due {
                account_id: Some(account_id),
                ids: Some(&due),
                ..Due::default()
            };
            leases::expire_due(&mut *conn, due, &self.settings.base_domain).await?;
        }
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

/// Which page [`Tunnels::read_page`] reads: of the list or of a search, `limit` rows from
/// `after`.
#[derive(Clone, Copy)]
pub(super) enum PageQuery<'a> {
    List {
        include_inactive: bool,
        after: Option<Cursor>,
        limit: i64,
    },
    Search {
        filters: &'a Filters,
        after: Option<Cursor>,
        limit: i64,
    },
}

/// How many times a page is read at most: after a read that shows run-out leases, those are
/// expired and the page read again (a lease that runs out in the milliseconds between two
/// reads is caught by the next one, and the last read is shown as it is).
const EXPIRY_ROUNDS: usize = 3;

/// The default and largest page of `GET /v1/tunnels`.
pub const MAX_PAGE: i64 = 1000;

/// `true`, `1`, `false`, `0`: what the native API has always accepted.
fn parse_bool_param(name: &str, value: Option<&str>) -> Result<bool, Error> {
    match value {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(Error::bad_param(
            name,
            format!("{name} must be one of true, 1, false, 0; got `{other}`"),
        )),
    }
}

fn parse_limit(value: Option<&str>) -> Result<i64, Error> {
    let Some(raw) = value else {
        return Ok(MAX_PAGE);
    };
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(Error::bad_param(
            "limit",
            format!("limit must be a whole number from 1 to {MAX_PAGE}; got `{raw}`"),
        )),
    }
}

fn parse_cursor(value: Option<&str>) -> Result<Option<Cursor>, Error> {
    let Some(raw) = value else {
        return Ok(None);
    };
    Cursor::parse(raw).map(Some).ok_or_else(|| {
        Error::bad_param(
            "after",
            "after must be a cursor taken from a `Link: rel=\"next\"` header",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_inactive_accepts_true_1_false_and_0_only() {
        assert!(parse_bool_param("x", Some("true")).unwrap());
        assert!(parse_bool_param("x", Some("1")).unwrap());
        assert!(!parse_bool_param("x", Some("false")).unwrap());
        assert!(!parse_bool_param("x", Some("0")).unwrap());
        assert!(!parse_bool_param("x", None).unwrap());
        for bad in ["yes", "TRUE", "", "2"] {
            assert!(parse_bool_param("x", Some(bad)).is_err(), "{bad}");
        }
    }
}
