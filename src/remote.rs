//! A Warren server as its clients (`warren agent`, the user CLI) see it: authenticated JSON
//! requests, and the server's RFC 9457 problem answers turned into readable errors.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One server, one bearer token.
#[derive(Clone, Debug)]
pub struct Remote {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A server's answer, whatever its status.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON body; `Null` when there was none or it was not JSON.
    pub body: Value,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `code` (`slug_taken`, `lease_expired`, …), if the body is a problem.
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    /// What to tell a person: the problem's `detail`, else its `title`, else the status.
    pub fn detail(&self) -> String {
        ["detail", "title"]
            .iter()
            .find_map(|k| self.body.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {}", self.status))
    }

    /// An error saying why the server refused the request.
    pub fn error(&self) -> anyhow::Error {
        anyhow::anyhow!("{} (HTTP {})", self.detail(), self.status.as_u16())
    }

    /// The body if the request succeeded, else the server's detail as the error.
    pub fn ok(self) -> anyhow::Result<Value> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(self.error())
        }
    }
}

impl Remote {
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let base = base.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("the server URL must start with http:// or https://, got `{base}`");
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("warren/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base,
            token: token.map(str::to_owned),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends one request; `Err` only when no answer came (connection refused, timeout, …).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, reqwest::Error> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = req.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// [`Remote::send`] for one-shot commands: no answer is an error naming the server.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.send(method, path, body, &[])
            .await
            .map_err(|err| anyhow::anyhow!("cannot reach {}: {}", self.base, describe(&err)))
    }
}

/// A transport error without reqwest's debug wrapping.
pub fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "the request timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            text = format!("{text}: {inner}");
            source = inner.source();
        }
        text
    }
}
