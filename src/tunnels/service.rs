//! The tunnel service: what a caller may do with tunnels, whichever route family it came
//! through. Each operation checks the caller's scope, runs in one transaction, and answers
//! the tunnel as the API shows it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use uuid::Uuid;

use super::batcher::Batcher;
use super::idempotency::{self, Claim};
use super::leases::{self, Due};
use super::store;
use super::{slug, Tunnel, TunnelView};
use crate::auth::{tokens, Principal, Scope};
use crate::error::{Error, ErrorCode};
use crate::events::{self, EventType, NewEvent};
use crate::telemetry::Meter;

/// What the tunnel rules depend on.
#[derive(Clone, Debug)]
pub struct Settings {
    pub lease_ttl: Duration,
    /// A tunnel's hostname is `{slug}.{base_domain}`.
    pub base_domain: String,
    /// How long a connector that stopped reporting stays listed, pending reconnect.
    pub reconnect_grace: Duration,
}

impl Settings {
    /// The interval agents are told to heartbeat at: TTL / 3, rounded down, at least 1 s.
    pub fn heartbeat_interval_secs(&self) -> u64 {
        (self.lease_ttl.as_secs() / 3).max(1)
    }
}

/// The tunnel service; cheap to clone.
#[derive(Clone)]
pub struct Tunnels {
    pub(super) db: PgPool,
    pub(super) settings: Arc<Settings>,
    pub(super) heartbeats: Batcher,
    pub(super) meter: Meter,
}

/// The `Idempotency-Key` of a creation: 1-255 visible ASCII characters.
fn idempotency_key(raw: Option<&[u8]>) -> Result<Option<&str>, Error> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match std::str::from_utf8(raw) {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key))
        }
        _ => Err(Error::bad_param(
            "Idempotency-Key",
            "the Idempotency-Key header must be 1-255 visible ASCII characters",
        )),
    }
}

/// A tunnel to create: `slug` is generated when absent.
#[derive(Clone, Debug)]
pub struct NewTunnel {
    pub slug: Option<String>,
    pub requested_port: i64,
}

/// How many generated slugs to try before giving up (each collision is ~1 in 1.3 million).
const SLUG_ATTEMPTS: usize = 5;

impl Tunnels {
    pub fn new(db: PgPool, settings: Settings, heartbeats: Batcher, meter: Meter) -> Self {
        Self {
            db,
            settings: Arc::new(settings),
            heartbeats,
            meter,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn view(&self, tunnel: Tunnel) -> TunnelView {
        TunnelView::new(tunnel, &self.settings.base_domain)
    }

    /// The event of `caller` doing something to `tunnel`, which the API now shows as `view`.
    fn event(&self, caller: &Principal, kind: EventType, view: &TunnelView) -> NewEvent {
        NewEvent::new(caller.account_id, kind, view.id, caller.into(), view)
    }

    /// The tunnel as it is now (a run-out lease expired first, with its event), or not found.
    /// The expiry takes the account's event lock: call it last in a transaction (or use
    /// [`Tunnels::fresh`] before the transaction begins).
    pub async fn current(
        &self,
        conn: &mut PgConnection,
        account_id: Uuid,
        id: Uuid,
    ) -> Result<Tunnel, Error> {
        leases::expire_due(conn, Due::tunnel(id), &self.settings.base_domain).await?;
        find(conn, account_id, id).await
    }

    /// A connection on which the run-out leases `due` selects have been expired, each with
    /// its event, in a statement of its own. A transaction that reads those tunnels begins on
    /// it afterwards: the expiry's event lock (a transaction's last lock, always) is released
    /// before the transaction takes any other.
    pub async fn fresh(&self, due: Due<'_>) -> Result<PoolConnection<Postgres>, Error> {
        let mut conn = self.db.acquire().await?;
        leases::expire_due(&mut conn, due, &self.settings.base_domain).await?;
        Ok(conn)
    }

    /// Creates a tunnel in state `creating` with a fresh lease. With an idempotency key (as
    /// sent), a repeat of the same request within 24 hours answers the tunnel the first one
    /// created.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn create(
        &self,
        caller: &Principal,
        new: NewTunnel,
        idempotency_key: Option<&[u8]>,
    ) -> Result<TunnelView, Error> {
        caller.require(Scope::TunnelsWrite)?;
        let requested_port = super::validate_port(new.requested_port)?;
        if let Some(slug) = &new.slug {
            slug::validate(slug)?;
        }
        let idempotency_key = self::idempotency_key(idempotency_key)?;
        let mut tx = self.db.begin().await?;
        if let Some(key) = idempotency_key {
            let request_hash = tokens::digest(&format!("{:?}|{requested_port}", new.slug));
            match idempotency::claim(&mut tx, caller.account_id, key, &request_hash).await? {
                Claim::New => {}
                Claim::Used {
                    request_hash: used, ..
                } if used != request_hash => {
                    return Err(Error::Unprocessable {
                        code: ErrorCode::IdempotencyKeyReused,
                        detail: "this Idempotency-Key was used with a different body".into(),
                    });
                }
                Claim::Used { tunnel_id, .. } => {
                    let id = tunnel_id.ok_or(Error::NotFound("tunnel"))?;
                    let tunnel = self.current(&mut tx, caller.account_id, id).await?;
                    tx.commit().await?;
                    return Ok(self.view(tunnel));
                }
            }
        }
        for _ in 0..SLUG_ATTEMPTS {
            let slug = new.slug.clone().unwrap_or_else(slug::generate);
            // A holder whose lease ran out frees the slug now, not when the reaper comes by.
            let due = Due {
                slug: Some(&slug),
                ..Due::default()
            };
            leases::expire_due(&mut tx, due, &self.settings.base_domain).await?;
            let row = store::NewTunnel {
                id: Uuid::new_v4(),
                account_id: caller.account_id,
                slug: &slug,
                requested_port,
                lease_ttl: self.settings.lease_ttl,
            };
            if let Some(tunnel) = store::insert(&mut tx, row).await? {
                if let Some(key) = idempotency_key {
                    idempotency::complete(&mut tx, caller.account_id, key, tunnel.id).await?;
                }
                let view = self.view(tunnel);
                let created = self.event(caller, EventType::TunnelCreated, &view);
                events::store::append(&mut tx, &[created]).await?;
                tx.commit().await?;
                tracing::info!(tunnel_id = %view.id, slug = %view.slug, "tunnel created");
                return Ok(view);
            }
            if new.slug.is_some() {
                let holder = store::live_holder(&mut tx, &slug).await?;
                return Err(slug_taken(&slug, holder, caller.account_id));
            }
        }
        Err(Error::internal(anyhow::anyhow!(
            "no free generated slug after {SLUG_ATTEMPTS} attempts"
        )))
    }

    /// One tunnel of the caller's account.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<TunnelView, Error> {
        caller.require(Scope::TunnelsRead)?;
        let mut conn = self.fresh(Due::tunnel(id)).await?;
        Ok(self.view(find(&mut conn, caller.account_id, id).await?))
    }

    /// An explicit transition of the state machine; any transition it does not allow is a
    /// conflict naming both states.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn update(
        &self,
        caller: &Principal,
        id: Uuid,
        status: &str,
        last_error: Option<&str>,
    ) -> Result<TunnelView, Error> {
        caller.require_any(&[Scope::TunnelsWrite, Scope::TunnelsHeartbeat])?;
        let to = super::validate_patch(status, last_error)?;
        let mut conn = self.fresh(Due::tunnel(id)).await?;
        let mut tx = conn.begin().await?;
        let before = find(&mut tx, caller.account_id, id).await?;
        let changed = store::transition(
            &mut tx,
            caller.account_id,
            id,
            to.patch_sources(),
            to,
            last_error,
        )
        .await?;
        let Some(tunnel) = changed else {
            return Err(super::invalid_transition(&before.status, to));
        };
        let view = self.view(tunnel);
        let event = self.event(caller, EventType::tunnel_entered(to), &view);
        events::store::append(&mut tx, &[event]).await?;
        tx.commit().await?;
        tracing::info!(tunnel_id = %id, from = %before.status, to = to.as_str(), "tunnel transitioned");
        Ok(view)
    }

    /// How many tunnels of the whole installation are in each state (every state, zero
    /// included), for operators.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, Error> {
        let mut conn = self.db.acquire().await?;
        Ok(store::count_by_status(&mut conn).await?)
    }

    /// Removes a `stopped` or `failed` tunnel from the history; a live one is a conflict.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<(), Error> {
        caller.require(Scope::TunnelsWrite)?;
        let mut conn = self.fresh(Due::tunnel(id)).await?;
        let mut tx = conn.begin().await?;
        let tunnel = find(&mut tx, caller.account_id, id).await?;
        if !store::delete_terminal(&mut tx, caller.account_id, id).await? {
            return Err(Error::conflict(
                ErrorCode::TunnelLive,
                format!(
                    "the tunnel is `{}`; stop it before deleting it",
                    tunnel.status
                ),
            ));
        }
        let deleted = self.event(caller, EventType::TunnelDeleted, &self.view(tunnel));
        events::store::append(&mut tx, &[deleted]).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The caller's tunnel `id` as stored, or not found.
pub async fn find(conn: &mut PgConnection, account_id: Uuid, id: Uuid) -> Result<Tunnel, Error> {
    store::get(conn, account_id, id)
        .await?
        .ok_or(Error::NotFound("tunnel"))
}

/// `slug_taken`; the holder's `tunnelId` only when it is the caller's own tunnel, so an agent
/// restarted after a crash can adopt it, and nobody learns another account's ids.
fn slug_taken(slug: &str, holder: Option<(Uuid, Uuid)>, account_id: Uuid) -> Error {
    let err = Error::conflict(
        ErrorCode::SlugTaken,
        format!("the slug `{slug}` is held by a live tunnel"),
    );
    match holder {
        Some((tunnel_id, owner)) if owner == account_id => {
            err.with("tunnelId", tunnel_id.to_string())
        }
        _ => err,
    }
}
