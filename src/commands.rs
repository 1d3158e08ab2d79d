//! What the subcommands do.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use crate::cli::{AgentArgs, DatabaseArgs, ServeArgs};
use crate::db::{self, embedded::EmbeddedPostgres};
use crate::server::Server;

const EMBEDDED_DATABASE: &str = "warren";

/// A connected, migrated database, and the embedded cluster behind it if we started one.
struct Database {
    pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    async fn open(args: &DatabaseArgs) -> anyhow::Result<Self> {
        let (url, embedded) = match &args.database_url {
            Some(url) if !url.is_empty() => (url.clone(), None),
            _ => {
                let dir = args.data_dir.join("postgres");
                tracing::info!(dir = %dir.display(), "DATABASE_URL is not set; starting the embedded PostgreSQL");
                let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir))
                    .await
                    .context("starting the embedded PostgreSQL")??;
                db::ensure_database(&pg.url("postgres"), EMBEDDED_DATABASE).await?;
                (pg.url(EMBEDDED_DATABASE), Some(pg))
            }
        };
        let pool = db::connect(&url, Duration::from_secs(30)).await?;
        db::migrate(&pool).await.context("applying migrations")?;
        Ok(Self { pool, embedded })
    }

    async fn close(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded {
            match tokio::task::spawn_blocking(move || pg.stop()).await {
                Ok(Ok(())) => tracing::info!("embedded PostgreSQL stopped"),
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "stopping the embedded PostgreSQL failed")
                }
                Err(err) => tracing::warn!(error = %err, "stopping the embedded PostgreSQL failed"),
            }
        }
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config();
    let database = Database::open(&args.database).await?;
    let server = match Server::start(config, database.pool.clone()).await {
        Ok(server) => server,
        Err(err) => {
            database.close().await;
            return Err(err);
        }
    };
    let token = server.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        token.cancel();
    });
    server.stop_when_cancelled().await;
    database.close().await;
    tracing::info!("warren stopped");
    Ok(())
}

pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<()> {
    let database = Database::open(&args).await?;
    tracing::info!("migrations applied");
    database.close().await;
    Ok(())
}

/// Runs the reference agent until its tunnel is stopped; SIGINT/SIGTERM stop it cleanly.
pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("signal received: stopping the tunnel");
        token.cancel();
    });
    crate::agent::run(args.config(), shutdown).await
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
