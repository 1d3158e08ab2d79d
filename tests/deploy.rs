//! The Kubernetes deployment (`deploy/`) checked against the code without a cluster or Helm:
//! the chart's templates are rendered here (see `common::helm`) with its `values.yaml`, and
//! the manifests must fit Warren: every variable set is one `warren serve` reads and accepts,
//! the ports and probes meet the routes, the grace period outlasts the drain, the pods run as
//! the image's unprivileged user on a read-only root filesystem (which Warren must then not
//! need to write), the selectors meet the pods, and the CloudNativePG cluster has room for
//! the replicas' connections. Where `kubernetes-validate` is installed (CI installs it), the
//! rendered objects are also checked against the Kubernetes API schemas.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::env::{read, read_by_the_code, serve_command, ROOT};
use common::helm::{render, Object};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn chart_dir() -> PathBuf {
    Path::new(ROOT).join("deploy/helm/warren")
}

/// The chart as `helm template demo deploy/helm/warren --set …` would render it.
fn rendered(overrides: Value) -> Vec<Object> {
    render(&chart_dir(), "demo", &overrides).unwrap_or_else(|err| panic!("rendering: {err}"))
}

/// The values that turn on every optional part: the chart's own Secret, the ServiceMonitor.
fn everything_on() -> Value {
    json!({
        "database": {"existingSecret": "", "url": "postgres://warren:pw@db-rw:5432/warren"},
        "jwt": {"existingSecret": "", "secret": "k".repeat(48)},
        "serviceMonitor": {"enabled": true},
    })
}

fn one<'a>(objects: &'a [Object], kind: &str) -> &'a Value {
    let found: Vec<_> = objects.iter().filter(|o| o.kind() == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {objects:#?}");
    &found[0].value
}

fn container(objects: &[Object]) -> Value {
    let containers = &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1), "{containers}");
    containers[0].clone()
}

/// The container's environment: name → the value, or `secret:NAME/KEY` for a secret ref.
fn environment(objects: &[Object]) -> Vec<(String, String)> {
    let container = container(objects);
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|var| {
            let name = var["name"].as_str().unwrap().to_owned();
            let value = match (&var["value"], &var["valueFrom"]["secretKeyRef"]) {
                (Value::String(value), Value::Null) => value.clone(),
                (Value::Null, Value::Object(r)) => {
                    format!(
                        "secret:{}/{}",
                        r["name"].as_str().unwrap(),
                        r["key"].as_str().unwrap()
                    )
                }
                _ => panic!("{name}: neither a string value nor a secretKeyRef: {var}"),
            };
            (name, value)
        })
        .collect()
}

fn env_value(objects: &[Object], name: &str) -> String {
    environment(objects)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the chart does not set {name}"))
        .1
}

/// `labels` (a map) holds every pair of `subset`.
fn contains_labels(labels: &Value, subset: &Value) -> bool {
    let subset = subset.as_object().expect("a label map");
    !subset.is_empty() && subset.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_chart_renders_with_its_values_into_well_formed_objects() {
    for (what, overrides) in [("defaults", json!({})), ("everything on", everything_on())] {
        let objects = rendered(overrides);
        let mut kinds: Vec<&str> = objects.iter().map(Object::kind).collect();
        kinds.sort();
        let expected: &[&str] = if what == "defaults" {
            &["Deployment", "PodDisruptionBudget", "Service"]
        } else {
            &[
                "Deployment",
                "PodDisruptionBudget",
                "Secret",
                "Service",
                "ServiceMonitor",
            ]
        };
        assert_eq!(kinds, expected, "{what}");
        for object in &objects {
            let value = &object.value;
            let name = value["metadata"]["name"].as_str().unwrap_or_default();
            assert!(
                value["apiVersion"].as_str().is_some_and(|v| !v.is_empty())
                    && !name.is_empty()
                    && name.len() <= 63,
                "{what}, {}: apiVersion, kind and metadata.name: {value}",
                object.template
            );
            let labels = &value["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/instance"], "demo", "{value}");
        }
    }
}

#[test]
fn a_release_without_secrets_given_fails_to_render_naming_the_value() {
    let err = render(
        &chart_dir(),
        "demo",
        &json!({"jwt": {"existingSecret": "", "secret": ""}}),
    )
    .unwrap_err();
    assert!(err.contains("jwt.secret is required"), "{err}");
    let err = render(
        &chart_dir(),
        "demo",
        &json!({"database": {"existingSecret": ""}}),
    )
    .unwrap_err();
    assert!(err.contains("database.url is required"), "{err}");
}

#[test]
fn every_variable_the_chart_sets_is_one_warren_serve_reads_and_accepts() {
    let serve = serve_command();
    let mut serve_reads = BTreeSet::new();
    common::env::clap_env(&serve, &mut serve_reads);
    let code_reads = read_by_the_code();
    for overrides in [json!({}), everything_on()] {
        let env = environment(&rendered(overrides));
        // Through clap as flags: each value must parse as `warren serve` parses it.
        let mut argv = vec!["warren".to_owned(), "serve".to_owned()];
        for (name, value) in &env {
            if name == "RUST_LOG" {
                assert!(code_reads.contains(name), "Warren no longer reads RUST_LOG");
                continue;
            }
            assert!(
                serve_reads.contains(name),
                "the chart sets {name}, which `warren serve` does not read; it reads {serve_reads:?}"
            );
            let arg = serve
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
                .unwrap();
            let value = if value.starts_with("secret:") {
                match name.as_str() {
                    "DATABASE_URL" => "postgres://warren@db/warren".to_owned(),
                    _ => "x".repeat(48),
                }
            } else {
                value.clone()
            };
            argv.push(format!("--{}={value}", arg.get_long().unwrap()));
        }
        let parsed = <warren::cli::Cli as clap::Parser>::try_parse_from(&argv)
            .unwrap_or_else(|err| panic!("{argv:?}: {err}"));
        let warren::cli::Command::Serve(args) = parsed.command else {
            panic!("not serve: {argv:?}");
        };
        let config = args.config();
        assert!(config.database_url.is_some() && config.jwt_secret.is_some());
    }
}

#[test]
fn the_container_listens_on_the_port_the_service_and_the_probes_use() {
    let objects = rendered(json!({}));
    let container = container(&objects);
    let listen: std::net::SocketAddr = env_value(&objects, "WARREN_LISTEN").parse().unwrap();
    assert!(
        listen.ip().is_unspecified(),
        "Warren in a pod must listen beyond loopback"
    );
    let ports = container["ports"].as_array().unwrap();
    let http = ports
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert_eq!(
        http["containerPort"],
        listen.port(),
        "containerPort vs WARREN_LISTEN"
    );
    let service = one(&objects, "Service");
    for port in service["spec"]["ports"].as_array().unwrap() {
        assert_eq!(
            port["targetPort"], "http",
            "the Service's targetPort: {port}"
        );
    }
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let port = &container[probe]["httpGet"]["port"];
        assert!(
            *port == "http" || *port == listen.port(),
            "{probe} asks port {port}"
        );
    }
}

#[tokio::test]
async fn the_probes_ask_readyz_and_healthz_which_answer_200() {
    let container = container(&rendered(json!({})));
    let path = |probe: &str| {
        container[probe]["httpGet"]["path"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        path("readinessProbe"),
        "/readyz",
        "readiness follows the database"
    );
    assert_eq!(
        path("livenessProbe"),
        "/healthz",
        "liveness must not follow the database"
    );
    assert_eq!(path("startupProbe"), "/healthz");
    let app = TestApp::spawn().await;
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let response = app.send(app.client.get(app.url(&path(probe)))).await;
        assert_eq!(response.status(), StatusCode::OK, "{probe}");
    }
    app.stop().await;
}

#[test]
fn the_grace_period_outlasts_the_prestop_sleep_and_the_drain() {
    let objects = rendered(json!({}));
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    let command = &container(&objects)["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(command[0], "sleep", "{command}");
    let sleep: u64 = command[1].as_str().unwrap().parse().unwrap();
    assert!(sleep >= 1, "a preStop sleep lets the endpoints go first");
    // After the sleep, SIGTERM: Warren waits for requests in flight, each cut off at the
    // request timeout, then flushes its queued heartbeats.
    let drain = warren::http::REQUEST_TIMEOUT.as_secs();
    assert!(
        grace > sleep + drain,
        "terminationGracePeriodSeconds {grace} must exceed the preStop sleep {sleep} s + the drain {drain} s"
    );
}

#[test]
fn the_pods_run_as_the_images_unprivileged_user_on_a_read_only_root_filesystem() {
    let objects = rendered(json!({}));
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let container = container(&objects);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert_ne!(uid, 0);
    assert!(
        read("Dockerfile").contains(&format!("useradd --system --uid {uid} ")),
        "runAsUser {uid} is not the image's user"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["automountServiceAccountToken"], false);
    // Nothing writable is mounted: Warren must need no directory when both secrets are set.
    assert!(pod["volumes"].is_null() && container["volumeMounts"].is_null());
    let env = environment(&objects);
    for name in ["DATABASE_URL", "WARREN_JWT_SECRET"] {
        assert!(env.iter().any(|(n, _)| n == name), "{name} must be set");
    }
}

#[tokio::test]
async fn warren_serves_without_writing_a_file_when_the_database_url_and_the_jwt_secret_are_set() {
    // The data dir lies where nothing can be created, not even by root: were Warren to write
    // there (a generated secret, an embedded cluster) it would fail to start.
    let url = fresh_database().await;
    let data_dir = Path::new("/proc/warren-read-only");
    let port = free_port();
    let mut child = process::serve(&url, port, &[("WARREN_DATA_DIR", "/proc/warren-read-only")]);
    process::ready(&format!("http://127.0.0.1:{port}"), &mut child).await;
    assert!(!data_dir.exists());
    process::terminate(child);
}

#[test]
fn the_disruption_budget_the_service_and_the_deployment_select_the_deployments_pods() {
    let objects = rendered(json!({}));
    let deployment = one(&objects, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selectors = [
        ("Deployment", &deployment["spec"]["selector"]["matchLabels"]),
        (
            "PodDisruptionBudget",
            &one(&objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        ),
        ("Service", &one(&objects, "Service")["spec"]["selector"]),
    ];
    for (kind, selector) in selectors {
        assert!(
            contains_labels(pod_labels, selector),
            "the {kind}'s selector {selector} does not select the pods ({pod_labels})"
        );
    }
    let pdb = &one(&objects, "PodDisruptionBudget")["spec"];
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas >= 2, "several replicas by default");
    assert!(
        pdb["maxUnavailable"]
            .as_u64()
            .is_some_and(|m| m >= 1 && m < replicas),
        "the budget lets a drain go on and keeps a replica: {pdb}"
    );
}

#[test]
fn the_service_monitor_scrapes_metrics_on_a_port_the_service_has() {
    let objects = rendered(everything_on());
    let monitor = one(&objects, "ServiceMonitor");
    let service = one(&objects, "Service");
    assert!(
        contains_labels(
            &service["metadata"]["labels"],
            &monitor["spec"]["selector"]["matchLabels"]
        ),
        "the ServiceMonitor does not select the Service"
    );
    let port_names: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    for endpoint in monitor["spec"]["endpoints"].as_array().unwrap() {
        assert!(port_names.contains(&&endpoint["port"]), "{endpoint}");
        assert_eq!(endpoint["path"], "/metrics");
    }
}

#[test]
fn the_secrets_come_from_existing_secrets_or_from_the_charts_own() {
    let defaults = rendered(json!({}));
    let cluster: Value =
        serde_norway::from_str(&read("deploy/cloudnative-pg/cluster.yaml")).unwrap();
    let cluster_name = cluster["metadata"]["name"].as_str().unwrap();
    // CloudNativePG's app-user Secret `<cluster>-app`, whose `uri` points at `<cluster>-rw`.
    assert_eq!(
        env_value(&defaults, "DATABASE_URL"),
        format!("secret:{cluster_name}-app/uri")
    );
    // Its `uri` as the operator writes it: postgresql://, the -rw Service, the app user.
    let uri = format!("postgresql://warren:secret@{cluster_name}-rw.default:5432/warren");
    let options = warren::db::connect_options(&uri).expect("Warren takes CloudNativePG's uri");
    assert_eq!(options.get_host(), format!("{cluster_name}-rw.default"));
    assert_eq!(options.get_database(), Some("warren"));
    assert_eq!(
        env_value(&defaults, "WARREN_JWT_SECRET"),
        "secret:warren-jwt/WARREN_JWT_SECRET"
    );
    let own = rendered(everything_on());
    let secret = one(&own, "Secret");
    let name = secret["metadata"]["name"].as_str().unwrap();
    for key in ["DATABASE_URL", "WARREN_JWT_SECRET"] {
        assert!(secret["stringData"][key].is_string(), "{secret}");
        assert_eq!(env_value(&own, key), format!("secret:{name}/{key}"));
    }
    // A changed secret rolls the pods.
    let checksum = |objects: &[Object]| {
        one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
            .clone()
    };
    let mut other = everything_on();
    other["jwt"]["secret"] = json!("j".repeat(48));
    assert_ne!(checksum(&own), checksum(&rendered(other)));
}

#[test]
fn the_cloudnative_pg_cluster_has_a_replica_and_room_for_every_replicas_connections() {
    let cluster: Value =
        serde_norway::from_str(&read("deploy/cloudnative-pg/cluster.yaml")).unwrap();
    assert_eq!(cluster["apiVersion"], "postgresql.cnpg.io/v1");
    assert_eq!(cluster["kind"], "Cluster");
    assert!(
        cluster["spec"]["instances"].as_u64().unwrap() >= 2,
        "a primary and a replica"
    );
    assert!(
        cluster["spec"]["imageName"]
            .as_str()
            .unwrap()
            .ends_with(":15"),
        "PostgreSQL 15, what Warren is tested on"
    );
    // Acknowledged writes must survive the primary's loss.
    assert!(cluster["spec"]["postgresql"]["synchronous"]["number"].as_u64() >= Some(1));
    let max_connections: u64 = cluster["spec"]["postgresql"]["parameters"]["max_connections"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let objects = rendered(json!({}));
    let deployment = one(&objects, "Deployment");
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    let surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        .as_u64()
        .unwrap();
    let pool = u64::from(warren::db::pool_options().get_max_connections());
    // PostgreSQL keeps 3 for superusers; leave 10 for the operator and people.
    assert!(
        (replicas + surge) * pool + 3 + 10 <= max_connections,
        "{} pods × {pool} connections do not fit in max_connections {max_connections}",
        replicas + surge
    );
}

/// `kubernetes-validate` (PyPI) checks the rendered objects against the API schemas it
/// ships, offline. CI installs it; elsewhere the check is skipped unless `CI` is set.
#[test]
fn the_rendered_objects_match_the_kubernetes_api_schemas() {
    let validate = || {
        let mut command = Command::new("python3");
        command.args(["-m", "kubernetes_validate"]);
        command
    };
    let available = validate()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate is missing: pip install kubernetes-validate"
        );
        eprintln!("kubernetes-validate is not installed: the schema check is skipped");
        return;
    }
    let dir = scratch_dir("warren-deploy");
    let mut files = Vec::new();
    for (i, object) in rendered(everything_on()).iter().enumerate() {
        // The Prometheus Operator's kinds are not in Kubernetes' own schemas.
        if object.kind() == "ServiceMonitor" {
            continue;
        }
        let file = dir.join(format!("{i}-{}", object.template));
        std::fs::write(&file, serde_norway::to_string(&object.value).unwrap()).unwrap();
        files.push(file);
    }
    let out = validate()
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .args(&files)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    eprintln!("{report}");
}
