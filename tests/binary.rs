//! The real `warren` binary, as a user runs it.
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn warren(args: &[&str], data_dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("WARREN_JWT_SECRET")
        .env("WARREN_DATA_DIR", data_dir)
        .env("WARREN_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

async fn wait_healthy(base: &str, child: &mut Child) {
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(90), "warren to become ready", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("warren exited early: {status}");
        }
        let ready = try_send_checked(client.get(format!("{base}/readyz")));
        async {
            ready
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
                .then_some(())
        }
    })
    .await
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("warren did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn warren_serve_runs_on_the_embedded_postgresql_and_keeps_everything_across_restarts() {
    let data_dir = scratch_dir("warren-binary");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let mut child = warren(&["serve"], &data_dir, port).spawn().unwrap();
    wait_healthy(&base, &mut child).await;
    let reg = send_checked(
        client
            .post(format!("{base}/v1/auth/register"))
            .json(&json!({"email": "op@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(reg.status(), StatusCode::CREATED);
    let login = json_of(
        send_checked(
            client
                .post(format!("{base}/v1/auth/login"))
                .json(&json!({"email": "op@example.com", "password": PASSWORD})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let token = login["accessToken"].as_str().unwrap().to_owned();
    let tunnel = json_of(
        send_checked(
            client
                .post(format!("{base}/v1/tunnels"))
                .bearer_auth(&token)
                .json(&json!({"slug": "kept", "requestedPort": 3000})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(
        terminate(child).success(),
        "SIGTERM must end warren with exit code 0"
    );

    let secret = data_dir.join("jwt-secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the JWT secret must be private");
    assert!(
        !data_dir.join("postgres/pgdata/postmaster.pid").exists(),
        "the embedded PostgreSQL must be stopped on exit"
    );

    let mut child = warren(&["serve"], &data_dir, port).spawn().unwrap();
    wait_healthy(&base, &mut child).await;
    // The old access token is still valid: the secret was kept, not regenerated.
    let shown = json_of(
        send_checked(
            client
                .get(format!(
                    "{base}/v1/tunnels/{}",
                    tunnel["id"].as_str().unwrap()
                ))
                .bearer_auth(&token),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["slug"], "kept");
    assert!(terminate(child).success());
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn warren_says_what_to_install_when_postgresql_is_missing() {
    let data_dir = scratch_dir("warren-missing");
    let out = warren(&["serve"], &data_dir, free_port())
        .env("PG_BIN_DIR", "/nonexistent/postgresql/bin")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apt-get install postgresql") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn warren_migrate_applies_the_migrations_and_exits() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // Everything the migrations made goes, whatever later migrations add.
    for sql in ["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let data_dir = scratch_dir("warren-migrate");
    let status = warren(&["migrate"], &data_dir, 0)
        .env("DATABASE_URL", &url)
        .status()
        .unwrap();
    assert!(status.success());
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, warren::db::MIGRATOR.iter().count());
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn tokens_and_passwords_never_appear_in_the_logs_even_at_trace_level() {
    let url = fresh_database().await;
    let data_dir = scratch_dir("warren-logs");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = data_dir.join("warren.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = warren(&["serve"], &data_dir, port)
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "trace")
        .env("WARREN_LOG_FORMAT", "json")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_healthy(&base, &mut child).await;
    let client = reqwest::Client::new();
    let password = "a-very-secret-password-0451";
    send_checked(
        client
            .post(format!("{base}/v1/auth/register"))
            .json(&json!({"email": "quiet@example.com", "password": password})),
    )
    .await;
    send_checked(
        client
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"email": "quiet@example.com", "password": "wrong-but-secret-9921"})),
    )
    .await;
    let login = json_of(
        send_checked(
            client
                .post(format!("{base}/v1/auth/login"))
                .json(&json!({"email": "quiet@example.com", "password": password})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let jwt = login["accessToken"].as_str().unwrap().to_owned();
    let created = json_of(
        send_checked(
            client
                .post(format!("{base}/v1/tokens"))
                .bearer_auth(&jwt)
                .json(&json!({"name": "agent", "scopes": ["tunnels:read"]})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let api_token = created["token"].as_str().unwrap().to_owned();
    send_checked(
        client
            .get(format!("{base}/v1/tunnels"))
            .bearer_auth(&api_token),
    )
    .await;
    send_checked(
        client
            .get(format!("{base}/client/v4/accounts/x/cfd_tunnel"))
            .header("x-auth-email", "quiet@example.com")
            .header("x-auth-key", &api_token),
    )
    .await;
    send_checked(
        client
            .get(format!("{base}/v1/tunnels"))
            .bearer_auth("wrn_forged-secret-value-1234"),
    )
    .await;
    assert!(terminate(child).success());

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("/v1/auth/login"),
        "the requests were logged at all"
    );
    for secret in [
        password,
        "wrong-but-secret-9921",
        jwt.as_str(),
        api_token.as_str(),
        &api_token[4..],
        "forged-secret-value-1234",
    ] {
        assert!(
            !logs.contains(secret),
            "a secret leaked into the logs: {secret}"
        );
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}
