//! What can be checked of the deployment files without a Docker engine: docker-compose.yml
//! parses, every variable it sets for Warren is one Warren reads, its ports match Warren's
//! default listen port, its health checks (and the Dockerfile's) ask real routes that answer
//! 200, and .env.example names only variables that Warren or the compose file read.

mod common;

use std::collections::BTreeSet;

use common::env::{read, serve_command, warren_reads};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml parses")
}

/// `${NAME:-default}` → `default`, `${NAME}` → empty: the value with nothing set.
fn with_defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, default)| default));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The names a text interpolates as `${NAME…}`.
fn interpolated(text: &str) -> BTreeSet<String> {
    text.match_indices("${")
        .map(|(i, _)| {
            let name = &text[i + 2..];
            let end = name
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(name.len());
            name[..end].to_owned()
        })
        .collect()
}

fn warren_environment() -> Vec<(String, String)> {
    match &compose()["services"]["warren"]["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let (k, v) = item.as_str().unwrap().split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        other => panic!("services.warren.environment is not a map or list: {other}"),
    }
}

#[test]
fn the_variables_warren_reads_come_from_clap_and_from_the_code() {
    let reads = warren_reads();
    for name in [
        "DATABASE_URL",
        "WARREN_LISTEN",
        "WARREN_LOG_FORMAT",
        "RUST_LOG",
        "PG_BIN_DIR",
    ] {
        assert!(reads.contains(name), "{name} missing from {reads:?}");
    }
}

#[test]
fn every_variable_compose_sets_for_warren_is_one_warren_reads() {
    let reads = warren_reads();
    let env = warren_environment();
    assert!(env.len() >= 5, "services.warren.environment: {env:?}");
    for (name, _) in &env {
        assert!(
            reads.contains(name),
            "docker-compose.yml sets {name} for warren, which Warren does not read; it reads {reads:?}"
        );
    }
    // The Dockerfile's ENV too.
    for line in read("Dockerfile").lines() {
        let line = line
            .trim()
            .trim_start_matches("ENV ")
            .trim_end_matches('\\')
            .trim();
        if let Some((name, _)) = line.split_once('=') {
            if name.starts_with("WARREN_") {
                assert!(reads.contains(name), "the Dockerfile sets {name}");
            }
        }
    }
}

#[test]
fn compose_publishes_and_listens_on_warrens_default_port() {
    let default_port = warren::Config::with_defaults().listen.port();
    let clap_default = serve_command()
        .get_arguments()
        .find(|a| a.get_id() == "listen")
        .and_then(|a| a.get_default_values().first().cloned())
        .unwrap();
    let clap_port: std::net::SocketAddr = clap_default.to_str().unwrap().parse().unwrap();
    assert_eq!(clap_port.port(), default_port);

    let env = warren_environment();
    let listen = &env.iter().find(|(k, _)| k == "WARREN_LISTEN").unwrap().1;
    let listen: std::net::SocketAddr = with_defaults(listen).parse().unwrap();
    assert_eq!(listen.port(), default_port, "WARREN_LISTEN in compose");
    assert!(
        listen.ip().is_unspecified(),
        "Warren in a container must listen beyond loopback"
    );

    let ports = compose()["services"]["warren"]["ports"].clone();
    let ports = ports.as_array().expect("services.warren.ports");
    assert!(!ports.is_empty());
    for port in ports {
        let text = with_defaults(port.as_str().expect("short port syntax"));
        let mut parts: Vec<&str> = text.rsplitn(3, ':').collect();
        parts.reverse();
        let container: u16 = parts.last().unwrap().parse().unwrap();
        let published: u16 = parts[parts.len() - 2].parse().unwrap();
        assert_eq!(container, default_port, "container port in {port}");
        assert_eq!(
            published, default_port,
            "published port (default) in {port}"
        );
    }
    let exposed = read("Dockerfile")
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .map(|p| p.trim().parse::<u16>().unwrap());
    assert_eq!(exposed, Some(default_port), "the Dockerfile's EXPOSE");
}

/// The `http://host:port/path` URLs in a health check command.
fn urls(text: &str) -> Vec<(u16, String)> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .filter_map(|word| word.strip_prefix("http://"))
        .map(|rest| {
            let (authority, path) = rest.split_once('/').unwrap();
            let port = authority
                .rsplit_once(':')
                .map_or(80, |(_, p)| p.parse().unwrap());
            (port, format!("/{path}"))
        })
        .collect()
}

#[tokio::test]
async fn the_health_checks_ask_real_public_routes_that_answer_200() {
    let default_port = warren::Config::with_defaults().listen.port();
    let compose = compose();
    let test = &compose["services"]["warren"]["healthcheck"]["test"];
    let mut checks = urls(&test.to_string());
    let dockerfile = read("Dockerfile");
    let docker_checks = urls(dockerfile.lines().find(|l| l.contains("CMD curl")).unwrap());
    assert!(
        !checks.is_empty() && !docker_checks.is_empty(),
        "no health check URL"
    );
    checks.extend(docker_checks);
    let app = TestApp::spawn().await;
    for (port, path) in checks {
        assert_eq!(port, default_port, "health check port of {path}");
        let response = app.send(app.client.get(app.url(&path))).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // PostgreSQL's own check names the database and user Warren connects with.
    let pg = compose["services"]["postgres"]["healthcheck"]["test"].to_string();
    let url = warren_environment()
        .into_iter()
        .find(|(k, _)| k == "DATABASE_URL")
        .unwrap()
        .1;
    assert!(
        pg.contains("-U warren") && url.contains("//warren:"),
        "{pg} / {url}"
    );
    app.stop().await;
}

#[test]
fn env_example_names_only_variables_warren_or_compose_read() {
    let reads = warren_reads();
    let interpolated_by_compose = interpolated(&read("docker-compose.yml"));
    let passed_to_warren: BTreeSet<String> = warren_environment()
        .iter()
        .flat_map(|(_, value)| interpolated(value))
        .collect();
    let mut named = 0;
    for line in read(".env.example").lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, _) = line.split_once('=').expect("NAME=value lines");
        named += 1;
        // A .env file only feeds the compose file's `${…}`: a name it never uses does nothing.
        assert!(
            interpolated_by_compose.contains(name),
            ".env.example names {name}, which docker-compose.yml never uses"
        );
        // A Warren setting must reach Warren; any other name configures compose itself
        // (the PostgreSQL password inside DATABASE_URL, the published port) and must not
        // pose as a Warren variable.
        if reads.contains(name) {
            assert!(
                passed_to_warren.contains(name),
                ".env.example names {name}, but compose does not pass it to warren"
            );
        } else {
            assert!(
                !warren_environment().iter().any(|(k, _)| k == name),
                "{name} is set for warren, which does not read it"
            );
        }
    }
    assert!(named >= 5, ".env.example names only {named} variables");
}
