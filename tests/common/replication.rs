//! Two local PostgreSQL clusters in streaming replication, as CloudNativePG runs a primary and
//! its replica: the standby is a `pg_basebackup -R` of the primary, replicating synchronously
//! (a commit is acknowledged once the standby has it), and a failover stops the primary at
//! once and promotes the standby.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use warren::db::embedded::{self, EmbeddedPostgres};

use super::{eventually, own_cluster, scratch_dir};

pub struct ClusterPair {
    /// `None` once failed over.
    pub primary: Option<EmbeddedPostgres>,
    pub standby: EmbeddedPostgres,
    dirs: [PathBuf; 2],
}

impl ClusterPair {
    /// A migrated primary (database `warren`) and a standby streaming from it synchronously.
    pub async fn start(name: &str) -> Self {
        let primary_dir = scratch_dir(&format!("{name}-primary"));
        let (primary, _) = own_cluster(&primary_dir).await;
        let standby_dir = scratch_dir(&format!("{name}-standby"));
        let password = std::fs::read_to_string(primary_dir.join("superuser-password")).unwrap();
        base_backup(primary.port(), password.trim(), &standby_dir.join("pgdata"));
        // The same superuser password: the standby's catalog is the primary's.
        embedded::write_secret(&standby_dir.join("superuser-password"), password.trim()).unwrap();
        let standby = tokio::task::spawn_blocking({
            let dir = standby_dir.clone();
            move || EmbeddedPostgres::start(&dir).unwrap()
        })
        .await
        .unwrap();

        // Synchronous from now on (set after the backup, so the standby does not inherit it:
        // promoted, it must not wait for a standby of its own).
        let db = PgPool::connect(&primary.url("warren")).await.unwrap();
        for sql in [
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
            "SELECT pg_reload_conf()",
        ] {
            sqlx::query(sql).execute(&db).await.unwrap();
        }
        eventually(
            Duration::from_secs(30),
            "the standby to replicate synchronously",
            || async {
                let state: Option<String> = sqlx::query_scalar(
                    "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'",
                )
                .fetch_optional(&db)
                .await
                .unwrap();
                (state.as_deref() == Some("sync"))
                    .then_some(())
                    .ok_or(format!("{state:?}"))
            },
        )
        .await;
        db.close().await;
        Self {
            primary: Some(primary),
            standby,
            dirs: [primary_dir, standby_dir],
        }
    }

    /// Kills the primary (an immediate shutdown, as a crash) and promotes the standby; the
    /// time the promotion took once the primary was gone.
    pub async fn fail_over(&mut self) -> Duration {
        let primary = self.primary.take().expect("a primary to fail");
        super::kill_cluster(primary).await;
        let started = Instant::now();
        let mut conn = PgConnection::connect(&self.standby.url("warren"))
            .await
            .unwrap();
        let promoted: bool = sqlx::query_scalar("SELECT pg_promote(true, 60)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(promoted, "the standby was not promoted");
        conn.close().await.unwrap();
        started.elapsed()
    }

    /// Stops both clusters and removes their directories.
    pub async fn remove(self) {
        tokio::task::spawn_blocking(move || {
            if let Some(primary) = self.primary {
                let _ = primary.kill();
            }
            let _ = self.standby.kill();
            for dir in &self.dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        })
        .await
        .unwrap();
    }
}

/// `pg_basebackup -R` of the server on `port` into `pgdata`, run as the user PostgreSQL runs
/// as (the files must be its own).
fn base_backup(port: u16, password: &str, pgdata: &Path) {
    let bin = embedded::find_bin_dir().expect("the PostgreSQL binaries");
    std::fs::create_dir_all(pgdata).unwrap();
    let mut command = Command::new(bin.join("pg_basebackup"));
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "warren"])
        .arg("-D")
        .arg(pgdata)
        .args(["-R", "-X", "stream", "-c", "fast"])
        .env("PGPASSWORD", password)
        .stdin(Stdio::null());
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("a postgres user");
        std::os::unix::fs::chown(pgdata, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
        use std::os::unix::process::CommandExt;
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = command.output().expect("running pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
