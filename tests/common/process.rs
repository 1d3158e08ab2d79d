//! Warren as a real process (the built binary), for what only a process shows: `kill -9`,
//! SIGTERM, what it needs of the filesystem.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use super::{eventually, JWT_SECRET};

/// `warren serve` on `database_url`, listening on loopback `port`, with the tests' signing
/// key, open registration, and `env` on top (which may override any of these).
pub fn serve(database_url: &str, port: u16, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warren"));
    command
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("WARREN_LISTEN", format!("127.0.0.1:{port}"))
        .env("WARREN_DATA_DIR", std::env::temp_dir())
        .env("WARREN_JWT_SECRET", JWT_SECRET)
        .env("WARREN_ALLOW_REGISTRATION", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

/// Waits until the server at `base` answers `/readyz` with 200; panics if `child` exits.
pub async fn ready(base: &str, child: &mut Child) {
    eventually(Duration::from_secs(30), &format!("{base} ready"), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("warren at {base} exited: {status}");
        }
        let readyz = format!("{base}/readyz");
        async move {
            let status = reqwest::get(readyz).await.map(|r| r.status());
            (status.ok() == Some(StatusCode::OK)).then_some(())
        }
    })
    .await
}

/// SIGTERM, and the process's exit: drained and ended by itself with status 0.
pub fn terminate(mut child: Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "warren exited with {status} on SIGTERM");
}

/// SIGKILL: no drain, no flush.
pub fn kill_9(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}
