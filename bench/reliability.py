#!/usr/bin/env python3
"""Faults injected into a real Warren and PostgreSQL, with the figures for RELIABILITY.md.

Starts its own PostgreSQL (the machine's binaries) and release-built Warren processes, then:

1. kills PostgreSQL (immediate shutdown) under heartbeat load, restarts it, and compares
   every acknowledged heartbeat with what is stored; times the 503s and the recovery;
2. stops PostgreSQL for longer than the lease TTL while agents keep trying, and counts the
   tunnels that failed although their agent resumed (the outage grace);
3. kills -9 one of two Warren processes sharing the database under load, then SIGTERMs the
   survivor under load: what was acknowledged, what was transitioned twice, drain time;
4. times logins with a wrong password against logins with an unknown email.

Run: `python3 bench/reliability.py` (add `--no-write` to leave RELIABILITY.md alone).
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from heartbeat import ROOT, WARREN, Postgres, free_port, http_json, wait_http, write_section  # noqa: E402

PASSWORD = "reliability password 123"


class Warren:
    def __init__(self, pg, workdir, db, ttl=60, name="warren"):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, DATABASE_URL=pg.url.rsplit("/", 1)[0] + "/" + db,
                   WARREN_LISTEN=f"127.0.0.1:{self.port}", WARREN_DATA_DIR=os.path.join(workdir, name),
                   WARREN_JWT_SECRET="reliability-secret-reliability-secret", WARREN_ALLOW_REGISTRATION="true",
                   WARREN_LOGIN_ATTEMPTS_PER_MINUTE="100000", WARREN_LEASE_TTL_SECS=str(ttl), RUST_LOG="warn")
        self.proc = subprocess.Popen([WARREN, "serve"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(workdir, name + ".log"), "w"))
        wait_http(self.base + "/readyz")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def request(port, method, path, body=None, token=None, conn=None):
    """One request; (status, body dict or None, seconds, connection to reuse)."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    start = time.perf_counter()
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        took = time.perf_counter() - start
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return r.status, parsed, took, conn
    except (OSError, http.client.HTTPException):
        conn.close()
        return None, None, time.perf_counter() - start, None


def account(w, pg, db, n_tunnels):
    http_json(w.base, "POST", "/v1/auth/register", {"email": "ops@example.com", "password": PASSWORD})
    jwt = http_json(w.base, "POST", "/v1/auth/login", {"email": "ops@example.com", "password": PASSWORD})["accessToken"]
    token = http_json(w.base, "POST", "/v1/tokens",
                      {"name": "agents", "scopes": ["tunnels:read", "tunnels:write", "tunnels:heartbeat"]}, jwt)["token"]
    ids = [http_json(w.base, "POST", "/v1/tunnels", {"requestedPort": 8000}, token)["id"] for _ in range(n_tunnels)]
    return token, ids


class Load:
    """Heartbeat workers: each renews its share of `ids` in a loop (or every `pause` s),
    remembering the newest acknowledged renewal per tunnel and every answer's status."""

    def __init__(self, ports, token, ids, workers, pause=0.0):
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}
        self.log = []  # (wall time, status or None, seconds, port)
        self.threads = []
        for w in range(workers):
            mine = ids[w::workers]
            port = ports[w % len(ports)]
            t = threading.Thread(target=self.run, args=(port, token, mine, pause), daemon=True)
            t.start()
            self.threads.append(t)

    def run(self, port, token, ids, pause):
        conn = None
        i = 0
        while not self.stop_flag.is_set():
            tid = ids[i % len(ids)]
            i += 1
            status, body, took, conn = request(port, "POST", f"/v1/tunnels/{tid}/heartbeat", token=token, conn=conn)
            with self.lock:
                self.log.append((time.time(), status, took, port))
                if status == 200:
                    at = body["lease"]["lastHeartbeatAt"]
                    if at > self.acked.get(tid, ""):
                        self.acked[tid] = at
            if status is None:
                time.sleep(0.05)
            if pause:
                self.stop_flag.wait(pause)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(35)


def lost(pg, db, acked):
    """Acknowledged renewals the database does not hold (stored older than acknowledged)."""
    rows = pg.psql("SELECT id || ' ' || coalesce(to_char(last_heartbeat_at AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '') FROM tunnels", db)
    # (partition, not split: psql's output is stripped, so a last row without a heartbeat
    # loses its trailing space)
    stored = {tid: at for tid, _, at in (line.partition(" ") for line in rows.splitlines() if line)}
    # A tunnel that ended meanwhile has no heartbeat any more: it cannot have lost one by
    # being renewed backwards, so only live rows are compared.
    return sum(1 for tid, at in acked.items() if stored.get(tid) and stored[tid] < at)


def pg_restart(pg):
    opts = f"-p {pg.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300"
    pg.run("pg_ctl", "-D", pg.dir + "/data", "-l", pg.dir + "/log", "-w", "-o", opts, "start")


def median_ms(xs):
    return statistics.median(xs) * 1000 if xs else float("nan")


def postgres_killed(pg, workdir):
    pg.psql("CREATE DATABASE killed")
    w = Warren(pg, workdir, "killed", name="killed")
    token, ids = account(w, pg, "killed", 50)
    load = Load([w.port], token, ids, workers=16)
    time.sleep(3)
    before = len(load.log)
    pg.stop()
    down_at = time.time()
    time.sleep(5)
    pg_restart(pg)
    up_at = time.time()
    while not any(t > up_at and s == 200 for t, s, _, _ in load.log[-200:]):
        time.sleep(0.05)
        if time.time() - up_at > 30:
            break
    first_ok = min((t for t, s, _, _ in load.log if t > up_at and s == 200), default=float("nan"))
    time.sleep(2)
    load.stop()
    w.stop()
    during = [(s, took) for t, s, took, _ in load.log if down_at <= t - took and t <= up_at]
    refused = [took for s, took in during if s == 503]
    return {
        "requests": len(load.log), "before": before, "during": len(during),
        "during_503": len(refused), "during_other": sum(1 for s, _ in during if s not in (503, None)),
        "p50_503_ms": median_ms(refused), "max_503_ms": max(refused, default=0) * 1000,
        "recovery_s": first_ok - up_at, "acked": len(load.acked), "lost": lost(pg, "killed", load.acked),
    }


def outage_grace(pg, workdir, ttl=6):
    pg.psql("CREATE DATABASE grace")
    w = Warren(pg, workdir, "grace", ttl=ttl, name="grace")
    token, ids = account(w, pg, "grace", 40)
    resuming, abandoned = ids[:30], ids[30:]
    agents = Load([w.port], token, resuming, workers=30, pause=ttl / 3)
    time.sleep(ttl / 2)
    pg.stop()
    time.sleep(ttl + 4)
    pg_restart(pg)
    time.sleep(ttl * 2 + 3)  # past the grace: the abandoned leases must have run out by now
    agents.stop()
    w.stop()
    failed = pg.psql("SELECT id FROM tunnels WHERE status = 'failed'", "grace").split()
    return {"ttl": ttl, "outage": ttl + 4, "resuming": len(resuming),
            "resuming_failed": sum(1 for i in resuming if i in failed),
            "abandoned": len(abandoned), "abandoned_failed": sum(1 for i in abandoned if i in failed),
            "requests": len(agents.log)}


def replica_killed(pg, workdir, ttl=5):
    pg.psql("CREATE DATABASE replicas")
    a = Warren(pg, workdir, "replicas", ttl=ttl, name="replica-a")
    b = Warren(pg, workdir, "replicas", ttl=ttl, name="replica-b")
    token, ids = account(a, pg, "replicas", 60)
    abandoned = ids[:10]  # never heartbeated: the survivor's reaper must expire each once
    load = Load([a.port, b.port], token, ids[10:], workers=16)
    time.sleep(2)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    time.sleep(ttl + 3)
    survivor = [s for _, s, _, port in load.log if port == b.port][-500:]
    survivor_ok = sum(1 for s in survivor if s == 200)
    term_at = time.time()
    b.proc.send_signal(signal.SIGTERM)
    b.proc.wait(30)
    drain_s = time.time() - term_at
    load.stop()
    twice = pg.psql("SELECT count(*) FROM (SELECT tunnel_id, to_status FROM tunnel_transitions "
                    "GROUP BY 1, 2 HAVING count(*) > 1) x", "replicas")
    failed = pg.psql("SELECT id FROM tunnels WHERE status = 'failed'", "replicas").split()
    return {"requests": len(load.log), "acked": len(load.acked), "lost": lost(pg, "replicas", load.acked),
            "twice": int(twice), "survivor_ok": survivor_ok, "drain_s": drain_s, "exit": b.proc.returncode,
            "reaped": sum(1 for i in abandoned if i in failed), "abandoned": len(abandoned)}


def login_timing(pg, workdir, rounds=40):
    pg.psql("CREATE DATABASE logins")
    w = Warren(pg, workdir, "logins", name="logins")
    http_json(w.base, "POST", "/v1/auth/register", {"email": "known@example.com", "password": PASSWORD})
    wrong, unknown, bodies = [], [], set()
    conn = None
    for i in range(rounds):
        for email, into in (("known@example.com", wrong), (f"nobody{i}@example.com", unknown)):
            status, body, took, conn = request(w.port, "POST", "/v1/auth/login",
                                               {"email": email, "password": "not the password"}, conn=conn)
            assert status == 401, status
            bodies.add(body["detail"])
            into.append(took)
    w.stop()
    return {"rounds": rounds, "wrong_ms": median_ms(wrong), "unknown_ms": median_ms(unknown),
            "ratio": statistics.median(unknown) / statistics.median(wrong), "same_answer": len(bodies) == 1}


def render(r, schemathesis):
    k, g, rep, lg = r["killed"], r["grace"], r["replicas"], r["logins"]
    lines = [
        "## Faults injected",
        "",
        "`bench/reliability.py` (release binary, PostgreSQL 15 on the same 2-core host; one run, "
        f"{time.strftime('%Y-%m-%d')}). Rerun: `python3 bench/reliability.py`. The same faults are "
        "asserted by the tests (`tests/outage.rs`, `tests/grace.rs`, `tests/faults.rs`, `tests/agent.rs`); "
        "this run only measures them.",
        "",
        "| fault | requests made | acknowledged writes lost | other figures |",
        "|---|---:|---:|---|",
        f"| PostgreSQL killed (immediate shutdown) under heartbeat load, down 5 s | {k['requests']:,} "
        f"({k['during']:,} while down) | **{k['lost']}** of {k['acked']} tunnels' newest acks | "
        f"while down: {k['during_503']:,} answered 503, {k['during_other']} anything else; 503 p50 "
        f"{k['p50_503_ms']:.1f} ms, max {k['max_503_ms']:.0f} ms (the first requests find the database gone; the rest are refused by the closed gate); "
        f"first 200 {k['recovery_s']:.2f} s after PostgreSQL was back |",
        f"| PostgreSQL down {g['outage']} s with a lease TTL of {g['ttl']} s, agents retrying | "
        f"{g['requests']:,} | 0 (nothing acknowledged while down) | tunnels failed although their agent "
        f"resumed: **{g['resuming_failed']}** of {g['resuming']}; abandoned tunnels expired after the grace: "
        f"{g['abandoned_failed']} of {g['abandoned']} |",
        f"| `kill -9` of one of two Warren processes under load, then SIGTERM of the survivor under load | "
        f"{rep['requests']:,} | **{rep['lost']}** of {rep['acked']} | tunnels transitioned twice: "
        f"**{rep['twice']}**; abandoned leases reaped by the survivor: {rep['reaped']} of {rep['abandoned']}; survivor answered {rep['survivor_ok']} of its last 500 with 200 after the kill; "
        f"SIGTERM drained and exited ({rep['exit']}) in {rep['drain_s']:.2f} s |",
        "",
        f"**Login timing** ({lg['rounds']} alternating attempts each): wrong password p50 "
        f"{lg['wrong_ms']:.1f} ms, unknown email p50 {lg['unknown_ms']:.1f} ms, ratio {lg['ratio']:.2f}; "
        f"the same answer both ways: {'yes' if lg['same_answer'] else 'NO'}.",
        "",
    ]
    if schemathesis:
        lines += [f"**Schemathesis** (`.ci/run`): {schemathesis}", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--schemathesis", default="", help="the summary line of the last schemathesis run")
    args = ap.parse_args()
    if not (args.no_build and os.path.exists(WARREN)):
        subprocess.run(["cargo", "build", "--release", "--bin", "warren"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="warren-reliability-")
    pg = Postgres(workdir)
    try:
        results = {}
        for name, run in (("logins", login_timing), ("killed", postgres_killed), ("grace", outage_grace),
                          ("replicas", replica_killed)):
            print(f"--- {name}", flush=True)
            results[name] = run(pg, workdir)
            print(json.dumps(results[name]), flush=True)
        text = render(results, args.schemathesis)
        print(text)
        if not args.no_write:
            write_section(os.path.join(ROOT, "RELIABILITY.md"), "## Faults injected", text)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
