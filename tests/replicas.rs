//! Three Warren processes on one database behind a round-robin proxy (a load balancer),
//! agents heartbeating through it, while one replica is killed with SIGKILL and another is
//! restarted (a rolling update). Nothing acknowledged is lost, no tunnel is transitioned
//! twice, the survivors reap, and an event stream on a survivor delivers every event once.
mod common;

use std::process::Child;
use std::time::Duration;

use common::load::{assert_stored, Heartbeats};
use common::transitions::{failures, transitioned_twice};
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

const TTL: &str = "3";
const SOON: Duration = Duration::from_secs(10);

fn replica(url: &str, port: u16) -> Child {
    process::serve(url, port, &[("WARREN_LEASE_TTL_SECS", TTL)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_a_balancer_lose_nothing_when_one_is_killed_and_one_restarted() {
    let url = fresh_database().await;
    let ports = [free_port(), free_port(), free_port()];
    let bases = ports.map(|p| format!("http://127.0.0.1:{p}"));
    let mut children = Vec::new();
    for (port, base) in ports.iter().zip(&bases) {
        let mut child = replica(&url, *port);
        process::ready(base, &mut child).await;
        children.push(child);
    }
    let [killed, restarted, survivor] = <[Child; 3]>::try_from(children).unwrap();
    let balancer =
        Proxy::round_robin(ports.iter().map(|p| ([127, 0, 0, 1], *p).into()).collect()).await;
    let lb = TestApp::remote(&balancer.base, &url);

    let user = lb.user().await;
    let token = lb.api_token(&user, &["tunnels:heartbeat"]).await;
    let kept = lb.tunnel_ids(&user.token, 30).await;
    let abandoned = lb.tunnel_ids(&user.token, 5).await;
    // Every event of the account from the first, live, on the replica that stays up.
    let on_survivor = TestApp::remote(&bases[2], &url);
    let mut stream = on_survivor.stream(&user.token, "?after=0", None).await;

    let load = Heartbeats::start(&balancer.base, &token, &kept, 4, Duration::from_millis(10));
    load.renewed(&kept, "every kept tunnel acknowledged").await;

    process::kill_9(killed);
    // The abandoned leases run out now: the survivors must reap them.
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    for id in &abandoned {
        common::clock::age_tunnel(&db, id.parse::<Uuid>().unwrap(), Duration::from_secs(6)).await;
    }
    eventually(
        SOON,
        "the survivors to reap the abandoned leases",
        || async {
            let failed = failures(&db, &abandoned).await;
            (failed == abandoned.len() as i64)
                .then_some(())
                .ok_or(failed)
        },
    )
    .await;

    // A rolling restart of the second replica, under the same load.
    process::terminate(restarted);
    let mut restarted = replica(&url, ports[1]);
    process::ready(&bases[1], &mut restarted).await;
    load.renewed(&kept, "every kept tunnel renewed after the restart")
        .await;
    let statuses = load.statuses();
    let acked = load.stop().await;
    eprintln!("answers through the balancer: {statuses:?}");

    assert_stored(&db, &acked).await;
    assert_eq!(failures(&db, &kept).await, 0, "a kept tunnel failed");
    assert_eq!(
        transitioned_twice(&db).await,
        0,
        "a tunnel was transitioned twice"
    );

    // The stream on the survivor: every event of the log, in order, each once.
    let logged = lb.events(&user.token, 0).await;
    let expected: Vec<i64> = (1..=logged.len() as i64).collect();
    assert_eq!(
        logged
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        expected,
        "the log has gaps"
    );
    // token, 35 creations, 30 activations, 5 failures
    assert_eq!(logged.len(), 1 + 35 + 30 + 5);
    let mut streamed = Vec::new();
    for _ in &expected {
        let frame = stream
            .event(SOON, "the next event on the survivor's stream")
            .await;
        streamed.push(frame.id.as_deref().unwrap().parse::<i64>().unwrap());
    }
    assert!(stream
        .events_until_quiet(Duration::from_millis(300))
        .await
        .is_empty());
    assert_eq!(streamed, expected, "the stream skipped or repeated events");

    let created = lb.tunnel(&user.token, json!({"requestedPort": 1})).await;
    assert_eq!(created["status"], "creating");
    assert_eq!(
        send_checked(lb.client.get(format!("{}/readyz", bases[1])))
            .await
            .status(),
        StatusCode::OK
    );
    process::terminate(restarted);
    process::terminate(survivor);
}
