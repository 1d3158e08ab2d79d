//! The event stream under many readers: the client side of `bench/events.py`.
//!
//! Opens `--streams` event streams on a running Warren, waits until every one is open, then
//! creates `--events` tunnels at `--rate` a second and measures, for every stream and every
//! tunnel, the time from sending the request that commits the event to the event's arrival
//! on the stream (an upper bound of commit → delivery: it includes the request's own work).
//! Prints one JSON object with the percentiles.
//!
//! `cargo bench --bench event_stream -- --url http://127.0.0.1:8080 --token wrn_… [--streams 1000]`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, Barrier};
use warren::sse::Frames;

struct Args {
    url: String,
    token: String,
    streams: usize,
    events: usize,
    rate: f64,
}

fn args() -> Args {
    let mut args = Args {
        url: String::new(),
        token: String::new(),
        streams: 1000,
        events: 200,
        rate: 20.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--url" => args.url = value(),
            "--token" => args.token = value(),
            "--streams" => args.streams = value().parse().expect("a number"),
            "--events" => args.events = value().parse().expect("a number"),
            "--rate" => args.rate = value().parse().expect("a number"),
            // cargo bench passes --bench
            _ => {}
        }
    }
    assert!(
        !args.url.is_empty() && !args.token.is_empty(),
        "--url and --token are required"
    );
    args
}

/// (tunnel id, arrival) for every event a stream receives.
type Arrival = (String, Instant);

async fn stream(
    client: reqwest::Client,
    url: String,
    token: String,
    ready: Arc<Barrier>,
    arrivals: mpsc::UnboundedSender<Arrival>,
) {
    let response = client
        .get(format!("{url}/v1/events/stream?types=tunnel.created.v1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the stream opens");
    assert!(response.status().is_success(), "{}", response.status());
    ready.wait().await;
    let mut response = response;
    let mut frames = Frames::default();
    while let Ok(Some(bytes)) = response.chunk().await {
        frames.push(&bytes);
        while let Some(frame) = frames.next_frame() {
            if frame.event.is_none() {
                continue;
            }
            let at = Instant::now();
            let event: Value = serde_json::from_str(&frame.data).unwrap_or(Value::Null);
            if let Some(subject) = event["subject"].as_str() {
                if arrivals.send((subject.to_owned(), at)).is_err() {
                    return;
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.streams + 16)
        .build()
        .unwrap();
    let ready = Arc::new(Barrier::new(args.streams + 1));
    let (arrivals, mut received) = mpsc::unbounded_channel();
    let opening = Instant::now();
    for _ in 0..args.streams {
        tokio::spawn(stream(
            client.clone(),
            args.url.clone(),
            args.token.clone(),
            ready.clone(),
            arrivals.clone(),
        ));
    }
    drop(arrivals);
    ready.wait().await;
    let opened_in = opening.elapsed();

    let writer = reqwest::Client::new();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let pace = Duration::from_secs_f64(1.0 / args.rate);
    let mut ticker = tokio::time::interval(pace);
    for i in 0..args.events {
        ticker.tick().await;
        let at = Instant::now();
        let created: Value = writer
            .post(format!("{}/v1/tunnels", args.url))
            .bearer_auth(&args.token)
            .json(&json!({"requestedPort": 1000 + i}))
            .send()
            .await
            .expect("the tunnel is created")
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().expect("a tunnel id").to_owned();
        sent.insert(id, at);
    }
    // Everything should have arrived long before this.
    let expected = args.events * args.streams;
    let mut latencies = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some((subject, at))) => {
                if let Some(start) = sent.get(&subject) {
                    latencies.push(at.duration_since(*start).as_secs_f64() * 1000.0);
                }
            }
            _ => break,
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let summary = json!({
        "streams": args.streams,
        "events": args.events,
        "rate_per_s": args.rate,
        "deliveries_expected": expected,
        "deliveries_received": latencies.len(),
        "streams_opened_in_ms": opened_in.as_secs_f64() * 1000.0,
        "p50_ms": percentile(&latencies, 50.0),
        "p90_ms": percentile(&latencies, 90.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
    });
    println!("{summary}");
}
