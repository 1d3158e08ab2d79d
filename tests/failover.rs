//! A PostgreSQL failover under heartbeat load, as CloudNativePG does it: the primary dies,
//! the synchronous standby is promoted, and the address Warren connects to (the `-rw`
//! Service; here a TCP proxy) is moved to it. Warren must reconnect by itself, lose no
//! heartbeat it answered 200, and fail no lease for the outage.
mod common;

use std::time::{Duration, Instant};

use common::load::{assert_stored, Heartbeats};
use common::replication::ClusterPair;
use common::transitions::{failures, graced, transitioned_twice};
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(3);

/// `url` (on 127.0.0.1) with the port of `proxy` instead.
fn via(url: &str, port: u16, proxy: &Proxy) -> String {
    url.replace(&format!("127.0.0.1:{port}/"), &format!("{}/", proxy.addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_follows_a_promoted_standby_by_itself_losing_no_acknowledged_heartbeat_and_no_lease()
{
    // Warren's warnings and errors in the test's output, should it fail.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warren=warn")
        .with_test_writer()
        .try_init();
    let mut pair = ClusterPair::start("warren-failover").await;
    let primary = pair.primary.as_ref().unwrap();
    let rw = Proxy::start(([127, 0, 0, 1], primary.port()).into()).await;
    let url = via(&primary.url("warren"), primary.port(), &rw);
    let app = TestApp::on_database(&url, |c| c.lease_ttl = TTL).await;
    let user = app.user().await;
    let token = app.api_token(&user, &["tunnels:heartbeat"]).await;
    let kept = app.tunnel_ids(&user.token, 20).await;
    let abandoned = app.tunnel_ids(&user.token, 2).await;
    let events_before = app.events(&user.token, 0).await.len();

    // Agents heartbeat the kept tunnels throughout, every 10 ms per worker.
    let load = Heartbeats::start(&app.base, &token, &kept, 4, Duration::from_millis(10));
    load.renewed(&kept, "every kept tunnel acknowledged").await;

    let killed = Instant::now();
    let promotion = pair.fail_over().await;
    let promoted = Instant::now();
    // Nothing can be acknowledged now (the proxy still points at the dead primary): every
    // renewal acknowledged so far must be on the promoted standby.
    let standby = sqlx::PgPool::connect(&pair.standby.url("warren"))
        .await
        .unwrap();
    assert_stored(&standby, &load.acked()).await;
    // As if the failover had taken longer than a lease (the reaper's clock and every lease
    // moved a TTL into the past): without the outage grace, every lease would now expire.
    common::clock::as_if_down_for(&standby, TTL).await;
    let checked = promoted.elapsed();
    rw.point_at(vec![([127, 0, 0, 1], pair.standby.port()).into()]);

    let first_ok = eventually(
        Duration::from_secs(30),
        "a heartbeat answered 200 after the promotion",
        || async { load.first_ok_after(promoted) },
    )
    .await;
    // Some more load on the new primary, then the agents stop.
    load.renewed(&kept, "every kept tunnel renewed on the new primary")
        .await;
    let statuses = load.statuses();
    let unexpected = load.unexpected();
    let acked = load.stop().await;
    assert!(
        unexpected.is_empty(),
        "answers other than 200 and 503: {unexpected:?}"
    );
    eprintln!(
        "failover: primary killed → standby promoted {:?}; promoted → first 200 {:?} (of which \
         {checked:?} the test's own check and clock move); killed → first 200 {:?}; answers {statuses:?}",
        promotion,
        first_ok - promoted,
        first_ok - killed,
    );

    // Reconnected by itself: ready, serving, and the reaper, the grace and the event
    // listener work on the new primary.
    assert_eq!(metric(&app, "warren_database_reachable").await, Some(1.0));
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status(),
        StatusCode::OK
    );
    assert!(
        graced(&standby).await,
        "the reaper gave no grace after the failover"
    );
    assert_eq!(
        failures(&standby, &kept).await,
        0,
        "a lease failed for the failover"
    );
    assert_stored(&standby, &acked).await;
    let mut stream = app.stream(&user.token, "", None).await;
    // The abandoned tunnels' leases ran out long ago, and so did the grace (the kept
    // tunnels, renewed until a moment ago, outlive both).
    common::clock::end_grace(&standby).await;
    for id in &abandoned {
        common::clock::age_tunnel(&standby, id.parse::<Uuid>().unwrap(), TTL * 2).await;
    }
    for _ in &abandoned {
        let failed = stream
            .event(Duration::from_secs(10), "the abandoned tunnels failing")
            .await;
        assert_eq!(failed.event.as_deref(), Some("tunnel.failed.v1"));
    }
    assert_eq!(failures(&standby, &abandoned).await, 2);
    assert_eq!(transitioned_twice(&standby).await, 0);
    // The event log went on without a gap: creations, activations, the two failures.
    let events = app.events(&user.token, 0).await;
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    assert_eq!(events.len(), events_before + kept.len() + abandoned.len());
    let tunnel = app.tunnel(&user.token, json!({"requestedPort": 1})).await;
    assert_eq!(tunnel["status"], "creating");

    app.stop().await;
    standby.close().await;
    pair.remove().await;
}
