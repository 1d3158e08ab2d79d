//! A real webhook receiver: an HTTP server on a loopback port that records every request and
//! answers as told (a status, or no answer at all), in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use serde_json::Value;

use super::wait::eventually;

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Status(u16),
    /// Never answers (until the connection goes away).
    Hang,
    /// Answers 200 after this long.
    Slow(Duration),
}

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inner {
    got: Vec<Received>,
    plan: VecDeque<Reply>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// A receiver answering 200 unless told otherwise (see [`Receiver::then`]).
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(receive).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/hook"),
            inner,
        }
    }

    /// The next requests get these answers, in order; after them, 200.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().plan.extend(replies);
    }

    pub fn got(&self) -> Vec<Received> {
        self.inner.lock().unwrap().got.clone()
    }

    /// Waits until `n` requests came; they all.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        eventually(limit, &format!("{n} webhook requests"), || async {
            let got = self.got();
            if got.len() >= n {
                Ok(got)
            } else {
                Err(format!("{} requests", got.len()))
            }
        })
        .await
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let reply = {
        let mut inner = inner.lock().unwrap();
        inner.got.push(Received {
            headers,
            body,
            at: Instant::now(),
        });
        inner.plan.pop_front().unwrap_or(Reply::Status(200))
    };
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::OK
        }
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK
        }
    }
}
