//! `totalCount` over many rows: exact up to 10,000 rows past the page asked for, a flagged
//! lower bound beyond, and `totalPages` that never ends a walk early.

mod common;

use std::collections::HashSet;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Rows in every source: more than the 10,000 counted past the first page.
const ROWS: i64 = 10_100;

/// `ROWS` devices, each with one snapshot in the last 20 minutes and its hour, stored with
/// SQL (the ingest route is tested elsewhere; this is about reading many rows).
async fn store_many(app: &TestApp, user: &User) {
    sqlx::query(
        "INSERT INTO device_snapshots (account_id, device_id, ts, colo, mode, platform, status, version)
         SELECT $1::uuid, gen_random_uuid(), date_trunc('milliseconds', now() - n * interval '100 ms'),
                (ARRAY['AMS', 'FRA', 'SJC'])[1 + n % 3], 'warp', 'linux', 'connected', '1.0.0'
         FROM generate_series(1, $2) AS n",
    )
    .bind(&user.account_id)
    .bind(ROWS)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO device_hourly (account_id, device_id, hour, last_ts, colo, mode, platform, status,
                                    version, sums, counts)
         SELECT account_id, device_id, date_trunc('hour', ts), ts, colo, mode, platform, status, version,
                array_fill(0::float8, ARRAY[12]), array_fill(0, ARRAY[12])
         FROM device_snapshots WHERE account_id = $1::uuid",
    )
    .bind(&user.account_id)
    .execute(&app.db)
    .await
    .unwrap();
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    json_of(
        app.get(&format!("/v1/fleet-status/devices?{query}"), token)
            .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn the_total_is_exact_up_to_ten_thousand_rows_past_the_page_and_a_flagged_lower_bound_beyond()
{
    let app = TestApp::spawn().await;
    let user = app.user().await;
    store_many(&app, &user).await;
    // (query, totalCount, totalCountExact, totalPages), pages of 50.
    let cases = [
        // The first page counts 10,000 rows past its own first row: a lower bound.
        ("page=1", 10_001, false, 201),
        // The horizon moves with the page: 50 rows further on, 50 more are counted.
        ("page=2", 10_051, false, 202),
        // From the third page on, the rest is within reach: the count is exact.
        ("page=3", ROWS, true, 202),
        // A filter counts only its own matches (every third row), exactly when they are few.
        ("colo=AMS", ROWS / 3, true, 68),
    ];
    for source in ["raw", "last_seen", "hourly"] {
        for (query, total, exact, pages) in cases {
            let query = format!("source={source}&perPage=50&{query}");
            let info = page(&app, &user.token, &query).await["resultInfo"].clone();
            assert_eq!(info["count"], 50, "{query}");
            assert_eq!(
                (
                    &info["totalCount"],
                    &info["totalCountExact"],
                    &info["totalPages"]
                ),
                (&json!(total), &json!(exact), &json!(pages)),
                "{query}"
            );
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_at_total_pages_still_reads_every_row_once() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    store_many(&app, &user).await;
    // cloudflare-go's `HasMorePages` reads `page < total_pages`; walk the Cloudflare route
    // that way, sorted by a dimension, and compare with what is stored.
    let base = format!(
        "/client/v4/accounts/{}/dex/fleet-status/devices",
        user.account_id
    );
    let mut seen = HashSet::new();
    let mut rows = 0;
    let mut number = 1;
    loop {
        let path = format!("{base}?source=raw&sort_by=colo&per_page=50&page={number}");
        let body = json_of(app.get(&path, &user.token).await, StatusCode::OK).await;
        let info = body["result_info"].as_object().unwrap();
        let mut keys: Vec<&str> = info.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["count", "page", "per_page", "total_count", "total_pages"],
            "the Cloudflare result_info keeps its shape"
        );
        for device in body["result"].as_array().unwrap() {
            rows += 1;
            seen.insert(device["deviceId"].as_str().unwrap().to_owned());
        }
        if number >= info["total_pages"].as_i64().unwrap() {
            break;
        }
        number += 1;
    }
    assert_eq!((rows, seen.len() as i64), (ROWS, ROWS));
    assert_eq!(
        number, 202,
        "the last page is the one the exact count names"
    );
}
