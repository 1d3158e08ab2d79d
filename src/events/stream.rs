//! One open stream: what was missed since the reader's position, read from the table, then
//! every new event as the hub broadcasts it, with nothing lost and nothing repeated.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store::{self, Filter};
use super::Event;

/// What a stream hands its reader.
#[derive(Clone, Debug)]
pub enum StreamItem {
    /// The reader's position is not in the log: the events after it up to `resume_after`
    /// were deleted by retention, or it is past the latest event (`ahead`). The stream goes
    /// on after `resume_after`.
    Reset {
        requested: i64,
        resume_after: i64,
        ahead: bool,
    },
    Event(Arc<Event>),
}

/// An open stream; dropping it ends the work behind it.
pub struct Subscription {
    items: mpsc::Receiver<StreamItem>,
}

impl Subscription {
    /// The next item; waits for one. `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<StreamItem> {
        self.items.recv().await
    }

    /// The items as a stream, which ends when the subscription does.
    pub fn into_stream(self) -> impl futures::Stream<Item = StreamItem> + Send {
        futures::stream::unfold(self, |mut subscription| async {
            let item = subscription.next().await?;
            Some((item, subscription))
        })
    }
}

/// How many events a catch-up read takes at once, and how many items may wait for a slow
/// reader before the stream stops reading ahead.
const CATCH_UP_BATCH: i64 = 500;
const QUEUE: usize = 256;

pub(super) struct Start {
    pub db: PgPool,
    /// Ends the stream when cancelled.
    pub closing: CancellationToken,
    pub account_id: Uuid,
    pub after: i64,
    pub filter: Filter,
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// Starts a stream's work: the reset (if any) and the catch-up, then the live events.
pub(super) fn open(start: Start, reset: Option<StreamItem>) -> Subscription {
    let (sender, items) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let closing = start.closing.clone();
        let work = async {
            if let Some(reset) = reset {
                if sender.send(reset).await.is_err() {
                    return;
                }
            }
            run(start, &sender).await;
        };
        tokio::select! {
            _ = closing.cancelled() => {}
            _ = work => {}
        }
    });
    Subscription { items }
}

async fn run(start: Start, sender: &mpsc::Sender<StreamItem>) {
    let Start {
        db,
        closing: _,
        account_id,
        mut after,
        filter,
        mut live,
    } = start;
    // The catch-up reads every event (the position moves over those the filter skips too).
    let all = Filter::default();
    loop {
        // Read the table until it has nothing more after the position.
        loop {
            let read = async {
                let mut conn = db.acquire().await?;
                store::after(&mut conn, account_id, after, &all, CATCH_UP_BATCH).await
            };
            let events = match read.await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!(error = %err, "event stream cannot read the log; retrying");
                    tokio::select! {
                        _ = sender.closed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let full = events.len() as i64 == CATCH_UP_BATCH;
            for event in events {
                after = event.id;
                if !send(sender, &filter, Arc::new(event)).await {
                    return;
                }
            }
            if !full {
                break;
            }
        }
        // Then follow the broadcast, which holds everything committed since it was joined.
        loop {
            let received = tokio::select! {
                _ = sender.closed() => return,
                received = live.recv() => received,
            };
            match received {
                Ok(event) if event.id <= after => continue,
                Ok(event) if event.id == after + 1 => {
                    after = event.id;
                    if !send(sender, &filter, event).await {
                        return;
                    }
                }
                // A gap, or the broadcast ran ahead of a slow reader: read the table again.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// Hands the event on if the filter takes it; `false` once the reader is gone.
async fn send(sender: &mpsc::Sender<StreamItem>, filter: &Filter, event: Arc<Event>) -> bool {
    let wanted = filter
        .types
        .as_ref()
        .is_none_or(|types| types.iter().any(|t| *t == event.kind))
        && filter.subject.is_none_or(|s| s == event.subject);
    !wanted || sender.send(StreamItem::Event(event)).await.is_ok()
}
