//! `warren webhooks create|list|deliveries|redeliver|rotate-secret`, as the real binary
//! against a real server and a real receiver.
mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::*;
use serde_json::Value;
use tokio::process::Command;

/// Runs `warren webhooks …` against `app` with `token`; its stdout, asserting success.
async fn warren(app: &TestApp, token: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("webhooks")
        .args(args)
        .args(["--server", &app.base, "--token", token])
        .env_remove("WARREN_SERVER")
        .env_remove("WARREN_TOKEN")
        .env(
            "WARREN_CONFIG",
            scratch_dir("warren-webhooks").join("config.json"),
        )
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "warren webhooks {args:?}: {stdout}{stderr}"
    );
    stdout
}

async fn json(app: &TestApp, token: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = warren(app, token, &args).await;
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("not JSON: {out}"))
}

#[tokio::test]
async fn the_webhook_commands_create_list_show_deliveries_redeliver_and_rotate() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.poll_interval = Duration::from_millis(50);
    })
    .await;
    let user = app.user().await;
    let receiver = Receiver::start().await;
    let created = json(
        &app,
        &user.token,
        &["create", &receiver.url, "--type", "tunnel.created.v1"],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["types"], serde_json::json!(["tunnel.created.v1"]));

    let table = warren(&app, &user.token, &["list"]).await;
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains(&receiver.url) && table.contains("enabled"),
        "{table}"
    );
    assert!(
        !table.contains(&secret),
        "the secret is shown once: {table}"
    );

    app.tunnel_ids(&user.token, 1).await;
    receiver.wait_for(1, Duration::from_secs(15)).await;
    let log = eventually(
        Duration::from_secs(15),
        "the delivery logged as succeeded",
        || async {
            let log = json(&app, &user.token, &["deliveries", &id]).await;
            match log[0]["state"] == "succeeded" {
                true => Ok(log),
                false => Err(log),
            }
        },
    )
    .await;
    let delivery = log[0]["id"].as_str().unwrap().to_owned();
    let table = warren(&app, &user.token, &["deliveries", &id]).await;
    assert!(
        table.contains(&delivery)
            && table.contains("tunnel.created.v1")
            && table.contains("succeeded"),
        "{table}"
    );

    let again = json(&app, &user.token, &["redeliver", &id, &delivery]).await;
    assert_eq!(again["messageId"], log[0]["messageId"]);
    let got = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));

    let rotated = warren(&app, &user.token, &["rotate-secret", &id]).await;
    let new = rotated
        .lines()
        .next()
        .unwrap()
        .strip_prefix("secret   ")
        .unwrap();
    assert!(new.starts_with("whsec_") && new != secret, "{rotated}");
    assert!(
        rotated.contains("the previous secret stays valid until"),
        "{rotated}"
    );
}
