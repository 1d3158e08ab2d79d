//! The integration-test harness: a real PostgreSQL, a fresh database per test, and a real
//! Warren server on a loopback port, driven over HTTP.
//!
//! PostgreSQL comes from, in order (see [`postgres`]): `DATABASE_URL` (a server the tests may
//! create databases on); a throwaway cluster started from the PostgreSQL binaries on the
//! machine; a throwaway PostgreSQL container (testcontainers). A cluster or container started
//! here is removed when the test process exits. Each test gets its own database, copied from
//! a template that has the migrations applied.
#![allow(dead_code)]

pub mod browser;
pub mod clock;
pub mod dashboard;
pub mod env;
pub mod envelope;
pub mod fleet;
pub mod helm;
pub mod load;
pub mod openapi;
pub mod pgbouncer;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod replication;
pub mod sse;
pub mod transitions;
pub mod wait;

// Every test binary compiles all of `common`; not every one uses each helper.
#[allow(unused_imports)]
pub use envelope::{assert_envelope, envelope, envelope_error, envelope_of};
#[allow(unused_imports)]
pub use proxy::Proxy;
#[allow(unused_imports)]
pub use wait::eventually;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;
use warren::db::embedded::EmbeddedPostgres;
use warren::{Config, Server};

pub const PASSWORD: &str = "correct horse battery staple";
pub const JWT_SECRET: &str = "test-secret-that-is-at-least-32-characters-long";

struct PgServer {
    /// A URL with `{db}` where the database name goes.
    url_pattern: String,
    template: String,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();

fn server() -> &'static PgServer {
    SERVER.get_or_init(|| {
        let url_pattern = postgres::start(postgres::source());
        let template = format!("warren_template_{}_{}", unix_now(), Uuid::new_v4().simple());
        let admin = url_pattern.replace("{db}", "postgres");
        let template_url = url_pattern.replace("{db}", &template);
        let name = template.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    drop_stale_databases(&admin).await;
                    warren::db::ensure_database(&admin, &name).await.unwrap();
                    let pool = PgPool::connect(&template_url).await.unwrap();
                    warren::db::migrate(&pool).await.unwrap();
                    pool.close().await;
                })
        })
        .join()
        .expect("preparing the template database");
        PgServer {
            url_pattern,
            template,
        }
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Test databases are left behind on a `DATABASE_URL` server (a test may still be using its
/// database when another ends); the ones created more than an hour ago (their names carry
/// the time) are dropped when a test process starts. One still in use is left for next time.
async fn drop_stale_databases(admin: &str) {
    let Ok(mut conn) = sqlx::Connection::connect(admin).await else {
        return;
    };
    let conn: &mut sqlx::PgConnection = &mut conn;
    let names: Vec<String> = sqlx::query_scalar(
        r"SELECT datname::text FROM pg_database WHERE datname ~ '^warren_(test|template)_[0-9]+_'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let hour_ago = unix_now().saturating_sub(3600);
    for name in names {
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| t < hour_ago) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory under the system temp dir that an unprivileged PostgreSQL can reach.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A migrated cluster of the test's own, since the test stops and starts it; its URL.
pub async fn own_cluster(dir: &std::path::Path) -> (EmbeddedPostgres, String) {
    let pg = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || EmbeddedPostgres::start(&dir).unwrap()
    })
    .await
    .unwrap();
    warren::db::ensure_database(&pg.url("postgres"), "warren")
        .await
        .unwrap();
    let url = pg.url("warren");
    let pool = warren::db::connect(&url, Duration::from_secs(10))
        .await
        .unwrap();
    warren::db::migrate(&pool).await.unwrap();
    pool.close().await;
    (pg, url)
}

/// Kills the cluster (immediate shutdown: no checkpoint, like a crash) and hands it back.
pub async fn kill_cluster(pg: EmbeddedPostgres) -> EmbeddedPostgres {
    tokio::task::spawn_blocking(move || {
        pg.kill().unwrap();
        pg
    })
    .await
    .unwrap()
}

/// Starts a killed cluster again and hands it back.
pub async fn restart_cluster(pg: EmbeddedPostgres) -> EmbeddedPostgres {
    tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap()
}

/// The value of an unlabelled metric on the server's `/metrics`, if it is there.
pub async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// A new database with the migrations applied; its URL.
pub async fn fresh_database() -> String {
    let server = server();
    let name = format!("warren_test_{}_{}", unix_now(), Uuid::new_v4().simple());
    let admin = server.url_pattern.replace("{db}", "postgres");
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&admin).await.unwrap();
    let sql = format!("CREATE DATABASE {name} TEMPLATE {}", server.template);
    for attempt in 0.. {
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => break,
            // Two tests copying the template at once: one waits for the other.
            Err(err) if attempt < 50 && err.to_string().contains("is being accessed") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(err) => panic!("creating the test database: {err}"),
        }
    }
    server.url_pattern.replace("{db}", &name)
}

/// The configuration tests start with: loopback, a fixed secret, open registration.
pub fn test_config(database_url: &str) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: Some(database_url.to_owned()),
        data_dir: std::env::temp_dir(),
        jwt_secret: Some(JWT_SECRET.to_owned()),
        allow_registration: true,
        reaper_interval: Duration::from_millis(200),
        // Tests move leases into the past by hand, which no running Warren ever does: the
        // reaper must not trust the earliest lease it saw to skip its next pass.
        reaper_idle_max: Duration::ZERO,
        login_attempts_per_minute: 10_000,
        ..Config::with_defaults()
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub database_url: String,
    server: Option<Server>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let url = fresh_database().await;
        Self::on_database(&url, adjust).await
    }

    /// Another server on the same database (replicas).
    pub async fn on_database(url: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(url);
        adjust(&mut config);
        let pool = warren::db::connect(url, Duration::from_secs(10))
            .await
            .unwrap();
        let server = Server::start(config, pool.clone()).await.unwrap();
        let addr = server.addr;
        Self {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            db: pool,
            database_url: url.to_owned(),
            server: Some(server),
        }
    }

    /// A client of a server this process did not start (another process, a proxy), at
    /// `base` (`http://host:port`), whose database is `database_url`.
    pub fn remote(base: &str, database_url: &str) -> Self {
        Self {
            addr: base.trim_start_matches("http://").parse().unwrap(),
            base: base.to_owned(),
            client: reqwest::Client::new(),
            db: PgPool::connect_lazy(database_url).unwrap(),
            database_url: database_url.to_owned(),
            server: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with an optional bearer token and an optional JSON body. The answer is
    /// checked against the OpenAPI document (see [`openapi::check`]).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    /// Sends a request built by hand; the answer is checked against the OpenAPI document.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        send_checked(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        let body = json!({ "email": email, "password": password });
        self.call(Method::POST, "/v1/auth/register", None, Some(body))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let body = json!({ "email": email, "password": password });
        self.call(Method::POST, "/v1/auth/login", None, Some(body))
            .await
    }

    /// A registered user with a login token holding every scope.
    pub async fn user(&self) -> User {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let registered = json_of(self.register(&email, PASSWORD).await, StatusCode::CREATED).await;
        let login = json_of(self.login(&email, PASSWORD).await, StatusCode::OK).await;
        User {
            email,
            account_id: registered["accountId"].as_str().unwrap().to_owned(),
            token: login["accessToken"].as_str().unwrap().to_owned(),
        }
    }

    /// An API token of `user` with these scopes.
    pub async fn api_token(&self, user: &User, scopes: &[&str]) -> String {
        let body = json!({ "name": "test", "scopes": scopes });
        let created = json_of(
            self.post("/v1/tokens", &user.token, body).await,
            StatusCode::CREATED,
        )
        .await;
        created["token"].as_str().unwrap().to_owned()
    }

    /// Creates a tunnel and returns it.
    pub async fn tunnel(&self, token: &str, body: Value) -> Value {
        json_of(
            self.post("/v1/tunnels", token, body).await,
            StatusCode::CREATED,
        )
        .await
    }

    /// A registered user with one tunnel of theirs; the tunnel's id.
    pub async fn user_with_tunnel(&self) -> (User, String) {
        let user = self.user().await;
        let tunnel = self
            .tunnel(&user.token, json!({"requestedPort": 3000}))
            .await;
        let id = tunnel["id"].as_str().unwrap().to_owned();
        (user, id)
    }

    /// Creates `n` tunnels; their ids.
    pub async fn tunnel_ids(&self, token: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let t = self.tunnel(token, json!({"requestedPort": 8080})).await;
            ids.push(t["id"].as_str().unwrap().to_owned());
        }
        ids
    }

    /// Creates a webhook endpoint and returns it (with its secret).
    pub async fn webhook(&self, token: &str, body: Value) -> Value {
        json_of(
            self.post("/v1/webhooks", token, body).await,
            StatusCode::CREATED,
        )
        .await
    }

    pub async fn heartbeat(&self, token: &str, id: &str) -> reqwest::Response {
        self.call(
            Method::POST,
            &format!("/v1/tunnels/{id}/heartbeat"),
            Some(token),
            None,
        )
        .await
    }

    /// Opens the event stream (`query` is appended to the path, e.g. `?after=0`), resuming
    /// after `last_event_id` when given.
    pub async fn stream(
        &self,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> sse::SseReader {
        let mut req = self
            .client
            .get(self.url(&format!("/v1/events/stream{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        sse::SseReader::new(self.send(req).await)
    }

    /// The account's events after `after`, as the API lists them.
    pub async fn events(&self, token: &str, after: i64) -> Vec<Value> {
        let page = self
            .get(&format!("/v1/events?after={after}&limit=1000"), token)
            .await;
        let page = json_of(page, StatusCode::OK).await;
        page.as_array().unwrap().clone()
    }
}

pub struct User {
    pub email: String,
    pub account_id: String,
    pub token: String,
}

/// Sends a request of any client; the answer is checked against the OpenAPI document.
pub async fn send_checked(req: reqwest::RequestBuilder) -> reqwest::Response {
    try_send_checked(req)
        .await
        .expect("request reaches the server")
}

/// [`send_checked`] for requests that may meet a server going away: a network error is
/// returned, an answer is checked.
pub async fn try_send_checked(req: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let (client, request) = req.build_split();
    let request = request?;
    let method = request.method().clone();
    let path = request.url().path().to_owned();
    let response = client.execute(request).await?;
    openapi::checked(&method, &path, response).await
}

/// Asserts the status and returns the JSON body.
pub async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"))
}

/// The answer's `Content-Type`, "" if it has none.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Asserts that `body`, answered with `status` and `content_type`, is problem+json for that
/// status, with a code and a detail. `what` names the request in a failure.
pub fn assert_problem(what: &str, status: StatusCode, content_type: &str, body: &Value) {
    assert_eq!(content_type, "application/problem+json", "{what}: {body}");
    assert_eq!(body["status"], status.as_u16(), "{what}: {body}");
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: {body}"
    );
}

/// Asserts a problem+json answer with this status and code, and returns it.
pub async fn problem_of(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    let content_type = content_type(&response);
    let body = json_of(response, status).await;
    assert_problem("problem", status, &content_type, &body);
    assert_eq!(body["code"], code, "body: {body}");
    body
}
