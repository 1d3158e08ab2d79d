//! A private PostgreSQL cluster run from the server binaries installed on the machine.
//!
//! `warren serve` without `DATABASE_URL` and the test harness both use it. The cluster lives
//! in a directory of its own, keeps its data across restarts, listens on loopback only with a
//! generated password, and is stopped by [`EmbeddedPostgres::stop`]. PostgreSQL refuses to run
//! as root, so when Warren runs as root the cluster runs as the `postgres` user (or `nobody`).

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context};
use rand::distributions::{Alphanumeric, DistString};

const SUPERUSER: &str = "warren";

/// The install hint printed when no server binaries are found.
pub const MISSING_BINARIES: &str =
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: \
install PostgreSQL (e.g. `apt-get install postgresql`) or set DATABASE_URL to an existing server";

#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    pgdata: PathBuf,
    port: u16,
    password: String,
    run_as: Option<(u32, u32)>,
}

impl EmbeddedPostgres {
    /// Starts (initialising on first use) the cluster in `dir`. If a cluster left running by a
    /// process that died is found there, it is adopted instead of started again.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir().context(MISSING_BINARIES)?;
        let run_as = unprivileged_user()?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let pgdata = dir.join("pgdata");
        let password_file = dir.join("superuser-password");

        let password = if pgdata.join("PG_VERSION").exists() {
            fs::read_to_string(&password_file)
                .with_context(|| format!("reading {}", password_file.display()))?
                .trim()
                .to_owned()
        } else {
            let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
            init_cluster(&bin_dir, &pgdata, &password, run_as)?;
            write_secret(&password_file, &password)?;
            password
        };

        let mut this = Self {
            bin_dir,
            pgdata,
            port: 0,
            password,
            run_as,
        };
        if let Some(port) = this.running_port() {
            tracing::info!(
                port,
                "adopting the embedded PostgreSQL that is already running"
            );
            this.port = port;
            return Ok(this);
        }
        this.port = free_port()?;
        this.pg_ctl_start()?;
        Ok(this)
    }

    /// A connection string for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the cluster: `fast` rolls back open transactions and checkpoints, so nothing
    /// committed is lost.
    pub fn stop(&self) -> anyhow::Result<()> {
        let out = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60"])
            .output()?;
        check(&out, "pg_ctl stop")
    }

    /// Stops the cluster at once, as a crash would (tests use it to simulate outages).
    pub fn kill(&self) -> anyhow::Result<()> {
        let out = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "immediate", "-w"])
            .output()?;
        check(&out, "pg_ctl stop")
    }

    /// Starts a stopped cluster again on the same port.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200",
            self.port
        );
        let out = self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.pgdata.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options])
            .output()?;
        check(&out, "pg_ctl start")
            .with_context(|| format!("see {}", self.pgdata.join("server.log").display()))
    }

    /// The port of a postmaster already running on this data directory, if any.
    fn running_port(&self) -> Option<u16> {
        let status = self
            .command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&self.pgdata)
            .output()
            .ok()?;
        if !status.status.success() {
            return None;
        }
        // postmaster.pid: pid, data dir, start time, port, ...
        let pid_file = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.stdin(Stdio::null()).env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            // std drops the supplementary groups when root switches to another uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }
}

fn init_cluster(
    bin_dir: &Path,
    pgdata: &Path,
    password: &str,
    run_as: Option<(u32, u32)>,
) -> anyhow::Result<()> {
    let parent = pgdata.parent().context("data directory has no parent")?;
    // initdb wants an empty directory it owns; a half-made one from a failed attempt goes.
    if pgdata.exists() {
        fs::remove_dir_all(pgdata)?;
    }
    fs::create_dir_all(pgdata)?;
    fs::set_permissions(pgdata, fs::Permissions::from_mode(0o700))?;
    let pwfile = parent.join(".initdb-pw");
    write_secret(&pwfile, password)?;
    if let Some((uid, gid)) = run_as {
        chown(pgdata, uid, gid)?;
        chown(&pwfile, uid, gid)?;
        ensure_traversable(parent)?;
    }
    let mut cmd = Command::new(bin_dir.join("initdb"));
    cmd.arg("-D")
        .arg(pgdata)
        .args([
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdin(Stdio::null())
        .env("LC_ALL", "C");
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().context("running initdb")?;
    let _ = fs::remove_file(&pwfile);
    check(&out, "initdb")?;
    Ok(())
}

/// Where `initdb`, `pg_ctl` and `postgres` are: `PG_BIN_DIR`, then `pg_config --bindir`,
/// then the newest `/usr/lib/postgresql/*/bin`, then `PATH`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    // When given, PG_BIN_DIR is the only place looked at.
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").map(PathBuf::from) {
        return has_all(&dir).then_some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_all(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| has_all(dir))
}

/// The uid/gid to run PostgreSQL as when we are root; `None` when we are not.
fn unprivileged_user() -> anyhow::Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(user) = nix::unistd::User::from_name(name)? {
            return Ok(Some((user.uid.as_raw(), user.gid.as_raw())));
        }
    }
    bail!(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as"
    )
}

/// The unprivileged user must be able to reach the cluster through every directory above it:
/// a directory that others cannot search (say a `mktemp -d`) gets search permission only
/// (`o+x`: others can pass through, not list it).
fn ensure_traversable(dir: &Path) -> anyhow::Result<()> {
    for ancestor in dir.ancestors() {
        let mode = fs::metadata(ancestor)?.permissions().mode();
        if mode & 0o001 == 0 {
            tracing::warn!(dir = %ancestor.display(), "allowing others to pass through this directory (o+x) so PostgreSQL can reach its data");
            fs::set_permissions(ancestor, fs::Permissions::from_mode(mode | 0o001))
                .with_context(|| format!("chmod o+x {}", ancestor.display()))?;
        }
    }
    Ok(())
}

fn chown(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))
}

/// Writes a secret readable by its owner only.
pub fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )
}
