#!/usr/bin/env python3
"""Heartbeat benchmark: Warren against etcd lease keep-alives and a pgbench baseline.

Starts its own PostgreSQL, Warren (release build) and etcd, all on loopback, then drives
`wrk` (64 connections) at each in the same run and writes the table to BENCHMARKS.md:

  (a) Warren's GET /healthz            - the HTTP ceiling of the process
  (b) Warren's heartbeats              - POST /v1/tunnels/{id}/heartbeat over 10,000 tunnels
  (c) etcd's lease keep-alive          - POST /v3/lease/keepalive over 10,000 leases (JSON gateway)
  (d) pgbench, one UPDATE per heartbeat - the single-row write rate, no HTTP/JSON/auth
  (e) a 100,000-lease reap             - time until all are transitioned, heartbeat p99 meanwhile
  (f) Warren's peak RSS with 100,000 live tunnels under heartbeat load

(a), (b) and (c) take turns for several rounds and each is reported as its median round: the
machine is shared, and its speed drifts within a run.

Needs: PostgreSQL server binaries, wrk, etcd (Debian: postgresql, wrk, etcd-server).
Usage: bench/heartbeat.py [--rounds 5] [--duration 10] [--connections 64] [--no-write]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, WARREN, Postgres, free_port, http_json, start_warren, write_section  # noqa: E402


WARMUP_SECS = 3


def wrk(url, lua, duration, connections, threads=2, warmup=WARMUP_SECS):
    """Runs wrk for `duration` seconds after a discarded `warmup` against the same target (every
    target gets the same: caches filled, first writes to fresh pages and connection setup done)."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(lua)
    script.close()
    for secs in ([warmup] if warmup else []) + [duration]:
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{secs}s", "--latency",
                              "-s", script.name, url], check=True, capture_output=True, text=True).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else "", "raw": out}


def median_run(runs):
    """The median of each figure over the runs, and every run's requests/s."""
    return {"rps": statistics.median(r["rps"] for r in runs), "p50": statistics.median(r["p50"] for r in runs),
            "p99": statistics.median(r["p99"] for r in runs), "non2xx": sum(r["non2xx"] for r in runs),
            "socket_errors": " ".join(r["socket_errors"] for r in runs if r["socket_errors"]),
            "each_rps": [r["rps"] for r in runs]}


def ids_lua(ids_file, path_fmt, body, headers):
    hdrs = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    return f"""
local ids = {{}}
for line in io.lines("{ids_file}") do ids[#ids + 1] = line end
local n = 0
wrk.method = "POST"
{hdrs}
function setup(thread) thread:set("offset", math.random(1, #ids)) end
request = function()
  n = n + 1
  local id = ids[((offset + n) % #ids) + 1]
  return wrk.format(nil, string.format("{path_fmt}", id), nil, string.format({json.dumps(body)}, id))
end
"""


def rss_peak_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def cpu_seconds(pids):
    """User + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(pg):
    postmaster = open(os.path.join(pg.dir, "data", "postmaster.pid")).read().split()[0]
    children = subprocess.run(["pgrep", "-P", postmaster], capture_output=True, text=True).stdout.split()
    return [postmaster, *children]


def batch_sizes(base):
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    total = float(re.search(r"^warren_heartbeat_batch_size_sum (\S+)", text, re.M).group(1))
    count = float(re.search(r"^warren_heartbeat_batch_size_count (\S+)", text, re.M).group(1))
    single = float(re.search(r'^warren_heartbeat_batch_size_bucket\{le="1"\} (\S+)', text, re.M).group(1))
    return total / count, single / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5, help="turns each of (a), (b), (c) takes")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--tunnels", type=int, default=10_000)
    ap.add_argument("--reap", type=int, default=100_000)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--flushes", default="1,2,4", help="WARREN_HEARTBEAT_FLUSHES values to compare in (b')")
    args = ap.parse_args()
    args.flushes = [int(f) for f in args.flushes.split(",") if f]
    for tool in ("wrk", "etcd"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install wrk etcd-server")
    if not (args.no_build and os.path.exists(WARREN)):
        subprocess.run(["cargo", "build", "--release", "--bin", "warren"], cwd=ROOT, check=True)

    workdir = tempfile.mkdtemp(prefix="warren-bench-")
    procs = []
    pg = Postgres(workdir)
    results = {}
    try:
        pg.psql("CREATE DATABASE warren")
        port = free_port()
        warren = start_warren(pg, workdir, port, "warren")
        procs.append(warren)
        base = f"http://127.0.0.1:{port}"
        http_json(base, "POST", "/v1/auth/register", {"email": "bench@example.com", "password": "bench password 123"})
        jwt = http_json(base, "POST", "/v1/auth/login", {"email": "bench@example.com", "password": "bench password 123"})["accessToken"]
        token = http_json(base, "POST", "/v1/tokens", {"name": "bench", "scopes": ["tunnels:heartbeat", "tunnels:write"]}, jwt)["token"]
        account = pg.psql("SELECT account_id FROM users", "warren")
        pg.psql(f"""INSERT INTO tunnels (id, account_id, slug, status, requested_port, lease_expires_at)
                    SELECT gen_random_uuid(), '{account}', 'bench-' || i, 'active', 8000, now() + interval '1 day'
                    FROM generate_series(1, {args.tunnels}) i""", "warren")
        ids_file = os.path.join(workdir, "ids.txt")
        with open(ids_file, "w") as f:
            f.write(pg.psql("SELECT id FROM tunnels WHERE slug LIKE 'bench-%'", "warren") + "\n")

        etcd_port, peer_port = free_port(), free_port()
        etcd = subprocess.Popen(["etcd", "--data-dir", os.path.join(workdir, "etcd"), "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                                 "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}", "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(etcd)
        time.sleep(2)
        conn = http.client.HTTPConnection("127.0.0.1", etcd_port)
        lease_ids = []
        for _ in range(args.tunnels):
            conn.request("POST", "/v3/lease/grant", json.dumps({"TTL": 3600}), {"content-type": "application/json"})
            lease_ids.append(json.loads(conn.getresponse().read())["ID"])
        lease_file = os.path.join(workdir, "leases.txt")
        with open(lease_file, "w") as f:
            f.write("\n".join(lease_ids) + "\n")
        etcd_lua = ids_lua(lease_file, "/v3/lease/keepalive", '{"ID": "%s"}', {"Content-Type": "application/json"})

        # (a), (b) and (c) take turns, round after round, so that the machine's drift over the run
        # (it is shared) falls on all three alike; each is reported as its median round.
        hb_lua = ids_lua(ids_file, "/v1/tunnels/%s/heartbeat", "", {"Authorization": f"Bearer {token}"})
        targets = {
            "healthz": (base + "/healthz", 'wrk.method = "GET"\n'),
            "heartbeat": (base, hb_lua),
            "etcd": (f"http://127.0.0.1:{etcd_port}", etcd_lua),
        }
        rounds = {name: [] for name in targets}
        for n in range(args.rounds):
            for name, (url, lua) in targets.items():
                print(f"round {n + 1}/{args.rounds}: {name}", flush=True)
                rounds[name].append(wrk(url, lua, args.duration, args.connections, warmup=WARMUP_SECS if n == 0 else 0))
        for name, runs in rounds.items():
            results[name] = median_run(runs)
        lost = int(pg.psql(f"SELECT count(*) FROM tunnels WHERE slug LIKE 'bench-%' AND last_heartbeat_at IS NULL", "warren"))
        results["heartbeat"]["never_renewed"] = lost

        print("(b') heartbeats by flushes in flight, with the CPU each side used", flush=True)
        results["flushes"] = {}
        for flushes in args.flushes:
            fport = free_port()
            variant = start_warren(pg, workdir, fport, "warren", WARREN_HEARTBEAT_FLUSHES=str(flushes))
            wrk(f"http://127.0.0.1:{fport}", hb_lua, WARMUP_SECS, args.connections, warmup=0)
            before = (cpu_seconds([variant.pid]), cpu_seconds(postgres_pids(pg)))
            r = wrk(f"http://127.0.0.1:{fport}", hb_lua, args.duration, args.connections, warmup=0)
            after = (cpu_seconds([variant.pid]), cpu_seconds(postgres_pids(pg)))
            mean, single = batch_sizes(f"http://127.0.0.1:{fport}")
            done = r["rps"] * args.duration
            r.update(batch_mean=mean, batch_single=single, warren_us=(after[0] - before[0]) / done * 1e6,
                     postgres_us=(after[1] - before[1]) / done * 1e6)
            results["flushes"][flushes] = r
            variant.send_signal(signal.SIGTERM)
            variant.wait(timeout=15)

        print("(d) pgbench, one UPDATE per heartbeat", flush=True)
        pg.psql("CREATE DATABASE pgb")
        pg.psql(f"CREATE TABLE leases (id int PRIMARY KEY, expires_at timestamptz); INSERT INTO leases SELECT i, now() FROM generate_series(1, {args.tunnels}) i", "pgb")
        script = os.path.join(workdir, "lease.sql")
        with open(script, "w") as f:
            f.write(f"\\set id random(1, {args.tunnels})\nUPDATE leases SET expires_at = now() + interval '60 seconds' WHERE id = :id;\n")
        out = subprocess.run([os.path.join(pg.bin, "pgbench"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "bench", "-n", "-M", "prepared",
                              "-c", str(args.connections), "-j", "2", "-T", str(args.duration), "-f", script, "pgb"],
                             check=True, capture_output=True, text=True).stdout
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
        lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
        results["pgbench"] = {"rps": tps, "avg": lat}

        print("(e) a 100,000-lease reap under heartbeat load", flush=True)
        pg.psql(f"""INSERT INTO tunnels (id, account_id, slug, status, requested_port, lease_expires_at)
                    SELECT gen_random_uuid(), '{account}', 'reap-' || i, 'active', 8000, date_trunc('second', now()) + interval '12 seconds'
                    FROM generate_series(1, {args.reap}) i""", "warren")
        expiry = float(pg.psql("SELECT extract(epoch FROM min(lease_expires_at)) FROM tunnels WHERE slug LIKE 'reap-%'", "warren"))
        hb_script = os.path.join(workdir, "hb.lua")
        with open(hb_script, "w") as f:
            f.write(hb_lua)
        during = subprocess.Popen(["wrk", "-t", "2", "-c", str(args.connections), "-d", "20s", "--latency", "-s", hb_script, base],
                                  stdout=subprocess.PIPE, text=True)
        reaped_at = None
        while time.time() < expiry + 30:
            left = int(pg.psql("SELECT count(*) FROM tunnels WHERE slug LIKE 'reap-%' AND status = 'active'", "warren"))
            if left == 0 and time.time() > expiry:
                reaped_at = float(pg.psql("SELECT extract(epoch FROM max(at)) FROM tunnel_transitions", "warren"))
                break
            time.sleep(0.2)
        out = during.communicate()[0]
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
        results["reap"] = {"seconds": (reaped_at - expiry) if reaped_at else None, "hb_p99": p99, "hb_rps": rps}

        print("(f) RSS with 100,000 live tunnels under load", flush=True)
        pg.psql(f"""INSERT INTO tunnels (id, account_id, slug, status, requested_port, lease_expires_at)
                    SELECT gen_random_uuid(), '{account}', 'live-' || i, 'active', 8000, now() + interval '1 day'
                    FROM generate_series(1, {args.reap}) i""", "warren")
        big_ids = os.path.join(workdir, "ids-big.txt")
        with open(big_ids, "w") as f:
            f.write(pg.psql("SELECT id FROM tunnels WHERE status = 'active'", "warren") + "\n")
        wrk(base, ids_lua(big_ids, "/v1/tunnels/%s/heartbeat", "", {"Authorization": f"Bearer {token}"}), min(args.duration, 15), args.connections,
            warmup=0)
        results["rss_kb"] = rss_peak_kb(warren.pid)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "raw"} if isinstance(v, dict) else v for k, v in results.items()}))
    report = render(results, args)
    print(report)
    if not args.no_write:
        write_section(os.path.join(ROOT, "BENCHMARKS.md"), "## Heartbeat pipeline", report)


def render(r, args):
    hz, hb, et, pb, reap = r["healthz"], r["heartbeat"], r["etcd"], r["pgbench"], r["reap"]
    def row(name, x):
        return f"| {name} | {x['rps']:,.0f} | {x.get('p50', float('nan')):.2f} | {x.get('p99', float('nan')):.2f} |"
    lines = [
        "## Heartbeat pipeline",
        "",
        f"`bench/heartbeat.py` on {time.strftime('%Y-%m-%d')}: one run, everything on loopback on this 2-core machine, "
        f"wrk with {args.connections} connections, {args.tunnels:,} tunnels / leases. (a), (b) and (c) took turns for "
        f"{args.rounds} rounds of {args.duration} s each (after a discarded {WARMUP_SECS} s warm-up against each target); "
        "each row is the median round, and the ratios are ratios of those medians.",
        "",
        "| what | requests/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
        row("(a) Warren `GET /healthz`", hz),
        row("(b) Warren heartbeats (API token)", hb),
        row("(c) etcd 3.4 lease keep-alive (JSON gateway)", et),
        f"| (d) pgbench, one `UPDATE` per heartbeat | {pb['rps']:,.0f} | avg {pb['avg']:.2f} | |",
        "",
        "| ratio | target | measured |",
        "| --- | --- | --- |",
        f"| heartbeats / etcd keep-alives | ≥ 2.5 | {hb['rps'] / et['rps']:.2f} |",
        f"| heartbeats / Warren `/healthz` | ≥ 0.5 | {hb['rps'] / hz['rps']:.2f} |",
        f"| heartbeats / pgbench single-row UPDATEs | | {hb['rps'] / pb['rps']:.2f} |",
        f"| heartbeat p99 at {args.connections} connections | ≤ 15 ms | {hb['p99']:.2f} ms |",
        f"| time to reap {args.reap:,} leases expiring together | ≤ 5 s | {reap['seconds']:.2f} s |" if reap["seconds"] is not None else f"| time to reap {args.reap:,} leases | ≤ 5 s | not finished within 30 s |",
        f"| heartbeat p99 during that reap | ≤ 50 ms | {reap['hb_p99']:.2f} ms ({reap['hb_rps']:,.0f} req/s) |",
        f"| Warren peak RSS, {args.reap + args.tunnels:,} live tunnels under load | ≤ 150 MB | {r['rss_kb'] / 1024:.0f} MB |",
        "",
        "Requests/s of each round: " + "; ".join(
            f"{name} " + ", ".join(f"{x:,.0f}" for x in r[key]["each_rps"]) for name, key in
            (("(a)", "healthz"), ("(b)", "heartbeat"), ("(c)", "etcd"))) + ".",
        "",
        f"Heartbeat answers other than 2xx: {hb['non2xx']}; tunnels never renewed during (b): {hb['never_renewed']}.",
        "",
        "(b') The same heartbeat load against a fresh Warren process per `WARREN_HEARTBEAT_FLUSHES` value "
        "(batches that may be committing at once), with the CPU time each process used per heartbeat:",
        "",
        "| flushes in flight | requests/s | p50 ms | p99 ms | mean batch | batches of 1 | Warren CPU µs/heartbeat | PostgreSQL CPU µs/heartbeat |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {f} | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} | {x['batch_mean']:.1f} | {x['batch_single']:.0%} | "
          f"{x['warren_us']:.0f} | {x['postgres_us']:.0f} |" for f, x in r.get("flushes", {}).items()],
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
