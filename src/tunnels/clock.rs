//! The lease clock: how the reaper notices that it could not run, and the outage grace.
//!
//! Agents cannot heartbeat while Warren or its database is down, so the reaper must not
//! expire, right after recovery, the leases that ran out during the outage. Each reaper tick
//! stamps the database's `lease_clock` row; a tick that finds the previous stamp older than
//! `stall_after` gives every live lease one full TTL from now by writing `grace_until` in the
//! same row: no lease ends before it (`migrations/0017_grace_as_a_floor.sql`), and no tunnel
//! row is rewritten. Until that tick has run, the SQL function `leases_on_hold()` is true;
//! while either holds, `lease_cutoff()` is -infinity, and every lease predicate (lazy expiry,
//! reaper, heartbeat, PATCH) treats leases as not yet run out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::time::millis;

/// A grace the reaper gave after finding it could not run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grace {
    /// How long no reaper ran.
    pub outage: Duration,
    /// No lease ends before this.
    pub until: DateTime<Utc>,
}

/// The reaper's tick: stamps the clock and, when the previous stamp is older than
/// `stall_after`, holds every live lease until at least `lease_ttl` from now. The clock row
/// stays locked until the caller commits, so two replicas cannot both give the grace.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn tick(
    conn: &mut PgConnection,
    stall_after: Duration,
    lease_ttl: Duration,
) -> Result<Option<Grace>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH before AS (
               SELECT reaper_ran_at,
                      reaper_ran_at < now() - $1::bigint * interval '1 millisecond' AS stalled
               FROM lease_clock FOR UPDATE
           )
           UPDATE lease_clock SET
               reaper_ran_at = now(),
               stall_after = $1::bigint * interval '1 millisecond',
               last_grace_at = CASE WHEN before.stalled THEN now() ELSE last_grace_at END,
               last_outage = CASE WHEN before.stalled THEN now() - before.reaper_ran_at ELSE last_outage END,
               grace_until = CASE WHEN before.stalled
                                  THEN date_trunc('milliseconds', now()) + $2::bigint * interval '1 millisecond'
                                  ELSE grace_until END
           FROM before
           RETURNING CASE WHEN before.stalled
                          THEN (extract(epoch FROM now() - before.reaper_ran_at) * 1000)::bigint
                     END AS gap_ms,
                     grace_until"#,
        millis(stall_after),
        millis(lease_ttl),
    )
    .fetch_one(&mut *conn)
    .await?;
    let (Some(gap_ms), Some(until)) = (row.gap_ms, row.grace_until) else {
        return Ok(None);
    };
    Ok(Some(Grace {
        outage: Duration::from_millis(u64::try_from(gap_ms).unwrap_or(0)),
        until,
    }))
}

/// Stamps the clock without looking at the gap: the reaper is running (between batches of
/// a long sweep), so a long sweep is never mistaken for an outage.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn touch(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE lease_clock SET reaper_ran_at = now() WHERE reaper_ran_at IS NOT NULL")
        .execute(conn)
        .await?;
    Ok(())
}
