//! `warren events tail`: follows the account's event stream, one line an event, and resumes
//! where it left off (`Last-Event-ID`) whenever the connection drops, until interrupted.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::user::connect;
use super::{EventsCommand, ServerArgs};
use crate::remote::{describe, Remote};
use crate::sse::{Frame, Frames};

/// A dead connection shows as silence: the server sends a keep-alive every 15 s.
const SILENCE: Duration = Duration::from_secs(45);

pub async fn events(args: ServerArgs, command: EventsCommand) -> anyhow::Result<()> {
    let remote = connect(&args)?;
    match command {
        EventsCommand::Tail {
            types,
            subject,
            after,
            json,
        } => {
            let mut query = Vec::new();
            if let Some(types) = types {
                // The API takes the names exactly, comma-joined; a person may type spaces.
                let names: Vec<&str> = types
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect();
                query.push(format!("types={}", names.join(",")));
            }
            if let Some(subject) = subject {
                query.push(format!("subject={subject}"));
            }
            let path = match query.is_empty() {
                true => "/v1/events/stream".to_owned(),
                false => format!("/v1/events/stream?{}", query.join("&")),
            };
            let stop = tokio::signal::ctrl_c();
            tokio::select! {
                result = tail(&remote, &path, after, json) => result,
                _ = stop => Ok(()),
            }
        }
    }
}

/// Follows the stream for good: after a dropped connection (or a server restart) it waits a
/// little, longer each time, and resumes after the last event it printed.
async fn tail(remote: &Remote, path: &str, after: Option<i64>, json: bool) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(SILENCE)
        .user_agent(concat!("warren/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut last = after.map(|a| a.to_string());
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut req = http.get(format!("{}{path}", remote.base()));
        if let Some(token) = remote.token() {
            req = req.bearer_auth(token);
        }
        if let Some(id) = &last {
            req = req.header("last-event-id", id);
        }
        match req.send().await {
            Ok(response) if response.status().is_success() => {
                backoff = Duration::from_millis(500);
                if let Err(err) = read(response, &mut last, json).await {
                    eprintln!("warren: the stream dropped ({}); resuming", describe(&err));
                }
            }
            Ok(response) if response.status().is_client_error() => {
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let detail = body["detail"].as_str().unwrap_or("refused").to_owned();
                anyhow::bail!("{detail} (HTTP {})", status.as_u16());
            }
            Ok(response) => eprintln!(
                "warren: the server answered {}; retrying",
                response.status()
            ),
            Err(err) => eprintln!(
                "warren: cannot reach {}: {}; retrying",
                remote.base(),
                describe(&err)
            ),
        }
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Prints the stream's events until it ends; `last` follows the last event id seen.
async fn read(
    mut response: reqwest::Response,
    last: &mut Option<String>,
    json: bool,
) -> Result<(), reqwest::Error> {
    let mut frames = Frames::default();
    while let Some(bytes) = response.chunk().await? {
        frames.push(&bytes);
        while let Some(frame) = frames.next_frame() {
            if frame.event.is_none() {
                continue;
            }
            if let Some(id) = &frame.id {
                *last = Some(id.clone());
            }
            print_frame(&frame, json);
        }
    }
    Ok(())
}

fn print_frame(frame: &Frame, json: bool) {
    if frame.event.as_deref() == Some("reset") {
        eprintln!(
            "warren: events were deleted by retention before they were read; going on after {}",
            frame.id.as_deref().unwrap_or("?")
        );
        return;
    }
    if json {
        println!("{}", frame.data);
        return;
    }
    let event: Value = serde_json::from_str(&frame.data).unwrap_or(Value::Null);
    println!("{}", line(&event));
}

/// `#42 2026-03-05T10:33:15.000Z tunnel.failed.v1 my-app failed: lease expired`.
fn line(event: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let data = &event["data"];
    let what = match (data["slug"].as_str(), data["status"].as_str()) {
        (Some(slug), Some(status)) => match data["lastError"].as_str() {
            Some(error) => format!("{slug} {status}: {error}"),
            None => format!("{slug} {status}"),
        },
        _ => data["name"]
            .as_str()
            .or(data["deviceId"].as_str())
            .or(data["id"].as_str())
            .unwrap_or("")
            .to_owned(),
    };
    format!(
        "#{} {} {} {}",
        event["id"],
        text(&event["occurredAt"]),
        text(&event["type"]),
        what
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_is_one_readable_line() {
        let event = json!({"id": 42, "occurredAt": "2026-03-05T10:33:15.000Z",
            "type": "tunnel.failed.v1",
            "data": {"slug": "my-app", "status": "failed", "lastError": "lease expired"}});
        assert_eq!(
            line(&event),
            "#42 2026-03-05T10:33:15.000Z tunnel.failed.v1 my-app failed: lease expired"
        );
        let token = json!({"id": 1, "occurredAt": "t", "type": "token.created.v1",
            "data": {"name": "ci"}});
        assert_eq!(line(&token), "#1 t token.created.v1 ci");
    }
}
