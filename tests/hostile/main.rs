//! Hostile input (issue 7.5): oversized headers, deeply nested JSON, huge arrays, invalid
//! UTF-8, path traversal in ids, SQL metacharacters in every string field and query
//! parameter. Each gets a clean 4xx — problem+json natively, the envelope under `/client/v4`,
//! naming the field where there is one — or, where the value is valid text, is stored and read
//! back verbatim; never a 5xx, and the server stays healthy.
//!
//! What tests/tunnels.rs, tests/fleet.rs and tests/connectors.rs already check (malformed
//! JSON, wrong content types, a 1 MiB body, bounds of each field) is not repeated here.
//! Requests that reqwest would normalise or refuse to send (dot segments, raw bytes in the
//! path, oversized headers) go over a plain TCP connection.

#[path = "../common/mod.rs"]
mod common;
mod shapes;
mod strings;

use std::time::Duration;

use common::fleet::{ingest, snapshot};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// SQL metacharacters and the one character PostgreSQL text cannot hold.
const HOSTILE: [&str; 7] = [
    "'; drop table tunnels; --",
    "' OR '1'='1",
    "%",
    "_",
    "\\",
    "\"",
    "\u{0}",
];

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An answer, whatever carried it.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = content_type(&response);
        let body = response.text().await.unwrap();
        Self {
            status,
            content_type,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts a clean 4xx for a request to `path` and returns its body.
    fn refused(&self, path: &str, what: &str) -> Value {
        let (status, body) = (self.status, self.json());
        assert!(
            (400..500).contains(&status),
            "{what}: {status} {}",
            self.body
        );
        let status = StatusCode::from_u16(status).unwrap();
        if path.starts_with("/client/v4") {
            assert_envelope(what, status, &self.content_type, &body);
        } else {
            assert_problem(what, status, &self.content_type, &body);
        }
        body
    }

    /// Asserts a clean 4xx with this status, naming this field ("" for none).
    fn refused_naming(&self, path: &str, what: &str, status: u16, field: &str) {
        self.refused(path, what);
        assert_eq!(
            (self.status, self.field()),
            (status, field.to_owned()),
            "{what}"
        );
    }

    /// The field a refusal names: `field` natively, the error's `source.pointer` otherwise.
    fn field(&self) -> String {
        let body = self.json();
        match body["field"].as_str() {
            Some(field) => field.to_owned(),
            None => body["errors"][0]["source"]["pointer"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_owned(),
        }
    }
}

/// One request over a plain TCP connection, sent byte for byte.
async fn raw(app: &TestApp, method: &str, target: &[u8], headers: &[(&str, Vec<u8>)]) -> Answer {
    raw_with_body(app, method, target, headers, b"").await
}

async fn raw_with_body(
    app: &TestApp,
    method: &str,
    target: &[u8],
    headers: &[(&str, Vec<u8>)],
    body: &[u8],
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!("{method} ").into_bytes();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: ").as_bytes());
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let mut out = Vec::new();
        // The server may close as soon as it has answered; keep what arrived.
        let _ = stream.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("the server answers");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// Header names and raw values.
type Headers = Vec<(&'static str, Vec<u8>)>;

fn bearer(user: &User) -> (&'static str, Vec<u8>) {
    (
        "authorization",
        format!("Bearer {}", user.token).into_bytes(),
    )
}

/// The server still answers, reads its tables and serves a normal request.
async fn still_healthy(app: &TestApp, user: &User) {
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    json_of(app.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_name IN ('tunnels', 'api_tokens', 'users', 'device_snapshots')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(tables, 4, "a table is gone");
}

/// A user's objects to aim at: a live tunnel with a connector, a device.
struct Targets {
    user: User,
    tunnel: String,
    connector: String,
    connection: String,
    device: String,
}

impl Targets {
    /// A heartbeat body reporting the connector with its one connection.
    fn report(&self) -> Value {
        json!({"connector": {"id": self.connector, "arch": "linux_amd64", "version": "2026.1.0",
            "configVersion": 0, "features": ["ha-origin"], "runAt": "2026-03-05T10:30:00.000Z",
            "connections": [{"id": self.connection, "coloName": "FRA", "openedAt": "2026-03-05T10:30:01Z"}]}})
    }
}

async fn targets(app: &TestApp) -> Targets {
    let user = app.user().await;
    let tunnel = app.tunnel(&user.token, json!({"requestedPort": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = Uuid::new_v4().to_string();
    ingest(app, &user.token, snapshot(&device, 0)).await;
    let t = Targets {
        user,
        tunnel,
        connector: Uuid::new_v4().to_string(),
        connection: Uuid::new_v4().to_string(),
        device,
    };
    let path = format!("/v1/tunnels/{}/heartbeat", t.tunnel);
    let beat = app
        .call(Method::POST, &path, Some(&t.user.token), Some(t.report()))
        .await;
    json_of(beat, StatusCode::OK).await;
    t
}

/// Every route with a JSON body, as (method, path). The Cloudflare-compatible routes take no
/// body (their cleanup is a DELETE).
fn body_routes(t: &Targets) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/v1/auth/register".into()),
        (Method::POST, "/v1/auth/login".into()),
        (Method::POST, "/v1/tokens".into()),
        (Method::POST, "/v1/tunnels".into()),
        (Method::PATCH, format!("/v1/tunnels/{}", t.tunnel)),
        (Method::POST, format!("/v1/tunnels/{}/heartbeat", t.tunnel)),
        (Method::POST, "/v1/fleet-status/devices".into()),
    ]
}

async fn send_bytes(
    app: &TestApp,
    t: &Targets,
    method: &Method,
    path: &str,
    body: Vec<u8>,
) -> Answer {
    let response = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(&t.user.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    Answer::of(response).await
}
