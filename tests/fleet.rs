#![recursion_limit = "256"]

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::fleet::{ingest, rfc3339, snapshot, with, DEVICES};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// Every optional field of the seed, with in-bounds values.
fn every_field() -> Value {
    let ip = |address: &str, version: i64| {
        json!({"address": address, "asn": 13335, "aso": "Cloudflare", "name": "eth0", "netmask": "255.255.255.0",
               "version": version, "location": {"city": "Berlin", "country_iso": "DE", "state_iso": "BE", "zip": "10115"}})
    };
    let dir = json!({"downstream": 10, "upstream": 20});
    json!({
        "alwaysOn": true, "batteryCharging": false, "batteryCycles": 120, "batteryPct": 87.5,
        "connectionType": "wifi", "cpuPct": 12.5, "cpuPctByApp": [{"cpu_pct": 3.5, "name": "chrome"}],
        "deviceIpv4": ip("192.168.1.20", 1), "deviceIpv6": ip("2001:db8::20", 2),
        "deviceName": "ada-laptop", "deviceRegistration": Uuid::new_v4().to_string(),
        "diskReadBps": 1000, "diskUsagePct": 55.0, "diskWriteBps": 2000, "dohSubdomain": "acme",
        "estimatedLossPct": 0.5, "firewallEnabled": true,
        "gatewayIpv4": ip("192.168.1.1", 1), "gatewayIpv6": ip("2001:db8::1", 2),
        "handshakeLatencyMs": 35, "ispIpv4": ip("203.0.113.7", 1), "ispIpv6": ip("2001:db8:1::7", 2),
        "metal": "ams01", "networkRcvdBps": 5000, "networkSentBps": 4000, "networkSsid": "office",
        "personEmail": "ada@example.com", "ramAvailableKb": 4096000, "ramUsedPct": 61.25,
        "ramUsedPctByApp": [{"name": "chrome", "ram_used_pct": 20.0}],
        "registrationId": Uuid::new_v4().to_string(),
        "rtt": {"minRttUs": dir, "rttUs": dir, "rttVarUs": dir},
        "switchLocked": false,
        "tunnelStats": {"bytesLost": dir, "bytesReceived": dir, "bytesRetransmitted": dir, "bytesSent": dir,
                        "packetsLost": dir, "packetsReceived": dir, "packetsRetransmitted": dir,
                        "packetsSent": dir, "statsWindowMs": 60000},
        "tunnelType": "masque", "wifiStrengthDbm": -60,
    })
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    json_of(
        app.get(&format!("{DEVICES}?{query}"), token).await,
        StatusCode::OK,
    )
    .await
}

async fn stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM device_snapshots")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

fn device_ids(page: &Value) -> Vec<String> {
    page["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_snapshot_with_every_seed_field_comes_back_in_the_seed_shape() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let device = Uuid::new_v4();
    let sent = with(snapshot(device, 1), every_field());
    let answer = ingest(&app, &user.token, sent.clone()).await;
    assert_eq!(answer["stored"], 1);

    let page = list(&app, &user.token, "source=raw").await;
    assert_eq!(
        page["resultInfo"],
        json!({"count": 1, "page": 1, "perPage": 20, "totalCount": 1, "totalCountExact": true,
               "totalPages": 1})
    );
    let got = &page["result"][0];
    for (key, value) in sent.as_object().unwrap() {
        if key == "timestamp" {
            continue;
        }
        let same = match (value.as_f64(), got[key].as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => got[key] == *value,
        };
        assert!(same, "{key}: sent {value}, got {}", got[key]);
    }
    let ts = got["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    assert_eq!(
        DateTime::parse_from_rfc3339(ts).unwrap(),
        DateTime::parse_from_rfc3339(sent["timestamp"].as_str().unwrap()).unwrap()
    );
}

#[tokio::test]
async fn a_batch_of_a_thousand_snapshots_is_stored_in_one_request() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let batch: Vec<Value> = (0..1000)
        .map(|i| with(snapshot(Uuid::new_v4(), i % 50), every_field()))
        .collect();
    let answer = ingest(&app, &user.token, Value::Array(batch)).await;
    assert_eq!(answer, json!({"received": 1000, "stored": 1000}));
    assert_eq!(stored(&app).await, 1000);

    let too_many: Vec<Value> = (0..1001).map(|_| snapshot(Uuid::new_v4(), 1)).collect();
    let p = problem_of(
        app.post(DEVICES, &user.token, Value::Array(too_many)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("1000"), "{p}");
    problem_of(
        app.post(DEVICES, &user.token, json!([])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn a_batch_with_one_bad_snapshot_is_rejected_whole_naming_its_index_and_field() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut batch: Vec<Value> = (0..10).map(|_| snapshot(Uuid::new_v4(), 1)).collect();
    batch[7] = with(batch[7].clone(), json!({"cpuPct": 100.5}));
    let p = problem_of(
        app.post(DEVICES, &user.token, Value::Array(batch.clone()))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "[7].cpuPct", "{p}");

    batch[7] = with(
        snapshot(Uuid::new_v4(), 1),
        json!({"ramUsedPctByApp": [{"name": "x", "ram_used_pct": -1}]}),
    );
    let p = problem_of(
        app.post(DEVICES, &user.token, Value::Array(batch.clone()))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "[7].ramUsedPctByApp[0].ram_used_pct", "{p}");

    batch[7].as_object_mut().unwrap().remove("colo");
    let p = problem_of(
        app.post(DEVICES, &user.token, Value::Array(batch)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "[7].colo", "{p}");
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn each_field_is_checked_for_its_type_and_bounds() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let cases = [
        (json!({"batteryPct": -0.1}), "batteryPct"),
        (json!({"diskUsagePct": 101}), "diskUsagePct"),
        (json!({"estimatedLossPct": "high"}), "estimatedLossPct"),
        (json!({"batteryCycles": 1.5}), "batteryCycles"),
        (json!({"networkSentBps": -1}), "networkSentBps"),
        (json!({"wifiStrengthDbm": 20}), "wifiStrengthDbm"),
        (json!({"alwaysOn": "yes"}), "alwaysOn"),
        (
            json!({"cpuPctByApp": [{"cpu_pct": 200, "name": "x"}]}),
            "cpuPctByApp[0].cpu_pct",
        ),
        (
            json!({"deviceIpv4": {"address": "2001:db8::1"}}),
            "deviceIpv4.address",
        ),
        (json!({"ispIpv6": {"version": 3}}), "ispIpv6.version"),
        (
            json!({"gatewayIpv4": {"location": {"country_iso": "Germany"}}}),
            "gatewayIpv4.location.country_iso",
        ),
        (
            json!({"rtt": {"rttUs": {"upstream": -5}}}),
            "rtt.rttUs.upstream",
        ),
        (
            json!({"tunnelStats": {"packetsLost": {"downstream": -1}}}),
            "tunnelStats.packetsLost.downstream",
        ),
        (json!({"registrationId": "not-a-uuid"}), "registrationId"),
        (json!({"personEmail": "nobody"}), "personEmail"),
        (json!({"cpuPercent": 5}), "cpuPercent"),
        (json!({"rtt": {"rttMs": {}}}), "rtt.rttMs"),
        (json!({"deviceId": "laptop-1"}), "deviceId"),
        (json!({"mode": ""}), "mode"),
        (json!({"status": 1}), "status"),
    ];
    for (extra, field) in cases {
        let body = with(snapshot(Uuid::new_v4(), 1), extra.clone());
        let p = problem_of(
            app.post(DEVICES, &user.token, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], field, "{extra}: {p}");
    }
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn timestamps_far_in_the_future_or_older_than_seven_days_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    for minutes_ago in [-10, 7 * 24 * 60 + 5] {
        let p = problem_of(
            app.post(DEVICES, &user.token, snapshot(Uuid::new_v4(), minutes_ago))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], "timestamp", "{p}");
    }
    let garbled = with(
        snapshot(Uuid::new_v4(), 1),
        json!({"timestamp": "yesterday"}),
    );
    problem_of(
        app.post(DEVICES, &user.token, garbled).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // A device clock a little ahead is believed, and the seed's own rendering is accepted.
    ingest(&app, &user.token, snapshot(Uuid::new_v4(), -2)).await;
    let seed_style = (Utc::now() - Duration::minutes(3))
        .format("%Y-%m-%d %H:%M:%S+00")
        .to_string();
    ingest(
        &app,
        &user.token,
        with(
            snapshot(Uuid::new_v4(), 0),
            json!({"timestamp": seed_style}),
        ),
    )
    .await;
}

#[tokio::test]
async fn a_retried_batch_is_stored_once() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let batch = json!([snapshot(Uuid::new_v4(), 2), snapshot(Uuid::new_v4(), 1)]);
    assert_eq!(ingest(&app, &user.token, batch.clone()).await["stored"], 2);
    assert_eq!(ingest(&app, &user.token, batch).await["stored"], 0);
    assert_eq!(stored(&app).await, 2);
}

#[tokio::test]
async fn last_seen_lists_each_device_once_with_its_latest_state() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    ingest(
        &app,
        &user.token,
        json!([
            snapshot(a, 30),
            with(snapshot(a, 5), json!({"status": "disconnected"})),
            snapshot(b, 10),
            snapshot(b, 90),
        ]),
    )
    .await;
    let page = list(&app, &user.token, "").await;
    assert_eq!(page["resultInfo"]["totalCount"], 2);
    assert_eq!(device_ids(&page), vec![a.to_string(), b.to_string()]);
    assert_eq!(page["result"][0]["status"], "disconnected");
    // The filters apply to the latest state.
    let connected = list(&app, &user.token, "status=connected").await;
    assert_eq!(device_ids(&connected), vec![b.to_string()]);

    let from = rfc3339(Utc::now() - Duration::minutes(61));
    let p = problem_of(
        app.get(
            &format!("{DEVICES}?source=last_seen&from={from}"),
            &user.token,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("60 minutes"), "{p}");
}

#[tokio::test]
async fn raw_lists_every_snapshot_up_to_seven_days_back() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let device = Uuid::new_v4();
    ingest(
        &app,
        &user.token,
        json!([
            snapshot(device, 60 * 30),
            snapshot(device, 90),
            snapshot(device, 1)
        ]),
    )
    .await;
    let week = (Utc::now() - Duration::days(7) + Duration::minutes(1)).timestamp_millis();
    let page = list(&app, &user.token, &format!("source=raw&from={week}")).await;
    assert_eq!(page["resultInfo"]["totalCount"], 3);
    let default_day = list(&app, &user.token, "source=raw").await;
    assert_eq!(default_day["resultInfo"]["totalCount"], 2);

    let eight_days = (Utc::now() - Duration::days(8)).timestamp_millis();
    for source in ["raw", "hourly"] {
        let p = problem_of(
            app.get(
                &format!("{DEVICES}?source={source}&from={eight_days}"),
                &user.token,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("7 days"), "{p}");
    }
}

#[tokio::test]
async fn hourly_has_one_row_per_device_and_hour_with_the_metrics_averaged() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let device = Uuid::new_v4();
    let hour = (Utc::now() - Duration::hours(2))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    let at = |minute: i64, extra: Value| {
        with(
            snapshot(device, 0),
            with(
                json!({"timestamp": rfc3339(hour + Duration::minutes(minute))}),
                extra,
            ),
        )
    };
    // Two requests into the same hour: the averages must span both.
    ingest(&app, &user.token, json!([
        at(10, json!({"cpuPct": 10.0, "networkSentBps": 100, "deviceName": "first", "status": "connected"})),
        at(40, json!({"cpuPct": 20.0, "networkSentBps": 201, "deviceName": "second", "status": "disconnected"})),
    ])).await;
    ingest(
        &app,
        &user.token,
        json!([
            at(
                20,
                json!({"cpuPct": 60.0, "networkSentBps": 300, "deviceName": "middle"})
            ),
            at(70, json!({"cpuPct": 99.0})),
        ]),
    )
    .await;
    let page = list(
        &app,
        &user.token,
        &format!("source=hourly&from={}", rfc3339(hour)),
    )
    .await;
    assert_eq!(page["resultInfo"]["totalCount"], 2, "{page}");
    let first = page["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["timestamp"] == rfc3339(hour))
        .unwrap();
    assert_eq!(first["cpuPct"], 30.0);
    assert_eq!(first["networkSentBps"], 200);
    assert_eq!(first["deviceName"], "second");
    assert_eq!(first["status"], "disconnected");
}

#[tokio::test]
async fn every_filter_selects_by_its_dimension() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let plain = Uuid::new_v4();
    let devices: Vec<(Uuid, Value)> = vec![
        (Uuid::new_v4(), json!({"colo": "FRA"})),
        (Uuid::new_v4(), json!({"mode": "warp"})),
        (Uuid::new_v4(), json!({"platform": "linux"})),
        (Uuid::new_v4(), json!({"status": "disconnected"})),
        (Uuid::new_v4(), json!({"version": "2.0.0"})),
    ];
    let mut batch = vec![snapshot(plain, 1)];
    batch.extend(
        devices
            .iter()
            .map(|(id, extra)| with(snapshot(*id, 1), extra.clone())),
    );
    ingest(&app, &user.token, Value::Array(batch)).await;
    for (id, extra) in &devices {
        let (key, value) = extra.as_object().unwrap().iter().next().unwrap();
        let page = list(
            &app,
            &user.token,
            &format!("source=raw&{key}={}", value.as_str().unwrap()),
        )
        .await;
        assert_eq!(device_ids(&page), vec![id.to_string()], "{key}");
    }
    let page = list(&app, &user.token, &format!("source=raw&deviceId={plain}")).await;
    assert_eq!(device_ids(&page), vec![plain.to_string()]);
    problem_of(
        app.get(&format!("{DEVICES}?deviceId=laptop"), &user.token)
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn sort_by_orders_stably_and_the_pages_cover_every_row_once() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let colos = ["SJC", "AMS", "FRA", "LHR"];
    // Three instants shared by many devices: ties on (dimension, time) are broken by device.
    let now = Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();
    let batch: Vec<Value> = (0..23)
        .map(|i| {
            let at = now - Duration::minutes(1 + i % 3);
            with(
                snapshot(Uuid::new_v4(), 0),
                json!({"colo": colos[i as usize % 4], "timestamp": rfc3339(at)}),
            )
        })
        .collect();
    ingest(&app, &user.token, Value::Array(batch)).await;
    for source in ["raw", "hourly", "last_seen"] {
        for sort in warren::fleet::query::SORT_KEYS {
            let mut rows = Vec::new();
            for page in 1..=5 {
                let query = format!("source={source}&sortBy={sort}&perPage=5&page={page}");
                let p = list(&app, &user.token, &query).await;
                assert_eq!(p["resultInfo"]["totalPages"], 5, "{query}");
                rows.extend(p["result"].as_array().unwrap().clone());
            }
            let mut unique = device_ids(&json!({ "result": rows }));
            unique.sort();
            unique.dedup();
            assert_eq!((rows.len(), unique.len()), (23, 23), "{source} {sort}");
            // The whole order: the key, then newest first, then by device.
            let text = |r: &Value, k: &str| r[k].as_str().unwrap().to_owned();
            let keys: Vec<(String, String, String)> = rows
                .iter()
                .map(|r| {
                    let key = match sort {
                        "device_id" => text(r, "deviceId"),
                        "timestamp" => String::new(),
                        s => text(r, s),
                    };
                    (key, text(r, "timestamp"), text(r, "deviceId"))
                })
                .collect();
            let mut sorted = keys.clone();
            sorted.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
            assert_eq!(keys, sorted, "{source} {sort}");
        }
    }
    problem_of(
        app.get(&format!("{DEVICES}?sortBy=deviceId"), &user.token)
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn per_page_is_bounded_and_a_page_past_the_end_is_empty() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    ingest(
        &app,
        &user.token,
        json!([snapshot(Uuid::new_v4(), 1), snapshot(Uuid::new_v4(), 1)]),
    )
    .await;
    for bad in [
        "perPage=0",
        "perPage=51",
        "perPage=ten",
        "page=0",
        "page=1.5",
        "source=daily",
        "from=yesterday",
    ] {
        let p = problem_of(
            app.get(&format!("{DEVICES}?{bad}"), &user.token).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], bad.split('=').next().unwrap(), "{bad}");
    }
    let page = list(&app, &user.token, "perPage=1.0&page=2").await;
    assert_eq!(
        page["resultInfo"],
        json!({"count": 1, "page": 2, "perPage": 1, "totalCount": 2, "totalCountExact": true,
               "totalPages": 2})
    );
    let past = list(&app, &user.token, "perPage=50&page=3").await;
    assert_eq!(past["result"], json!([]));
    assert_eq!(past["resultInfo"]["totalCount"], 2);
}

#[tokio::test]
async fn from_and_to_take_rfc3339_or_epoch_milliseconds() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let device = Uuid::new_v4();
    ingest(
        &app,
        &user.token,
        json!([
            snapshot(device, 50),
            snapshot(device, 20),
            snapshot(device, 5)
        ]),
    )
    .await;
    let (from, to) = (
        Utc::now() - Duration::minutes(30),
        Utc::now() - Duration::minutes(10),
    );
    let by_text = list(
        &app,
        &user.token,
        &format!("source=raw&from={}&to={}", rfc3339(from), rfc3339(to)),
    )
    .await;
    let by_millis = list(
        &app,
        &user.token,
        &format!(
            "source=raw&from={}&to={}",
            from.timestamp_millis(),
            to.timestamp_millis()
        ),
    )
    .await;
    assert_eq!(by_text["resultInfo"]["totalCount"], 1);
    assert_eq!(by_text, by_millis);
    let p = problem_of(
        app.get(
            &format!(
                "{DEVICES}?from={}&to={}",
                to.timestamp_millis(),
                from.timestamp_millis()
            ),
            &user.token,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "from");
}

#[tokio::test]
async fn live_status_is_the_latest_snapshot_within_since_minutes() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let device = Uuid::new_v4();
    ingest(
        &app,
        &user.token,
        json!([
            with(snapshot(device, 20), json!({"cpuPct": 1.0})),
            with(snapshot(device, 8), json!({"cpuPct": 2.0})),
        ]),
    )
    .await;
    let live = |since: &str| format!("/v1/devices/{device}/fleet-status/live?sinceMinutes={since}");
    let got = json_of(app.get(&live("10"), &user.token).await, StatusCode::OK).await;
    assert_eq!(got["cpuPct"], 2.0);
    assert_eq!(got["deviceId"], device.to_string());
    problem_of(
        app.get(&live("5"), &user.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for bad in ["0", "61", "x", ""] {
        let p = problem_of(
            app.get(&live(bad), &user.token).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(p["field"], "sinceMinutes", "{bad}");
    }
    let then = (Utc::now() - Duration::minutes(15)).timestamp_millis();
    let got = json_of(
        app.get(&format!("{}&timeNow={then}", live("10")), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["cpuPct"], 1.0);
    problem_of(
        app.get(
            &format!(
                "/v1/devices/{}/fleet-status/live?sinceMinutes=60",
                Uuid::new_v4()
            ),
            &user.token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn devices_of_one_account_are_invisible_to_another() {
    let app = TestApp::spawn().await;
    let (ada, bob) = (app.user().await, app.user().await);
    let device = Uuid::new_v4();
    ingest(&app, &ada.token, snapshot(device, 1)).await;
    // Bob reporting the same device id stores his own snapshot, not a conflict with Ada's.
    ingest(
        &app,
        &bob.token,
        with(snapshot(device, 1), json!({"colo": "FRA"})),
    )
    .await;
    for source in ["last_seen", "raw", "hourly"] {
        let page = list(&app, &ada.token, &format!("source={source}")).await;
        assert_eq!(page["resultInfo"]["totalCount"], 1, "{source}");
        assert_eq!(page["result"][0]["colo"], "SJC", "{source}");
    }
    let other = app.user().await;
    assert_eq!(
        list(&app, &other.token, "source=raw").await["result"],
        json!([])
    );
    problem_of(
        app.get(
            &format!("/v1/devices/{device}/fleet-status/live?sinceMinutes=60"),
            &other.token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn ingest_needs_dex_write_and_reads_take_dex_read_or_write() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let reader = app.api_token(&user, &["dex:read"]).await;
    let writer = app.api_token(&user, &["dex:write"]).await;
    let tunnels = app.api_token(&user, &["tunnels:read"]).await;
    let device = Uuid::new_v4();
    problem_of(
        app.post(DEVICES, &reader, snapshot(device, 1)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    ingest(&app, &writer, snapshot(device, 1)).await;
    let live = format!("/v1/devices/{device}/fleet-status/live?sinceMinutes=5");
    for token in [&reader, &writer] {
        list(&app, token, "").await;
        json_of(app.get(&live, token).await, StatusCode::OK).await;
    }
    problem_of(
        app.get(DEVICES, &tunnels).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem_of(
        app.get(&live, &tunnels).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let anonymous = app.call(reqwest::Method::GET, DEVICES, None, None).await;
    problem_of(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn retention_deletes_snapshots_and_hours_older_than_seven_days() {
    let app = TestApp::spawn_with(|c| {
        c.fleet_retention_interval = std::time::Duration::from_millis(100);
        c.fleet_retention_batch = 3;
    })
    .await;
    let user = app.user().await;
    let (old, fresh) = (Uuid::new_v4(), Uuid::new_v4());
    let batch: Vec<Value> = (0..10)
        .map(|i| snapshot(old, 60 + i))
        .chain([snapshot(fresh, 1)])
        .collect();
    ingest(&app, &user.token, Value::Array(batch)).await;
    // Age the first device's data past retention, as if it had been reported 8 days ago.
    sqlx::query("UPDATE device_snapshots SET ts = ts - interval '8 days' WHERE device_id = $1")
        .bind(old)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE device_hourly SET hour = hour - interval '8 days' WHERE device_id = $1")
        .bind(old)
        .execute(&app.db)
        .await
        .unwrap();
    let wait = std::time::Duration::from_secs(10);
    eventually(wait, "retention to delete the old device", || async {
        let left: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM device_snapshots WHERE device_id = $1),
                    (SELECT count(*) FROM device_hourly WHERE device_id = $1)",
        )
        .bind(old)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if left == (0, 0) {
            Ok(())
        } else {
            Err(format!("{left:?} rows left"))
        }
    })
    .await;
    assert_eq!(stored(&app).await, 1);
    let hours: i64 = sqlx::query_scalar("SELECT count(*) FROM device_hourly")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(hours, 1);
}

#[tokio::test]
async fn malformed_bodies_are_named_and_never_partially_written() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let response = app
        .send(
            app.client
                .post(app.url(DEVICES))
                .bearer_auth(&user.token)
                .header("content-type", "application/json")
                .body("[{\"deviceId\": "),
        )
        .await;
    problem_of(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    let response = app
        .send(
            app.client
                .post(app.url(DEVICES))
                .bearer_auth(&user.token)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    problem_of(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let p = problem_of(
        app.post(
            DEVICES,
            &user.token,
            json!([snapshot(Uuid::new_v4(), 1), 5]),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "[1].body");
    assert_eq!(stored(&app).await, 0);
}
