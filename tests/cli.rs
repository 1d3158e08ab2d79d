//! The user commands and `warren agent`, as the real binary against a real server.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The binary with no server, token or password from the test's environment, and its
/// config file in a fresh directory.
fn warren(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    cmd.args(args)
        .env_remove("WARREN_SERVER")
        .env_remove("WARREN_TOKEN")
        .env_remove("WARREN_PASSWORD")
        .env("WARREN_CONFIG", config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

fn config_path() -> PathBuf {
    scratch_dir("warren-cli").join("nested").join("config.json")
}

async fn run(cmd: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("the command ends")
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `--server URL --token TOKEN`.
fn server_flags<'a>(app: &'a TestApp, token: &'a str) -> [&'a str; 4] {
    ["--server", app.base.as_str(), "--token", token]
}

/// Runs and asserts success; stdout.
async fn ok(cmd: &mut Command) -> String {
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs and asserts failure; stderr.
async fn fails(cmd: &mut Command) -> String {
    let out = run(cmd).await;
    assert!(!out.status.success(), "stdout: {}", stdout(&out));
    stderr(&out)
}

#[tokio::test]
async fn login_keeps_a_private_api_token_that_the_other_commands_use() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    app.tunnel(
        &user.token,
        json!({"slug": "cli-listed", "requestedPort": 8000}),
    )
    .await;
    let config = config_path();
    let login = [
        "login",
        "--server",
        &app.base,
        "--email",
        &user.email,
        "--password",
        PASSWORD,
    ];
    let said = ok(&mut warren(&config, &login)).await;
    assert!(said.contains("Logged in"), "{said}");

    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(stored["server"], app.base);
    assert!(
        stored["token"].as_str().unwrap().starts_with("wrn_"),
        "{stored}"
    );

    let table = ok(&mut warren(&config, &["tunnels", "list"])).await;
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ID") && header.contains("SLUG") && header.contains("STATUS"));
    let row = lines.next().unwrap();
    assert!(row.contains("cli-listed") && row.contains("creating") && row.contains("8000"));

    let listed = ok(&mut warren(&config, &["tunnels", "list", "--json"])).await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["slug"], "cli-listed");
}

#[tokio::test]
async fn login_reads_the_password_from_stdin() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let config = config_path();
    let mut child = warren(
        &config,
        &["login", "--server", &app.base, "--email", &user.email],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(config.exists());
}

#[tokio::test]
async fn tunnels_stop_asks_the_agent_and_inactive_ones_are_listed_on_request() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let kept = app
        .tunnel(
            &user.token,
            json!({"slug": "cli-kept", "requestedPort": 3000}),
        )
        .await;
    let gone = app
        .tunnel(
            &user.token,
            json!({"slug": "cli-gone", "requestedPort": 3001}),
        )
        .await;
    let gone_id = gone["id"].as_str().unwrap();
    let config = config_path();
    let flags = server_flags(&app, &user.token);

    let mut stop = warren(&config, &["tunnels", "stop", gone_id]);
    let said = ok(stop.args(flags)).await;
    assert!(
        said.contains(gone_id) && said.contains("stopping"),
        "{said}"
    );
    // The agent confirms.
    let path = format!("/v1/tunnels/{gone_id}");
    let confirmed = app
        .patch(&path, &user.token, json!({"status": "stopped"}))
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);

    let live = ok(warren(&config, &["tunnels", "list", "--json"]).args(flags)).await;
    let live: Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live.as_array().unwrap().len(), 1);
    assert_eq!(live[0]["id"], kept["id"]);

    let all = ok(warren(&config, &["tunnels", "list", "--include-inactive"]).args(flags)).await;
    assert_eq!(all.lines().count(), 3, "{all}");
    assert!(all.contains("cli-gone") && all.contains("stopped"), "{all}");
}

#[tokio::test]
async fn tokens_create_prints_a_working_token_once() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let config = config_path();
    let scopes = "tunnels:write,tunnels:heartbeat";
    let mut create = warren(
        &config,
        &["tokens", "create", "laptop agent", "--scope", scopes],
    );
    create
        .env("WARREN_SERVER", &app.base)
        .env("WARREN_TOKEN", &user.token);
    let said = ok(&mut create).await;
    let token = said
        .lines()
        .find_map(|l| l.strip_prefix("token"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no token line: {said}"));
    assert!(token.starts_with("wrn_"), "{said}");
    assert!(said.contains("tunnels:write, tunnels:heartbeat") && said.contains("never"));
    app.tunnel(token, json!({"requestedPort": 3000})).await;

    let mut create = warren(
        &config,
        &["tokens", "create", "ci", "--scope", "dex:read", "--json"],
    );
    create.args(server_flags(&app, &user.token));
    let created: Value = serde_json::from_str(&ok(&mut create).await).unwrap();
    assert_eq!(created["scopes"], json!(["dex:read"]));
    assert!(created["token"].as_str().unwrap().starts_with("wrn_"));
}

#[tokio::test]
async fn errors_print_the_servers_detail_not_a_debug_dump() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let config = config_path();
    let flags = server_flags(&app, &user.token);
    let missing = uuid::Uuid::new_v4().to_string();
    let expected = problem_of(
        app.patch(
            &format!("/v1/tunnels/{missing}"),
            &user.token,
            json!({"status": "stopping"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let said = fails(warren(&config, &["tunnels", "stop", &missing]).args(flags)).await;
    assert!(
        said.contains(expected["detail"].as_str().unwrap()),
        "{said}"
    );
    assert!(!said.contains('{') && !said.contains("Error"), "{said}");

    let mut bad_scope = warren(&config, &["tokens", "create", "x", "--scope", "nope"]);
    let said = fails(bad_scope.args(flags)).await;
    assert!(said.contains("unknown scope `nope`"), "{said}");

    let mut bad_password = warren(
        &config,
        &["login", "--server", &app.base, "--email", &user.email],
    );
    let said = fails(bad_password.env("WARREN_PASSWORD", "not the password at all")).await;
    assert!(
        said.starts_with("warren: ") && !said.contains('{'),
        "{said}"
    );
    assert!(!config.exists());

    let said = fails(&mut warren(&config, &["tunnels", "list"])).await;
    assert!(said.contains("warren login"), "{said}");
}

#[tokio::test]
async fn the_agent_binary_ends_its_tunnel_stopped_on_sigterm() {
    let app = TestApp::spawn_with(|c| c.lease_ttl = Duration::from_secs(3)).await;
    let user = app.user().await;
    let token = app
        .api_token(&user, &["tunnels:write", "tunnels:heartbeat", "dex:write"])
        .await;
    let config = config_path();
    let mut agent = warren(&config, &["agent", "--port", "4000", "--slug", "cli-agent"]);
    agent
        .env("WARREN_SERVER", &app.base)
        .env("WARREN_TOKEN", &token)
        .env("WARREN_AGENT_STATE_DIR", config.parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = agent.spawn().unwrap();
    let id = eventually(Duration::from_secs(15), "an active tunnel", || async {
        let listed = json_of(app.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["status"] == "active")
            .map(|t| t["id"].as_str().unwrap().to_owned())
    })
    .await;
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("the agent exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = json_of(
        app.get(&format!("/v1/tunnels/{id}"), &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["status"], "stopped");
    // One line per state change, not one per heartbeat.
    let logs = stdout(&out) + &stderr(&out);
    assert!(
        logs.contains("tunnel created") && logs.contains("\"stopped\""),
        "{logs}"
    );
    assert!(logs.lines().count() < 30, "{logs}");
}
