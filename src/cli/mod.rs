//! The command line: `warren serve`, `warren migrate`, `warren agent`, and the user
//! commands (`login`, `tunnels`, `tokens`) that [`user`] runs against a server.

pub mod config_file;
pub mod events;
pub mod user;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::net::TrustedProxies;

#[derive(Parser, Debug)]
#[command(name = "warren", version, about = "A self-hosted tunnel registry")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API (with an embedded PostgreSQL when DATABASE_URL is not set).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Run the reference agent: create a tunnel and keep it alive until stopped.
    Agent(AgentArgs),
    /// Log in and keep a long-lived API token in the config file for the other commands.
    Login(LoginArgs),
    /// List and stop tunnels.
    Tunnels {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: TunnelsCommand,
    },
    /// Create API tokens (for agents, scripts).
    Tokens {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Follow the account's events.
    Events {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Manage webhook endpoints and their deliveries.
    Webhooks {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Print the OpenAPI document (what `openapi.yaml` and `GET /openapi.yaml` hold).
    Openapi,
}

/// Where the user commands find the server: flags, else environment, else the config file
/// that `warren login` wrote.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The Warren server, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "WARREN_SERVER", global = true)]
    pub server: Option<String>,
    /// An API or access token.
    #[arg(long, env = "WARREN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TunnelsCommand {
    /// The account's tunnels, newest first (live ones unless --include-inactive).
    List {
        /// Also show stopped and failed tunnels.
        #[arg(long)]
        include_inactive: bool,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask a tunnel's agent to stop (the tunnel turns `stopping`).
    Stop {
        /// The tunnel's id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Create an API token; it is printed once.
    Create {
        /// A name to recognise the token by.
        name: String,
        /// Scopes, repeated or comma-separated (e.g. `tunnels:write,tunnels:heartbeat,dex:write`).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime in seconds (no expiry when absent).
        #[arg(long)]
        expires_in_secs: Option<i64>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Print every new event as it happens, one line each, resuming after a disconnect
    /// until interrupted.
    Tail {
        /// Only these types, comma-separated (e.g. `tunnel.failed.v1,connector.disconnected.v1`).
        #[arg(long)]
        types: Option<String>,
        /// Only events about this tunnel, device or token.
        #[arg(long)]
        subject: Option<String>,
        /// Start after this event id (default: only events from now on).
        #[arg(long)]
        after: Option<i64>,
        /// Print each event's JSON, one per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Create an endpoint; its signing secret is printed once.
    Create {
        /// Where to POST the events (http or https).
        url: String,
        /// Only these event types, repeated or comma-separated (default: every type).
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// The account's endpoints.
    List {
        #[arg(long)]
        json: bool,
    },
    /// An endpoint's deliveries, newest first, with their attempts.
    Deliveries {
        /// The endpoint's id.
        id: String,
        /// How many (1-100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Deliver one delivery's event again (same `webhook-id`).
    Redeliver {
        /// The endpoint's id.
        id: String,
        /// The delivery's id (from `warren webhooks deliveries`).
        delivery_id: String,
        #[arg(long)]
        json: bool,
    },
    /// A new signing secret, printed once; the old one stays valid for 24 hours.
    RotateSecret {
        /// The endpoint's id.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// The Warren server, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "WARREN_SERVER")]
    pub server: String,
    #[arg(long)]
    pub email: String,
    /// The password; else `WARREN_PASSWORD`, else it is asked for on the terminal.
    #[arg(long, env = "WARREN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The Warren server, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "WARREN_SERVER")]
    pub server: String,
    /// An API token with tunnels:write, tunnels:heartbeat and dex:write.
    #[arg(long, env = "WARREN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The local port the tunnel serves.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The tunnel's slug (generated by the server when absent).
    #[arg(long)]
    pub slug: Option<String>,
    /// The colo code in the device's fleet-status reports.
    #[arg(long, default_value = "LOCAL")]
    pub colo: String,
    /// Where the agent keeps its device id when /etc/machine-id is missing.
    #[arg(long, env = "WARREN_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl AgentArgs {
    pub fn config(&self) -> crate::agent::AgentConfig {
        let mut config = crate::agent::AgentConfig::new(&self.server, &self.token, self.port);
        config.slug = self.slug.clone().filter(|s| !s.is_empty());
        config.colo = self.colo.clone();
        if let Some(dir) = &self.state_dir {
            config.state_dir = dir.clone();
        }
        config
    }
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL connection string; unset starts the embedded PostgreSQL under the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Embedded PostgreSQL data and generated secrets.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "./warren-data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Listen address.
    #[arg(long, env = "WARREN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// HS256 signing key for access tokens (generated once and kept in the data dir if unset).
    #[arg(long, env = "WARREN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Previous signing keys, comma-separated, still accepted after a rotation.
    #[arg(
        long,
        env = "WARREN_JWT_PREVIOUS_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub jwt_previous_secrets: Vec<String>,
    /// Login attempts allowed per client address, and per email, in a minute.
    #[arg(long, env = "WARREN_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_attempts_per_minute: u32,
    /// Stopped and failed tunnels are deleted this many days after they stopped.
    #[arg(long, env = "WARREN_HISTORY_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub history_retention_days: u32,
    /// A tunnel's hostname is `{slug}.{base domain}`.
    #[arg(long, env = "WARREN_BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,
    /// Lease length in seconds.
    #[arg(long, env = "WARREN_LEASE_TTL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub lease_ttl_secs: u64,
    /// Open sign-up (the very first user may always register).
    #[arg(long, env = "WARREN_ALLOW_REGISTRATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_registration: bool,
    /// How long, in seconds, a connection no longer reported stays listed as pending reconnect.
    #[arg(long, env = "WARREN_RECONNECT_GRACE_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86400))]
    pub reconnect_grace_secs: u64,
    /// Comma-separated IPs/CIDRs of proxies whose `X-Forwarded-For` is believed.
    #[arg(long, env = "WARREN_TRUSTED_PROXIES", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
    /// How many heartbeat batches may be committing at once (group commit; fewer in flight
    /// means larger batches).
    #[arg(long, env = "WARREN_HEARTBEAT_FLUSHES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub heartbeat_flushes: u16,
    /// Events are deleted this many days after they happened.
    #[arg(long, env = "WARREN_EVENT_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub event_retention_days: u32,
    /// How many hours a dashboard sign-in lasts.
    #[arg(long, env = "WARREN_SESSION_TTL_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub session_ttl_hours: u32,
    /// Always mark the dashboard's session cookie `Secure` (it is anyway behind a trusted
    /// proxy that sends `X-Forwarded-Proto: https`).
    #[arg(long, env = "WARREN_SECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub secure_cookies: bool,
    /// Deliver webhooks to loopback, private, link-local and metadata addresses too.
    #[arg(long, env = "WARREN_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// How many hours a webhook endpoint may fail before its delivery is given up and the
    /// endpoint disabled.
    #[arg(long, env = "WARREN_WEBHOOK_RETRY_HOURS", default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub webhook_retry_hours: u32,
    /// The first webhook retry's wait in milliseconds (each next one doubles); for tests.
    #[arg(long, env = "WARREN_WEBHOOK_BACKOFF_BASE_MS", default_value_t = 5000, hide = true, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub webhook_backoff_base_ms: u64,
    /// Log format: `text` or `json`.
    #[arg(long, env = "WARREN_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl ServeArgs {
    pub fn config(&self) -> Config {
        let defaults = Config::with_defaults();
        let base_domain = self
            .base_domain
            .trim()
            .trim_matches('.')
            .to_ascii_lowercase();
        Config {
            listen: self.listen,
            database_url: self.database.database_url.clone().filter(|u| !u.is_empty()),
            data_dir: self.database.data_dir.clone(),
            jwt_secret: self.jwt_secret.clone().filter(|s| !s.is_empty()),
            jwt_previous_secrets: self
                .jwt_previous_secrets
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            login_attempts_per_minute: self.login_attempts_per_minute,
            history_retention: Duration::from_secs(u64::from(self.history_retention_days) * 86_400),
            base_domain,
            lease_ttl: Duration::from_secs(self.lease_ttl_secs),
            allow_registration: self.allow_registration,
            reconnect_grace: Duration::from_secs(self.reconnect_grace_secs),
            trusted_proxies: self.trusted_proxies.clone(),
            heartbeat_flushes_in_flight: usize::from(self.heartbeat_flushes),
            event_retention: Duration::from_secs(u64::from(self.event_retention_days) * 86_400),
            session_ttl: Duration::from_secs(u64::from(self.session_ttl_hours) * 3600),
            secure_cookies: self.secure_cookies,
            webhooks: crate::webhooks::Settings {
                allow_private: self.webhook_allow_private,
                retry_window: Duration::from_secs(u64::from(self.webhook_retry_hours) * 3600),
                backoff_base: Duration::from_millis(self.webhook_backoff_base_ms),
                ..defaults.webhooks.clone()
            },
            ..defaults
        }
    }
}
