//! `warren webhooks create|list|deliveries|redeliver|rotate-secret`: webhook endpoints and
//! their delivery logs, against a server. Tables by default, the server's JSON with `--json`.

use reqwest::Method;
use serde_json::{json, Value};

use super::user::{connect, table, text};
use super::{ServerArgs, WebhooksCommand};

pub async fn webhooks(args: ServerArgs, command: WebhooksCommand) -> anyhow::Result<()> {
    let remote = connect(&args)?;
    let (answer, json, shape): (Value, bool, fn(&Value) -> String) = match command {
        WebhooksCommand::Create {
            url,
            types,
            description,
            json,
        } => {
            let mut body = json!({ "url": url, "types": types });
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            let created = remote
                .request(Method::POST, "/v1/webhooks", Some(&body))
                .await?
                .ok()?;
            (created, json, with_secret)
        }
        WebhooksCommand::List { json } => {
            let list = remote.request(Method::GET, "/v1/webhooks", None).await?;
            (list.ok()?, json, endpoint_table)
        }
        WebhooksCommand::Deliveries { id, limit, json } => {
            let path = format!("/v1/webhooks/{id}/deliveries?limit={limit}");
            let page = remote.request(Method::GET, &path, None).await?;
            (page.ok()?, json, delivery_table)
        }
        WebhooksCommand::Redeliver {
            id,
            delivery_id,
            json,
        } => {
            let path = format!("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver");
            let queued = remote.request(Method::POST, &path, None).await?;
            (queued.ok()?, json, |d| {
                format!(
                    "delivery {} queued ({} {})\n",
                    text(&d["id"]),
                    text(&d["eventType"]),
                    text(&d["messageId"])
                )
            })
        }
        WebhooksCommand::RotateSecret { id, json } => {
            let path = format!("/v1/webhooks/{id}/rotate-secret");
            let rotated = remote.request(Method::POST, &path, None).await?;
            (rotated.ok()?, json, with_secret)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", shape(&answer));
    }
    Ok(())
}

/// An endpoint whose secret is shown this once.
fn with_secret(e: &Value) -> String {
    eprintln!("The secret is shown only this once: store it now.");
    let mut out = format!("secret   {}\n", text(&e["secret"]));
    out.push_str(&format!(
        "id       {}\nurl      {}\n",
        text(&e["id"]),
        text(&e["url"])
    ));
    if let Some(until) = e["previousSecretExpiresAt"].as_str() {
        out.push_str(&format!("the previous secret stays valid until {until}\n"));
    }
    out
}

fn types(e: &Value) -> String {
    match e["types"].as_array() {
        Some(types) => types.iter().map(text).collect::<Vec<_>>().join(","),
        None => "all".to_owned(),
    }
}

fn endpoint_table(list: &Value) -> String {
    let endpoints = list.as_array().cloned().unwrap_or_default();
    if endpoints.is_empty() {
        return "no webhook endpoints\n".to_owned();
    }
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            let state = match e["enabled"].as_bool() {
                Some(true) => "enabled".to_owned(),
                _ => format!("disabled: {}", text(&e["disabledReason"])),
            };
            vec![text(&e["id"]), text(&e["url"]), types(e), state]
        })
        .collect();
    table(&["ID", "URL", "TYPES", "STATE"], &rows)
}

fn delivery_table(list: &Value) -> String {
    let deliveries = list.as_array().cloned().unwrap_or_default();
    if deliveries.is_empty() {
        return "no deliveries\n".to_owned();
    }
    let rows: Vec<Vec<String>> = deliveries
        .iter()
        .map(|d| {
            let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
            let last = attempts.last().cloned().unwrap_or(Value::Null);
            vec![
                text(&d["id"]),
                text(&d["eventId"]),
                text(&d["eventType"]),
                text(&d["state"]),
                attempts.len().to_string(),
                text(&last["statusCode"]),
                text(&last["error"]),
            ]
        })
        .collect();
    let header = [
        "ID",
        "EVENT",
        "TYPE",
        "STATE",
        "ATTEMPTS",
        "LAST STATUS",
        "LAST ERROR",
    ];
    table(&header, &rows)
}
