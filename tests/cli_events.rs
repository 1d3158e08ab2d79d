//! `warren events tail`, as the real binary against real servers: it prints events as they
//! happen and, when its server goes away and comes back, resumes with nothing lost or
//! repeated.
mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// `warren events tail --json` against `base`, with no configuration from the environment.
fn tail(base: &str, token: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["events", "tail", "--json", "--after", "0"])
        .args(["--server", base, "--token", token])
        .env_remove("WARREN_SERVER")
        .env_remove("WARREN_TOKEN")
        .env(
            "WARREN_CONFIG",
            scratch_dir("warren-tail").join("config.json"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The next event the command prints.
async fn next(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("an event within 15 s")
        .unwrap()
        .expect("the command is still running");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not an event: {line}"))
}

#[tokio::test]
async fn tail_prints_events_as_they_happen_and_resumes_after_its_server_restarts() {
    let url = fresh_database().await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let first = TestApp::on_database(&url, |c| c.listen = addr).await;
    let user = first.user().await;
    let (_child, mut lines) = tail(&first.base, &user.token);
    let ids = first.tunnel_ids(&user.token, 2).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = next(&mut lines).await;
        assert_eq!(event["type"], "tunnel.created.v1");
        seen.push(event["id"].as_i64().unwrap());
    }
    first.stop().await;
    // While no server runs, nothing; then a new one on the same address, and more events.
    let second = TestApp::on_database(&url, |c| c.listen = addr).await;
    second.heartbeat(&user.token, &ids[0]).await;
    second.heartbeat(&user.token, &ids[1]).await;
    for _ in 0..2 {
        let event = next(&mut lines).await;
        assert_eq!(event["type"], "tunnel.active.v1");
        seen.push(event["id"].as_i64().unwrap());
    }
    assert_eq!(seen, [1, 2, 3, 4], "nothing lost, nothing repeated");
    second.stop().await;
}
