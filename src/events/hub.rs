//! The live side of the event log, one per process: one `LISTEN` connection, and one feed per
//! account that has open streams here.
//!
//! A notification (`{account}:{highest new id}`, sent by PostgreSQL when an event commits,
//! from any replica) is only the signal to go and look: the hub reads the account's events
//! after the last one it passed on, from the table, and broadcasts them to that account's
//! streams. One read per notification serves every stream of the account. When the listening
//! connection drops, notifications may have been missed, so every feed reads again once it is
//! back. A stream that falls behind the broadcast reads the table itself (see
//! [`super::stream`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store::{self, Filter};
use super::Event;
use crate::error::Error;

pub const CHANNEL: &str = "warren_events";
/// Events a stream may fall behind the broadcast before it reads the table instead.
const BUFFER: usize = 1024;
/// Events one read takes.
const READ_BATCH: i64 = 500;

struct Feed {
    sender: broadcast::Sender<Arc<Event>>,
    /// The last event broadcast.
    last_id: i64,
}

/// The process's fan-out of committed events to open streams; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    db: PgPool,
    feeds: Arc<Mutex<HashMap<Uuid, Feed>>>,
    closing: CancellationToken,
}

impl Hub {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            feeds: Arc::new(Mutex::new(HashMap::new())),
            closing: CancellationToken::new(),
        }
    }

    /// Ends every open stream (the server is shutting down: streams never end by themselves).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Cancelled once the streams must end.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// A receiver of every event of `account_id` committed from now on (and possibly some
    /// before: the caller skips what it has).
    pub async fn subscribe(
        &self,
        account_id: Uuid,
    ) -> Result<broadcast::Receiver<Arc<Event>>, Error> {
        if let Some(feed) = self.lock().get(&account_id) {
            return Ok(feed.sender.subscribe());
        }
        let last_id = {
            let mut conn = self.db.acquire().await?;
            store::last_id(&mut conn, account_id).await?
        };
        let mut feeds = self.lock();
        // Forget the accounts whose streams have all ended.
        feeds.retain(|_, feed| feed.sender.receiver_count() > 0);
        let feed = feeds.entry(account_id).or_insert_with(|| Feed {
            sender: broadcast::channel(BUFFER).0,
            last_id,
        });
        Ok(feed.sender.subscribe())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Feed>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads and broadcasts what `account_id` committed after its feed's last event, if the
    /// account has a feed here and `newest` (when known) is past it.
    async fn wake(&self, account_id: Uuid, newest: Option<i64>) -> Result<(), sqlx::Error> {
        loop {
            let last_id = {
                let mut feeds = self.lock();
                match feeds.get(&account_id) {
                    Some(feed) if feed.sender.receiver_count() == 0 => {
                        // Every stream of the account has ended.
                        feeds.remove(&account_id);
                        return Ok(());
                    }
                    Some(feed) if newest.is_some_and(|n| n <= feed.last_id) => return Ok(()),
                    Some(feed) => feed.last_id,
                    None => return Ok(()),
                }
            };
            let mut conn = self.db.acquire().await?;
            let events = store::after(
                &mut conn,
                account_id,
                last_id,
                &Filter::default(),
                READ_BATCH,
            )
            .await?;
            drop(conn);
            let full = events.len() as i64 == READ_BATCH;
            let mut feeds = self.lock();
            let Some(feed) = feeds.get_mut(&account_id) else {
                return Ok(());
            };
            for event in events {
                // Another read may have passed these on meanwhile.
                if event.id == feed.last_id + 1 {
                    feed.last_id = event.id;
                    let _ = feed.sender.send(Arc::new(event));
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn wake_all(&self) {
        let accounts: Vec<Uuid> = self.lock().keys().copied().collect();
        for account in accounts {
            if let Err(err) = self.wake(account, None).await {
                tracing::warn!(error = %err, "reading events for open streams failed");
            }
        }
    }

    /// Listens for committed events until `shutdown`, reconnecting when the connection drops.
    pub async fn listen(self, shutdown: CancellationToken) {
        loop {
            let mut listener = match connect(&self.db).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "event listener cannot connect; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            // Whatever committed while no one listened.
            self.wake_all().await;
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = listener.try_recv() => received,
                };
                match received {
                    Ok(Some(notification)) => {
                        let Some((account, newest)) = parse(notification.payload()) else {
                            continue;
                        };
                        if let Err(err) = self.wake(account, Some(newest)).await {
                            tracing::warn!(error = %err, "reading events for open streams failed");
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// `{account uuid}:{id}`.
fn parse(payload: &str) -> Option<(Uuid, i64)> {
    let (account, id) = payload.split_once(':')?;
    Some((Uuid::try_parse(account).ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_name_the_account_and_its_newest_event() {
        let account = Uuid::new_v4();
        assert_eq!(parse(&format!("{account}:42")), Some((account, 42)));
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse(&format!("{account}:x")), None);
    }
}
