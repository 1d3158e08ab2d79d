//! PgBouncer (Debian's `pgbouncer`) in front of a cluster, in session or transaction mode.
//! It refuses to run as root: when the tests are root it runs as `postgres`, like the cluster.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port, scratch_dir};

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl PgBouncer {
    /// PgBouncer on a free loopback port for every database of the server on `upstream`,
    /// user `warren` with `password`, in `pool_mode` (`session` or `transaction`), with
    /// `pool_size` server connections per database.
    pub async fn start(upstream: u16, password: &str, pool_mode: &str, pool_size: u32) -> Self {
        let dir = scratch_dir("warren-pgbouncer");
        let port = free_port();
        let ini = format!(
            "[databases]\n\
             * = host=127.0.0.1 port={upstream}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = {pool_mode}\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 500\n\
             ; sqlx sends extra_float_digits at startup, which PgBouncer does not track.\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n",
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        warren::db::embedded::write_secret(
            &dir.join("userlist.txt"),
            &format!("\"warren\" \"{password}\"\n"),
        )
        .unwrap();
        let bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("pgbouncer is not installed: apt-get install pgbouncer");
        let mut command = Command::new(bin);
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("a postgres user");
            let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
            for path in [
                dir.clone(),
                dir.join("pgbouncer.ini"),
                dir.join("userlist.txt"),
            ] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().unwrap();
        let mut bouncer = Self { port, child, dir };
        let addr = format!("127.0.0.1:{port}");
        eventually(Duration::from_secs(10), "pgbouncer listening", || {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!("pgbouncer exited ({status}): {}", bouncer.log());
            }
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) }
        })
        .await;
        bouncer
    }

    /// What PgBouncer logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
