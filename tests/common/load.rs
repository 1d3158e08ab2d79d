//! Agents heartbeating under whatever the test does to the servers and the database, and
//! what they were told: the newest renewal acknowledged (200) per tunnel, and every answer's
//! status with its time. An acknowledged renewal must be found stored afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::try_send_checked;

#[derive(Default)]
struct Seen {
    /// Tunnel id → the newest `lease.lastHeartbeatAt` answered with 200.
    acked: HashMap<String, DateTime<Utc>>,
    /// (when, status) of every answer; status 0 for a network error.
    answers: Vec<(Instant, u16)>,
    /// The answers other than 200 and 503, with their bodies.
    unexpected: Vec<String>,
}

pub struct Heartbeats {
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Heartbeats {
    /// `workers` agents heartbeating `ids` in turn through the server (or balancer) at
    /// `base`, pausing `pause` between requests, until [`Heartbeats::stop`].
    pub fn start(base: &str, token: &str, ids: &[String], workers: usize, pause: Duration) -> Self {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let stop = CancellationToken::new();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let workers = (0..workers)
            .map(|w| {
                let (client, seen, stop) = (client.clone(), seen.clone(), stop.clone());
                let (base, token, ids) = (base.to_owned(), token.to_owned(), ids.to_vec());
                tokio::spawn(async move {
                    let mut n = w;
                    while !stop.is_cancelled() {
                        let id = &ids[n % ids.len()];
                        n += workers;
                        let sent = client
                            .post(format!("{base}/v1/tunnels/{id}/heartbeat"))
                            .bearer_auth(&token);
                        let status = match try_send_checked(sent).await {
                            Ok(r) if r.status() == StatusCode::OK => {
                                let body: Value = r.json().await.unwrap();
                                let at = super::clock::at(&body["lease"]["lastHeartbeatAt"]);
                                let mut seen = seen.lock().unwrap();
                                let newest = seen.acked.entry(id.clone()).or_insert(at);
                                *newest = (*newest).max(at);
                                200
                            }
                            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => 503,
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let body = r.text().await.unwrap_or_default();
                                let mut seen = seen.lock().unwrap();
                                seen.unexpected.push(format!("{status} {body}"));
                                status
                            }
                            Err(_) => 0,
                        };
                        seen.lock().unwrap().answers.push((Instant::now(), status));
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                })
            })
            .collect();
        Self {
            seen,
            stop,
            workers,
        }
    }

    /// The newest acknowledged renewal of each tunnel so far.
    pub fn acked(&self) -> HashMap<String, DateTime<Utc>> {
        self.seen.lock().unwrap().acked.clone()
    }

    /// Waits until each of `ids` has been acknowledged a renewal newer than any it had when
    /// called (the first, for one never acknowledged); panics naming `what` after 10 s.
    pub async fn renewed(&self, ids: &[String], what: &str) {
        let before = self.acked();
        super::eventually(Duration::from_secs(10), what, || async {
            let now = self.acked();
            let behind = ids
                .iter()
                .filter(|id| now.get(*id) <= before.get(*id))
                .count();
            (behind == 0)
                .then_some(())
                .ok_or(format!("{behind} not renewed"))
        })
        .await
    }

    /// When the first 200 after `since` was answered.
    pub fn first_ok_after(&self, since: Instant) -> Option<Instant> {
        let seen = self.seen.lock().unwrap();
        seen.answers
            .iter()
            .filter(|(at, status)| *at > since && *status == 200)
            .map(|(at, _)| *at)
            .min()
    }

    /// How many answers had each status (0: a network error).
    pub fn statuses(&self) -> HashMap<u16, usize> {
        let mut counts = HashMap::new();
        for (_, status) in &self.seen.lock().unwrap().answers {
            *counts.entry(*status).or_default() += 1;
        }
        counts
    }

    /// The answers other than 200 and 503 (a network error is not an answer), with their bodies.
    pub fn unexpected(&self) -> Vec<String> {
        self.seen.lock().unwrap().unexpected.clone()
    }

    /// Stops the agents; the newest acknowledged renewal of each tunnel.
    pub async fn stop(self) -> HashMap<String, DateTime<Utc>> {
        let Self {
            seen,
            stop,
            workers,
        } = self;
        stop.cancel();
        for worker in workers {
            worker.await.unwrap();
        }
        let acked = seen.lock().unwrap().acked.clone();
        acked
    }
}

/// Asserts that every acknowledged renewal is stored: each tunnel's `last_heartbeat_at` in
/// `db` is at least the newest one it was acknowledged.
pub async fn assert_stored(db: &PgPool, acked: &HashMap<String, DateTime<Utc>>) {
    assert!(!acked.is_empty(), "nothing was acknowledged");
    let ids: Vec<Uuid> = acked.keys().map(|id| id.parse().unwrap()).collect();
    let stored: HashMap<Uuid, Option<DateTime<Utc>>> =
        sqlx::query_as("SELECT id, last_heartbeat_at FROM tunnels WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for (id, at) in acked {
        let stored = stored.get(&id.parse::<Uuid>().unwrap()).copied().flatten();
        assert!(
            stored.is_some_and(|s| s >= *at),
            "tunnel {id}: acknowledged {at}, stored {stored:?}: an acknowledged heartbeat was lost"
        );
    }
}
