//! The agent's calls to Warren, retried with exponential backoff and jitter while the server
//! is unreachable, times out, or answers 5xx/429; 401/403 end the agent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::remote::{describe, Answer, Remote};

/// Why a call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cancelled")]
    Cancelled,
    #[error("the server refused the agent's token: {0}")]
    Unauthorized(String),
}

pub struct Client {
    remote: Remote,
    first_backoff: Duration,
    max_backoff: Duration,
    /// Whether the last call got an answer: the agent logs only when this changes.
    reachable: AtomicBool,
}

impl Client {
    pub fn new(remote: Remote, max_backoff: Duration) -> Self {
        Self {
            remote,
            first_backoff: Duration::from_millis(500),
            max_backoff,
            reachable: AtomicBool::new(true),
        }
    }

    /// Sends until an answer that is not 5xx/429 comes, or `cancel` fires. Any other
    /// status is the caller's to judge, except 401/403.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        cancel: &CancellationToken,
    ) -> Result<Answer, CallError> {
        let mut backoff = self.first_backoff;
        loop {
            let sent = tokio::select! {
                _ = cancel.cancelled() => return Err(CallError::Cancelled),
                sent = self.remote.send(method.clone(), path, body, headers) => sent,
            };
            let trouble = match sent {
                Ok(answer) if retryable(answer.status) => {
                    format!("{} answered {}", path, answer.status)
                }
                Ok(answer) => {
                    self.mark_reachable();
                    if matches!(
                        answer.status,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    ) {
                        return Err(CallError::Unauthorized(answer.detail()));
                    }
                    return Ok(answer);
                }
                Err(err) => describe(&err),
            };
            if self.reachable.swap(false, Ordering::Relaxed) {
                tracing::warn!(server = self.remote.base(), error = %trouble, "server unreachable; retrying with backoff");
            } else {
                tracing::debug!(error = %trouble, ?backoff, "retrying");
            }
            let pause = jitter(backoff);
            tokio::select! {
                _ = cancel.cancelled() => return Err(CallError::Cancelled),
                _ = tokio::time::sleep(pause) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    fn mark_reachable(&self) {
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::info!(server = self.remote.base(), "server reachable again");
        }
    }
}

/// Worth another try later: the server is overloaded or broken, not refusing.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// `d` scaled by a random factor in [0.5, 1.0], so that agents cut off together do not all
/// come back at the same instant.
pub fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// A server answering `statuses` in turn (the last one from then on); its URL and how
    /// many requests it got.
    async fn scripted(statuses: Vec<u16>) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let status = statuses[n.min(statuses.len() - 1)];
            async move { StatusCode::from_u16(status).unwrap() }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits)
    }

    fn client(url: &str) -> Client {
        let mut client = Client::new(
            Remote::new(url, Some("t")).unwrap(),
            Duration::from_millis(40),
        );
        client.first_backoff = Duration::from_millis(10);
        client
    }

    #[tokio::test]
    async fn server_errors_and_overload_are_retried_until_an_answer() {
        let (url, hits) = scripted(vec![503, 500, 429, 409]).await;
        let answer = client(&url)
            .call(Method::POST, "/x", None, &[], &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::CONFLICT);
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_refused_token_is_not_retried() {
        let (url, hits) = scripted(vec![403]).await;
        let err = client(&url)
            .call(Method::GET, "/x", None, &[], &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Unauthorized(_)));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn cancelling_ends_the_retries() {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop.cancel();
        });
        // Nothing listens on port 9 of loopback: connection refused, again and again.
        let err = client("http://127.0.0.1:9")
            .call(Method::GET, "/x", None, &[], &cancel)
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Cancelled));
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_secs(2));
        }
    }

    #[test]
    fn only_overload_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::BAD_GATEWAY));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::CONFLICT));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }
}
