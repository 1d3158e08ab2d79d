//! SQL metacharacters and NUL in every string field, query parameter and header.

use super::*;

/// `/connector/connections/0/coloName` → `connector.connections[0].coloName`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Every string member of `value`, as JSON pointers.
fn string_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                string_pointers(item, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// Every optional string field of a device snapshot (and its nested objects).
fn full_snapshot(device: &str) -> Value {
    let ip = json!({"address": "192.168.1.20", "aso": "Cloudflare", "name": "eth0", "netmask": "255.255.255.0",
        "location": {"city": "Berlin", "country_iso": "DE", "state_iso": "BE", "zip": "10115"}});
    let mut s = snapshot(device, 0);
    let extra = json!({"connectionType": "wifi", "cpuPctByApp": [{"name": "chrome"}], "deviceIpv4": ip,
        "deviceName": "laptop", "deviceRegistration": Uuid::new_v4(), "dohSubdomain": "acme",
        "gatewayIpv4": ip, "ispIpv4": ip, "metal": "ams01", "networkSsid": "office",
        "personEmail": "ada@example.com", "ramUsedPctByApp": [{"name": "chrome"}],
        "registrationId": Uuid::new_v4(), "tunnelType": "masque"});
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    s
}

/// Where a value sent in a body can be read back.
#[derive(Clone, Copy, PartialEq)]
enum Readback {
    /// In the answer itself, at the field's own pointer.
    Answer,
    /// In the tunnel's connector list (`connector/connections` are `0/conns` there).
    Connector,
    /// In the raw device list, filtered by the snapshot's device.
    Device,
}

#[tokio::test]
async fn sql_metacharacters_in_every_body_field_are_stored_verbatim_or_refused_by_name() {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let beat = format!("/v1/tunnels/{}/heartbeat", t.tunnel);
    // `{tunnel}` is a fresh tunnel per request (a failed tunnel takes no other patch); every
    // snapshot gets a fresh device, so that none is a retry of another.
    let routes = [
        (
            Method::POST,
            "/v1/tokens",
            json!({"name": "n", "scopes": ["dex:read"]}),
            Readback::Answer,
        ),
        (
            Method::POST,
            "/v1/tunnels",
            json!({"slug": "s", "requestedPort": 1}),
            Readback::Answer,
        ),
        (
            Method::PATCH,
            "/v1/tunnels/{tunnel}",
            json!({"status": "failed", "lastError": "e"}),
            Readback::Answer,
        ),
        (Method::POST, beat.as_str(), t.report(), Readback::Connector),
        (
            Method::POST,
            "/v1/fleet-status/devices",
            full_snapshot(&t.device),
            Readback::Device,
        ),
    ];
    for value in HOSTILE {
        for (method, path, valid, readback) in &routes {
            let mut pointers = Vec::new();
            string_pointers(valid, String::new(), &mut pointers);
            for pointer in pointers {
                let mut body = valid.clone();
                let device = Uuid::new_v4().to_string();
                if *readback == Readback::Device {
                    body["deviceId"] = json!(device);
                }
                *body.pointer_mut(&pointer).unwrap() = json!(value);
                let path = if path.contains("{tunnel}") {
                    let fresh = app.tunnel(&t.user.token, json!({"requestedPort": 1})).await;
                    path.replace("{tunnel}", fresh["id"].as_str().unwrap())
                } else {
                    path.to_string()
                };
                let what = format!("{method} {path} {pointer} = {value:?}");
                let response = app
                    .call(method.clone(), &path, Some(&t.user.token), Some(body))
                    .await;
                let answer = Answer::of(response).await;
                if answer.status >= 400 {
                    answer.refused(&path, &what);
                    assert_eq!(answer.field(), dotted(&pointer), "{what}: {}", answer.body);
                    continue;
                }
                assert!(
                    answer.status < 300,
                    "{what}: {} {}",
                    answer.status,
                    answer.body
                );
                let (read, at) = match readback {
                    Readback::Answer => (answer.json(), pointer.clone()),
                    Readback::Connector => {
                        let list = format!("/v1/tunnels/{}/connections", t.tunnel);
                        let at = pointer
                            .replacen("/connector", "/0", 1)
                            .replace("/connections/", "/conns/");
                        (
                            json_of(app.get(&list, &t.user.token).await, StatusCode::OK).await,
                            at,
                        )
                    }
                    Readback::Device => {
                        let list = format!("/v1/fleet-status/devices?source=raw&deviceId={device}");
                        let read =
                            json_of(app.get(&list, &t.user.token).await, StatusCode::OK).await;
                        (read, format!("/result/0{pointer}"))
                    }
                };
                assert_eq!(
                    read.pointer(&at),
                    Some(&json!(value)),
                    "{what}: stored otherwise: {read}"
                );
            }
        }
        // Credentials: a hostile email is refused by name or registered verbatim; a hostile
        // password is just a password; and neither `%` nor `_` is a pattern at login.
        let email = format!("{value}@example.com");
        let registered = Answer::of(app.register(&email, PASSWORD).await).await;
        if registered.status >= 400 {
            registered.refused("/v1/auth/register", &email);
            assert_eq!(registered.field(), "email", "{email}");
        } else {
            assert_eq!(registered.json()["email"], email.as_str());
            assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
        }
        let other = format!("{}@example.com", Uuid::new_v4().simple());
        let password = value.repeat(12);
        assert_eq!(
            app.register(&other, &password).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(app.login(&other, &password).await.status(), StatusCode::OK);
        let pattern = format!("{value}{value}@example.com");
        let wrong = Answer::of(app.login(&pattern, &password).await).await;
        wrong.refused("/v1/auth/login", &format!("login as {pattern:?}"));
    }
    still_healthy(&app, &t.user).await;
}

#[tokio::test]
async fn sql_metacharacters_in_every_query_parameter_and_header_are_refused_by_name_or_match_nothing(
) {
    let app = TestApp::spawn().await;
    let t = targets(&app).await;
    let (a, tu, d) = (&t.user.account_id, &t.tunnel, &t.device);
    let devices = "/v1/fleet-status/devices?source=raw&".to_owned();
    let cf_devices = format!("/client/v4/accounts/{a}/dex/fleet-status/devices?source=raw&");
    let live = format!("/v1/devices/{d}/fleet-status/live?sinceMinutes=60&");
    let cf_live =
        format!("/client/v4/accounts/{a}/dex/devices/{d}/fleet-status/live?since_minutes=60&");
    // (method, path up to the parameter, parameter).
    let mut params: Vec<(Method, String, &str)> = vec![
        (Method::GET, "/v1/tunnels?".into(), "includeInactive"),
        (Method::GET, "/v1/tunnels?".into(), "limit"),
        (Method::GET, "/v1/tunnels?".into(), "after"),
        (
            Method::DELETE,
            format!("/v1/tunnels/{tu}/connections?"),
            "clientId",
        ),
        (
            Method::DELETE,
            format!("/client/v4/accounts/{a}/cfd_tunnel/{tu}/connections?"),
            "client_id",
        ),
        (
            Method::GET,
            format!("/v1/devices/{d}/fleet-status/live?"),
            "sinceMinutes",
        ),
        (Method::GET, live.clone(), "timeNow"),
        (Method::GET, live, "colo"),
        (
            Method::GET,
            format!("/client/v4/accounts/{a}/dex/devices/{d}/fleet-status/live?"),
            "since_minutes",
        ),
        (Method::GET, cf_live.clone(), "time_now"),
        (Method::GET, cf_live, "colo"),
    ];
    for name in [
        "from", "to", "page", "perPage", "colo", "deviceId", "mode", "platform", "status",
        "version", "sortBy",
    ] {
        params.push((Method::GET, devices.clone(), name));
    }
    params.push((Method::GET, "/v1/fleet-status/devices?".into(), "source"));
    for name in [
        "from",
        "to",
        "page",
        "per_page",
        "colo",
        "device_id",
        "mode",
        "platform",
        "status",
        "version",
        "sort_by",
    ] {
        params.push((Method::GET, cf_devices.clone(), name));
    }
    // A cursor whose instant PostgreSQL cannot store (about 6,000 BC).
    let far_cursor = format!("-250000000000000000_{}", Uuid::nil());
    for (method, path, name) in &params {
        let values = HOSTILE
            .iter()
            .copied()
            .chain((*name == "after").then_some(far_cursor.as_str()));
        for value in values {
            let target = format!("{path}{name}={}", encode(value));
            let what = format!("{method} {target}");
            let answer = Answer::of(
                app.call(method.clone(), &target, Some(&t.user.token), None)
                    .await,
            )
            .await;
            match answer.status {
                400 => {
                    answer.refused(&target, &what);
                    assert_eq!(answer.field(), *name, "{what}: {}", answer.body);
                }
                // A filter that matches nothing: the live status is absent, a list is empty.
                404 if target.contains("/fleet-status/live") => {
                    answer.refused(&target, &what);
                }
                200 => {
                    let body = answer.json();
                    assert_eq!(
                        body["result"],
                        json!([]),
                        "{what}: {value:?} matched something"
                    );
                }
                other => panic!("{what}: {other} {}", answer.body),
            }
        }
    }
    // Headers: an Idempotency-Key is a key like any other, an X-Auth-Email nobody's.
    for value in HOSTILE.iter().filter(|v| !v.contains('\0')) {
        let created = app
            .client
            .post(app.url("/v1/tunnels"))
            .bearer_auth(&t.user.token)
            .header("idempotency-key", *value)
            .json(&json!({"requestedPort": 7}))
            .send()
            .await
            .unwrap();
        let created = Answer::of(created).await;
        if created.status >= 400 {
            created.refused("/v1/tunnels", value);
            assert_eq!(created.field(), "Idempotency-Key");
        }
        let cf = app
            .client
            .get(app.url(&format!("/client/v4/accounts/{a}/dex/fleet-status/devices")))
            .header("x-auth-email", *value)
            .header("x-auth-key", "wrn_nothing")
            .send()
            .await
            .unwrap();
        let cf = Answer::of(cf).await;
        cf.refused("/client/v4", value);
        assert_eq!(cf.status, 401);
    }
    let keyed: i64 = sqlx::query_scalar("SELECT count(DISTINCT key) FROM idempotency_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        keyed, 4,
        "`%`, `_`, `\\` and `\"` are four keys, not patterns"
    );
    still_healthy(&app, &t.user).await;
}
