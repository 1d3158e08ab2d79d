//! Runtime configuration, independent of how it was given (flags, environment, tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::net::TrustedProxies;

#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PostgreSQL connection string; `None` starts the embedded cluster under `data_dir`.
    pub database_url: Option<String>,
    /// Where the embedded cluster and the generated secrets live.
    pub data_dir: PathBuf,
    /// HS256 key for access tokens; `None` generates one once and keeps it in `data_dir`.
    pub jwt_secret: Option<String>,
    /// Keys that signed access tokens before a rotation, still accepted.
    pub jwt_previous_secrets: Vec<String>,
    /// A tunnel's hostname is `{slug}.{base_domain}`.
    pub base_domain: String,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// Whether anyone may register (the first user always may).
    pub allow_registration: bool,
    /// Lifetime of the access tokens that login returns.
    pub access_token_ttl: Duration,
    /// How often the reaper looks for expired leases.
    pub reaper_interval: Duration,
    /// The longest the reaper goes without a pass over the live leases when the last pass
    /// showed that none ends sooner (at most a quarter of the TTL; zero: a pass every tick).
    pub reaper_idle_max: Duration,
    /// How many leases the reaper expires in one statement.
    pub reaper_batch: i64,
    /// Stopped and failed tunnels are deleted this long after they stopped.
    pub history_retention: Duration,
    /// How long a connection that stopped being reported stays listed as pending reconnect.
    pub reconnect_grace: Duration,
    /// Proxies whose `X-Forwarded-For` is believed for a connector's `originIp`.
    pub trusted_proxies: TrustedProxies,
    /// How often connectors and connections past their grace are deleted.
    pub connector_sweep_interval: Duration,
    /// How often fleet retention deletes snapshots older than 7 days.
    pub fleet_retention_interval: Duration,
    /// How many rows fleet retention deletes in one statement.
    pub fleet_retention_batch: i64,
    /// Login attempts allowed per client address, and per email, in a minute.
    pub login_attempts_per_minute: u32,
    /// The most heartbeats renewed by one statement.
    pub heartbeat_batch_max: usize,
    /// How many heartbeat batches may be committing at once.
    pub heartbeat_flushes_in_flight: usize,
    /// Events are deleted this long after they happened.
    pub event_retention: Duration,
    /// How often event retention runs.
    pub event_retention_interval: Duration,
    /// How often an idle event stream sends a keep-alive comment.
    pub event_keep_alive: Duration,
    /// How often an open event stream checks that its token or session still holds: a
    /// revoked token, an expired access token or a signed-out session ends the stream.
    pub event_auth_recheck: Duration,
    /// How long a dashboard session lasts from sign-in.
    pub session_ttl: Duration,
    /// How often expired dashboard sessions are deleted.
    pub session_sweep_interval: Duration,
    /// Always mark the dashboard's session cookie `Secure` (it is anyway when a trusted proxy
    /// says `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// How webhooks are delivered.
    pub webhooks: crate::webhooks::Settings,
}

impl Config {
    /// Settings with the documented defaults, as `warren serve` has them with nothing set.
    pub fn with_defaults() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from("./warren-data"),
            jwt_secret: None,
            jwt_previous_secrets: Vec::new(),
            base_domain: "localhost".to_owned(),
            lease_ttl: Duration::from_secs(60),
            allow_registration: false,
            access_token_ttl: Duration::from_secs(15 * 60),
            reaper_interval: Duration::from_millis(500),
            reaper_idle_max: Duration::from_secs(10),
            reaper_batch: 2000,
            history_retention: Duration::from_secs(30 * 86_400),
            reconnect_grace: Duration::from_secs(300),
            trusted_proxies: TrustedProxies::default(),
            connector_sweep_interval: Duration::from_secs(30),
            fleet_retention_interval: Duration::from_secs(60),
            fleet_retention_batch: 5000,
            login_attempts_per_minute: 10,
            heartbeat_batch_max: 500,
            heartbeat_flushes_in_flight: 1,
            event_retention: Duration::from_secs(7 * 86_400),
            event_retention_interval: Duration::from_secs(60),
            event_keep_alive: Duration::from_secs(15),
            event_auth_recheck: Duration::from_secs(5),
            session_ttl: Duration::from_secs(12 * 3600),
            session_sweep_interval: Duration::from_secs(600),
            secure_cookies: false,
            webhooks: crate::webhooks::Settings::default(),
        }
    }
}
