//! The command line: `warren serve`, `warren migrate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

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
    /// A tunnel's hostname is `{slug}.{base domain}`.
    #[arg(long, env = "WARREN_BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,
    /// Lease length in seconds.
    #[arg(long, env = "WARREN_LEASE_TTL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub lease_ttl_secs: u64,
    /// Open sign-up (the very first user may always register).
    #[arg(long, env = "WARREN_ALLOW_REGISTRATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_registration: bool,
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
            base_domain,
            lease_ttl: Duration::from_secs(self.lease_ttl_secs),
            allow_registration: self.allow_registration,
            ..defaults
        }
    }
}
