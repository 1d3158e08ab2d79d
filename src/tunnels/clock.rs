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

/// What a reaper tick found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// The grace this tick gave, if the reaper could not run for a while.
    pub grace: Option<Grace>,
    /// A pass over the live set (by any replica) has shown that no lease can have run out
    /// yet: see [`skip_passes`]. Never after a grace, which forgets the skip.
    pub skip_pass: bool,
}

/// A grace the reaper gave after finding it could not run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grace {
    /// How long no reaper ran.
    pub outage: Duration,
    /// No lease ends before this.
    pub until: DateTime<Utc>,
}

/// The reaper's tick: stamps the clock and, when the previous stamp is older than
/// `stall_after`, holds every live lease until at least `lease_ttl` from now (and forgets
/// the shared skip). The clock row stays locked until the caller commits, so two replicas
/// cannot both give the grace.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn tick(
    conn: &mut PgConnection,
    stall_after: Duration,
    lease_ttl: Duration,
) -> Result<Tick, sqlx::Error> {
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
                                  ELSE grace_until END,
               passes_skip_until = CASE WHEN before.stalled THEN NULL ELSE passes_skip_until END
           FROM before
           RETURNING CASE WHEN before.stalled
                          THEN (extract(epoch FROM now() - before.reaper_ran_at) * 1000)::bigint
                     END AS gap_ms,
                     grace_until,
                     COALESCE(passes_skip_until > now(), false) AS "skip_pass!""#,
        millis(stall_after),
        millis(lease_ttl),
    )
    .fetch_one(&mut *conn)
    .await?;
    let grace = match (row.gap_ms, row.grace_until) {
        (Some(gap_ms), Some(until)) => Some(Grace {
            outage: Duration::from_millis(u64::try_from(gap_ms).unwrap_or(0)),
            until,
        }),
        _ => None,
    };
    Ok(Tick {
        grace,
        skip_pass: row.skip_pass,
    })
}

/// Records that no pass over the live set is needed before `until` (the moment a pass that
/// left nothing due began, plus how long its earliest live lease had left): every
/// replica's tick skips its pass until then. Never moves the moment earlier.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn skip_passes(conn: &mut PgConnection, until: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE lease_clock SET passes_skip_until = GREATEST(passes_skip_until, $1)
         WHERE reaper_ran_at IS NOT NULL",
        until
    )
    .execute(conn)
    .await?;
    Ok(())
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
