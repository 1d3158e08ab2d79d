#!/usr/bin/env python3
"""Event stream benchmark: commit-to-delivery latency with many open streams.

Starts its own PostgreSQL and a release Warren on loopback, registers a user, then runs the
client in benches/event_stream.rs: it opens STREAMS event streams (default 1,000), and once
all are open creates tunnels at a steady rate; each creation commits a `tunnel.created.v1`
event that every stream must receive. The latency of one delivery is from sending the
request that commits the event to the event's arrival on a stream (so it includes the
request's own work: an upper bound of commit -> delivery). Several rounds, each reported,
and the median round in BENCHMARKS.md.

Needs: PostgreSQL server binaries; `cargo build --release` and the bench client are built here.
Usage: bench/events.py [--streams 1000] [--events 200] [--rate 20] [--rounds 3] [--no-write]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, Postgres, free_port, http_json, start_warren, write_section  # noqa: E402

PASSWORD = "bench-password-0000"


def raise_fd_limit():
    """A thousand streams are a thousand sockets on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def client_binary():
    out = subprocess.run(["cargo", "bench", "--bench", "event_stream", "--no-run", "--message-format", "json"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "event_stream" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("the bench client was not built")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    raise_fd_limit()
    subprocess.run(["cargo", "build", "--release", "--bin", "warren"], cwd=ROOT, check=True)
    client = client_binary()
    workdir = tempfile.mkdtemp(prefix="warren-bench-events-")
    pg = Postgres(workdir)
    rounds = []
    try:
        pg.psql("CREATE DATABASE warren")
        port = free_port()
        warren = start_warren(pg, workdir, port, "warren")
        base = f"http://127.0.0.1:{port}"
        try:
            http_json(base, "POST", "/v1/auth/register", {"email": "bench@example.com", "password": PASSWORD})
            login = http_json(base, "POST", "/v1/auth/login", {"email": "bench@example.com", "password": PASSWORD})
            token = http_json(base, "POST", "/v1/tokens",
                              {"name": "bench", "scopes": ["tunnels:write", "events:read"]},
                              login["accessToken"])["token"]
            for i in range(args.rounds):
                out = subprocess.run([client, "--url", base, "--token", token, "--streams", str(args.streams),
                                      "--events", str(args.events), "--rate", str(args.rate)],
                                     check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                print(f"round {i + 1}: {result}", flush=True)
                rounds.append(result)
        finally:
            warren.terminate()
            warren.wait(timeout=30)
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    median = sorted(rounds, key=lambda r: r["p99_ms"])[len(rounds) // 2]
    text = render(args, rounds, median)
    print(text)
    if not args.no_write:
        write_section(os.path.join(ROOT, "BENCHMARKS.md"), "## Event stream", text)


def render(args, rounds, median):
    lost = sum(r["deliveries_expected"] - r["deliveries_received"] for r in rounds)
    p99s = ", ".join(f"{r['p99_ms']:.1f}" for r in rounds)
    lines = [
        "## Event stream",
        "",
        f"`bench/events.py`: {args.streams:,} open `GET /v1/events/stream` readers on one Warren "
        f"(release build) and one PostgreSQL on loopback; {args.events} tunnels created at "
        f"{args.rate:g}/s, each committing a `tunnel.created.v1` that every reader must receive. "
        "Latency is from sending the request that commits the event to its arrival on a stream "
        "(an upper bound of commit -> delivery). The client is benches/event_stream.rs. "
        f"{len(rounds)} rounds; the median round by p99, then every round.",
        "",
        "| | p50 | p90 | p99 | max | deliveries | target |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| median round | {median['p50_ms']:.1f} ms | {median['p90_ms']:.1f} ms | {median['p99_ms']:.1f} ms | "
        f"{median['max_ms']:.1f} ms | {median['deliveries_received']:,} of {median['deliveries_expected']:,} | p99 ≤ 100 ms |",
        *[f"| round {i + 1} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
          f"{r['deliveries_received']:,} | |" for i, r in enumerate(rounds)],
        "",
        f"Deliveries missing over all rounds: {lost}. p99 over the rounds: {p99s} ms "
        f"(median {statistics.median(r['p99_ms'] for r in rounds):.1f} ms).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
