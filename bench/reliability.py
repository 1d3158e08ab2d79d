#!/usr/bin/env python3
"""Faults injected into a real Warren and PostgreSQL, with the figures for RELIABILITY.md.

Starts its own PostgreSQL (the machine's binaries) and release-built Warren processes, then:

1. kills PostgreSQL (immediate shutdown) under heartbeat load, restarts it, and compares
   every acknowledged heartbeat with what is stored; times the 503s and the recovery;
2. stops PostgreSQL for longer than the lease TTL while agents keep trying, and counts the
   tunnels that failed although their agent resumed (the outage grace);
3. kills -9 one of two Warren processes sharing the database under load, then SIGTERMs the
   survivor under load: what was acknowledged, what was transitioned twice, drain time;
4. times logins with a wrong password against logins with an unknown email;
5. (`replicas3`) runs three Warren processes on one database behind a round-robin balancer
   (Debian's haproxy, /usr/sbin/haproxy: `apt-get install haproxy`; this scenario needs it),
   agents heartbeating through it for 30 s, `kill -9` of one replica at 10 s and a rolling
   restart (SIGTERM, start again on the same port) of another at 15 s, tunnels abandoned
   before and at the kill, and an event stream on the third replica for the whole run:
   acknowledged heartbeats lost, tunnels transitioned twice, who reaped, how long the
   balancer kept sending to the dead replica, and whether the stream delivered every event
   of the log exactly once. Its figures go to RELIABILITY.md's "Three replicas behind a
   balancer" section.

Run: `python3 bench/reliability.py` (add `--no-write` to leave RELIABILITY.md alone;
`--only replicas3` runs only scenario 5, `--only logins,killed,grace,replicas` only 1–4).
"""
import argparse
import datetime
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, WARREN, Postgres, free_port, http_json, wait_http  # noqa: E402

PASSWORD = "reliability password 123"
STARTED = []  # every Warren and haproxy process, killed at the end if still running


def replace_section(path, heading, text, after=None):
    """Like benchlib's write_section, but keeps the file's order: the section `heading` is
    replaced where it stands; a new one goes right after the section `after` (or at the end)."""
    old = open(path).read()
    parts = re.split(r"(?m)^(?=## )", old)
    text = text.rstrip() + "\n\n"
    at = next((i for i, p in enumerate(parts) if p.startswith(heading)), None)
    if at is not None:
        parts[at] = text
    else:
        after_at = next((i for i, p in enumerate(parts) if after and p.startswith(after)), None)
        if after_at is None:
            parts[-1] = parts[-1].rstrip() + "\n\n"
            parts.append(text)
        else:
            parts[after_at] = parts[after_at].rstrip() + "\n\n"
            parts.insert(after_at + 1, text)
    with open(path, "w") as f:
        f.write("".join(parts))


class Warren:
    def __init__(self, pg, workdir, db, ttl=60, name="warren", port=None, wait=True):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.started = time.time()
        env = dict(os.environ, DATABASE_URL=pg.url.rsplit("/", 1)[0] + "/" + db,
                   WARREN_LISTEN=f"127.0.0.1:{self.port}", WARREN_DATA_DIR=os.path.join(workdir, name),
                   WARREN_JWT_SECRET="reliability-secret-reliability-secret", WARREN_ALLOW_REGISTRATION="true",
                   WARREN_LOGIN_ATTEMPTS_PER_MINUTE="100000", WARREN_LEASE_TTL_SECS=str(ttl), RUST_LOG="warn")
        self.proc = subprocess.Popen([WARREN, "serve"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(workdir, name + ".log"), "a"))
        STARTED.append(self.proc)
        if wait:
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


HAPROXY = "/usr/sbin/haproxy"


class Balancer:
    """Debian's haproxy in front of `servers` ({name: port}): HTTP mode, round robin per
    request, a health check on /readyz every 200 ms (down after 2 failures, up after 2
    successes), a refused connection retried once on another replica (`retries 1`,
    `option redispatch 1`), and the answering replica named in an `X-Served-By` header."""

    def __init__(self, workdir, servers):
        self.port, self.stats_port = free_port(), free_port()
        lines = [
            "global", "    nbthread 1", "    maxconn 4000", "    log stderr format raw local0 info",
            "defaults", "    mode http", "    log global", "    option httplog", "    option dontlog-normal",
            "    timeout connect 1s", "    timeout client 60s",
            "    timeout server 60s", "    retries 1", "    option redispatch 1",
            "frontend agents", f"    bind 127.0.0.1:{self.port}", "    default_backend warren",
            "    http-after-response set-header X-Served-By %[srv_name]",
            "backend warren", "    balance roundrobin", "    option httpchk GET /readyz",
            "    http-check expect status 200", "    default-server check inter 200ms fall 2 rise 2",
            *[f"    server {name} 127.0.0.1:{port}" for name, port in servers.items()],
            "listen stats", f"    bind 127.0.0.1:{self.stats_port}", "    stats enable", "    stats uri /stats",
        ]
        cfg = os.path.join(workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([HAPROXY, "-c", "-q", "-f", cfg], check=True)
        self.log_path = os.path.join(workdir, "haproxy.log")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "w"))
        STARTED.append(self.proc)
        wait_http(f"http://127.0.0.1:{self.stats_port}/stats")

    def servers(self):
        """{server name: (status, sessions in total)} from the stats page."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2) as r:
            rows = r.read().decode().splitlines()
        head = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            f = dict(zip(head, row.split(",")))
            if f.get("pxname") == "warren" and f.get("svname") not in ("FRONTEND", "BACKEND"):
                out[f["svname"]] = (f["status"], int(f["stot"] or 0))
        return out

    def retried(self, t_from, t_to):
        """Requests accepted in [t_from, t_to) that haproxy retried on another replica (its log
        has only those and the failures: `option dontlog-normal`)."""
        n = 0
        for line in open(self.log_path, errors="replace"):
            m = re.search(r'\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] .* \d+/\d+/\d+/\d+/\+(\d+) \d+/\d+ "', line)
            if m and int(m.group(2)) > 0:
                t = datetime.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S.%f").timestamp()
                n += t_from <= t < t_to
        return n

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def request_via(conn, port, method, path, token):
    """One request through the balancer: (status or None, seconds, replica that served it,
    whether the answer was Warren's JSON, connection to reuse)."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.perf_counter()
    try:
        conn.request(method, path, headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        took = time.perf_counter() - start
        kind = r.getheader("content-type", "")
        return r.status, data, took, r.getheader("x-served-by", ""), "json" in kind, conn
    except (OSError, http.client.HTTPException):
        conn.close()
        return None, b"", time.perf_counter() - start, "", False, None


class BalancedLoad:
    """Heartbeat workers through the balancer, each renewing its share of `ids` in a loop;
    the newest acknowledged renewal per tunnel and every answer (end time, status, seconds,
    replica, Warren's JSON or not)."""

    def __init__(self, port, token, ids, workers):
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}
        self.log = []
        self.threads = [threading.Thread(target=self.run, args=(port, token, ids[w::workers]), daemon=True)
                        for w in range(workers)]
        for t in self.threads:
            t.start()

    def run(self, port, token, ids):
        conn, i = None, 0
        while not self.stop_flag.is_set():
            tid = ids[i % len(ids)]
            i += 1
            status, data, took, served, json_answer, conn = request_via(conn, port, "POST", f"/v1/tunnels/{tid}/heartbeat", token)
            with self.lock:
                self.log.append((time.time(), status, took, served, json_answer))
                if status == 200:
                    at = json.loads(data)["lease"]["lastHeartbeatAt"]
                    if at > self.acked.get(tid, ""):
                        self.acked[tid] = at
            if status is None:
                time.sleep(0.05)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(35)


class EventStream(threading.Thread):
    """GET /v1/events/stream?after=0 on one replica, collecting every event id; reconnects
    (with Last-Event-ID) only if the stream breaks, and counts that."""

    def __init__(self, port, token):
        super().__init__(daemon=True)
        self.port, self.token = port, token
        self.ids, self.reconnects, self.done = [], 0, threading.Event()
        self.conn = None
        self.start()

    def run(self):
        while not self.done.is_set():
            headers = {"authorization": f"Bearer {self.token}", "accept": "text/event-stream"}
            if self.ids:
                headers["last-event-id"] = str(self.ids[-1])
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port)
                self.conn.request("GET", "/v1/events/stream?after=0", headers=headers)
                r = self.conn.getresponse()
                assert r.status == 200, r.status
                while True:
                    line = r.readline()
                    if not line:
                        break
                    if line.startswith(b"id:"):
                        self.ids.append(int(line[3:].strip()))
            except Exception:
                pass
            if not self.done.is_set():
                self.reconnects += 1
                time.sleep(0.2)

    def stop(self):
        self.done.set()
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.join(5)


class Watcher(threading.Thread):
    """Polls the balancer's view of its servers every 100 ms (status changes, timed) and
    every replica's /metrics every 500 ms (reaper transitions to `failed`, per process)."""

    def __init__(self, balancer, replicas):
        super().__init__(daemon=True)
        self.balancer, self.replicas = balancer, replicas  # {incarnation name: Warren}, may grow
        self.changes, self.reaped, self.done = [], {}, threading.Event()
        self.start()

    def run(self):
        last, n = {}, 0
        while not self.done.is_set():
            try:
                for name, (status, _) in self.balancer.servers().items():
                    if last.get(name) != status:
                        self.changes.append((time.time(), name, status))
                        last[name] = status
            except Exception:
                pass
            if n % 5 == 0:
                for name, w in list(self.replicas.items()):
                    if w.proc.poll() is not None:
                        continue
                    try:
                        with urllib.request.urlopen(w.base + "/metrics", timeout=2) as r:
                            text = r.read().decode()
                        self.reaped[name] = sum(float(m) for m in re.findall(
                            r'(?m)^warren_reaper_transitions_total\{[^}]*to="failed"[^}]*\} (\S+)', text))
                    except Exception:
                        pass
            n += 1
            self.done.wait(0.1)

    def stop(self):
        self.done.set()
        self.join(5)


def three_replicas(pg, workdir, ttl=5, duration=30, kill_at=10, restart_at=15, kept_n=80, early_n=10, late_n=10):
    """Three Warren processes (a, b, c) behind haproxy on one database; agents heartbeat
    through it; `kill -9` of a at `kill_at`, a rolling restart of b at `restart_at`; tunnels
    abandoned from the start (reaped while all three run) and at the kill (their leases run out
    while a is dead and b restarts); an event stream on c for the whole run."""
    pg.psql("CREATE DATABASE replicas3")
    a, b, c = (Warren(pg, workdir, "replicas3", ttl=ttl, name=f"replicas3-{n}") for n in "abc")
    lb = Balancer(workdir, {"a": a.port, "b": b.port, "c": c.port})
    base = f"http://127.0.0.1:{lb.port}"
    http_json(base, "POST", "/v1/auth/register", {"email": "ops@example.com", "password": PASSWORD})
    jwt = http_json(base, "POST", "/v1/auth/login", {"email": "ops@example.com", "password": PASSWORD})["accessToken"]
    token = http_json(base, "POST", "/v1/tokens", {"name": "agents", "scopes": ["tunnels:write", "tunnels:heartbeat"]},
                      jwt)["token"]
    stream = EventStream(c.port, jwt)
    ids = [http_json(base, "POST", "/v1/tunnels", {"requestedPort": 8000}, token)["id"]
           for _ in range(early_n + late_n + kept_n)]
    early, late, kept = ids[:early_n], ids[early_n:early_n + late_n], ids[early_n + late_n:]
    watcher = Watcher(lb, {"a": a, "b": b, "c": c})

    t0 = time.time()
    load = BalancedLoad(lb.port, token, kept, workers=16)
    late_load = BalancedLoad(lb.port, token, late, workers=2)
    time.sleep(max(0, t0 + kill_at - time.time()))
    late_load.stop()  # abandoned now: these leases run out while a is dead and b restarts
    kill_t = time.time()
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    time.sleep(max(0, t0 + restart_at - time.time()))
    term_t = time.time()
    b.proc.send_signal(signal.SIGTERM)
    b.proc.wait(30)
    drained_t = time.time()
    b2 = Warren(pg, workdir, "replicas3", ttl=ttl, name="replicas3-b", port=b.port, wait=False)
    while True:
        try:
            with urllib.request.urlopen(b2.base + "/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if time.time() - b2.started > 60:
            sys.exit("the restarted replica did not become ready")
        time.sleep(0.02)
    ready_t = time.time()
    watcher.replicas["b'"] = b2
    time.sleep(max(0, t0 + duration - time.time()))
    load.stop()
    end_t = time.time()

    # every abandoned lease reaped (or 20 s), then the stream drained
    abandoned = early + late
    in_list = "(" + ",".join(f"'{i}'" for i in abandoned) + ")"
    deadline = time.time() + 20
    while int(pg.psql(f"SELECT count(*) FROM tunnels WHERE status = 'failed' AND id IN {in_list}", "replicas3")) < len(abandoned) \
            and time.time() < deadline:
        time.sleep(0.2)
    logged, after = [], 0
    while True:
        status, data, _, _, _, _ = request_via(None, c.port, "GET", f"/v1/events?after={after}&limit=1000", jwt)
        page = [e["id"] for e in json.loads(data)]
        logged += page
        if len(page) < 1000:
            break
        after = page[-1]
    deadline = time.time() + 10
    while len(stream.ids) < len(logged) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # anything more (a duplicate) would come now
    stream.stop()
    time.sleep(0.6)  # one more /metrics scrape
    watcher.stop()
    for w in (b2, c):
        w.stop()
    lb.stop()

    log = load.log + late_load.log
    acked = dict(late_load.acked)
    for tid, at in load.acked.items():
        acked[tid] = max(at, acked.get(tid, ""))
    ok = [x for x in log if x[1] == 200]
    failures = [x for x in log if x[1] != 200]
    durations = sorted(x[2] for x in log)

    def pct(p):
        return durations[min(len(durations) - 1, int(p * len(durations)))] * 1000

    def category(x):
        t, status, _, served, json_answer = x
        if status is None:
            return "connection error"
        if status == 503 and json_answer:
            return "503 from Warren"
        return f"{status} from {'Warren' if json_answer else 'haproxy'}"

    def since(t, window_end):
        """Failed requests in [t, window_end): by category, the last one's time after t, and
        the first whole second after t with none."""
        fs = [x for x in failures if t <= x[0] < window_end]
        cats = {}
        for x in fs:
            cats[category(x)] = cats.get(category(x), 0) + 1
        last = max((x[0] for x in fs), default=None)
        k = 0
        while any(t + k <= x[0] < t + k + 1 for x in fs):
            k += 1
        return {"failed": len(fs), "by": cats, "last_failure_s": None if last is None else last - t,
                "first_clean_second": k}

    def marked(name, status, after_t):
        return next((t - after_t for t, n, s in watcher.changes if n == name and s.startswith(status) and t >= after_t), None)

    served = {"a": 0, "b": 0, "b'": 0, "c": 0, "": 0}
    for x in log:  # a request sent after the first b exited was served by the new one
        name = "b'" if x[3] == "b" and x[0] - x[2] >= drained_t else x[3]
        served[name if name in served else ""] += 1
    served_per_second = {}
    for x in log:
        sec = int(x[0] - t0)
        served_per_second.setdefault(sec, {}).setdefault(x[3] or "-", 0)
        served_per_second[sec][x[3] or "-"] += 1

    reap = pg.psql("SELECT t.id || ' ' || extract(epoch FROM tr.at - t.stopped_at) FROM tunnels t "
                   f"JOIN tunnel_transitions tr ON tr.tunnel_id = t.id AND tr.to_status = 'failed' WHERE t.id IN {in_list}",
                   "replicas3")
    delays = {tid: float(d) for tid, _, d in (line.partition(" ") for line in reap.splitlines() if line)}
    twice = int(pg.psql("SELECT count(*) FROM (SELECT tunnel_id, to_status FROM tunnel_transitions "
                        "GROUP BY 1, 2 HAVING count(*) > 1) x", "replicas3"))
    failed = set(pg.psql("SELECT id FROM tunnels WHERE status = 'failed'", "replicas3").split())
    streamed = stream.ids
    return {
        "ttl": ttl, "duration_s": end_t - t0, "kept": len(kept), "early": len(early), "late": len(late),
        "requests": len(log), "ok": len(ok), "by_status": {k: sum(1 for x in failures if category(x) == k)
                                                           for k in sorted({category(x) for x in failures})},
        "heartbeats_per_s": len(ok) / (end_t - t0), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": durations[-1] * 1000,
        "acked": len(acked), "lost": lost(pg, "replicas3", acked), "twice": twice,
        "compared": sum(1 for i in acked if i not in failed),
        "kept_failed": sum(1 for i in kept if i in failed),
        "early_reaped": sum(1 for i in early if i in failed), "late_reaped": sum(1 for i in late if i in failed),
        "early_delay_max_s": max((delays[i] for i in early if i in delays), default=None),
        "late_delay_max_s": max((delays[i] for i in late if i in delays), default=None),
        "early_delay_median_s": statistics.median([delays[i] for i in early if i in delays] or [float("nan")]),
        "late_delay_median_s": statistics.median([delays[i] for i in late if i in delays] or [float("nan")]),
        "reaped_by": watcher.reaped, "reaped_in_db": len(failed),
        "served": served, "served_per_second": served_per_second,
        "kill": dict(since(kill_t, term_t), marked_down_s=marked("a", "DOWN", kill_t), retried=lb.retried(kill_t, term_t),
                     last_served_by_a_s=max((x[0] for x in log if x[3] == "a"), default=kill_t) - kill_t),
        "restart": dict(since(term_t, end_t), drain_s=drained_t - term_t, exit=b.proc.returncode,
                        retried=lb.retried(term_t, end_t),
                        marked_down_s=marked("b", "DOWN", term_t), ready_s=ready_t - b2.started,
                        marked_up_s=marked("b", "UP", drained_t),
                        first_served_s=min((x[0] for x in log if x[3] == "b" and x[0] - x[2] >= drained_t),
                                           default=float("nan")) - drained_t),
        "retried_before_kill": lb.retried(0, kill_t),
        "balancer_changes": [(round(t - t0, 2), n, s) for t, n, s in watcher.changes],
        "events_logged": len(logged), "log_contiguous": logged == list(range(1, len(logged) + 1)),
        "events_streamed": len(streamed), "stream_duplicates": len(streamed) - len(set(streamed)),
        "stream_missing": len(set(logged) - set(streamed)), "stream_unknown": len(set(streamed) - set(logged)),
        "stream_in_order": streamed == sorted(streamed), "stream_reconnects": stream.reconnects,
        "expected_events": 1 + len(ids) + len(kept) + len(late) + len(abandoned),
        "kill_at": kill_at, "restart_at": restart_at,
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


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


def render_three(r):
    def s(x, fmt="{:.2f}", none="n/a"):
        return none if x is None or x != x else fmt.format(x) + " s"

    def cats(d):
        return ", ".join(f"{n:,} {k}" for k, n in sorted(d.items())) or "none"

    k, rs, sv = r["kill"], r["restart"], r["served"]
    b_again = sv["b'"]
    by_replica = ", ".join(f"{name} {r['reaped_by'].get(name, 0):.0f}" for name in ("a", "b", "b'", "c"))
    conn_errors = r["by_status"].get("connection error", 0)
    other_5xx = sum(n for c, n in r["by_status"].items() if c[:1] == "5" and c != "503 from Warren")
    lines = [
        "## Three replicas behind a balancer",
        "",
        f"`bench/reliability.py --only replicas3` (release binary, PostgreSQL 15 and haproxy 2.6 on the same "
        f"2-core host as everything else here; one run, {r['finished_utc']}). "
        "Rerun: `python3 bench/reliability.py --only replicas3` (needs `/usr/sbin/haproxy`). "
        "`tests/replicas.rs` asserts the same with an in-test proxy; this run measures it.",
        "",
        f"**Method.** Three `warren serve` processes (a, b, c; lease TTL {r['ttl']} s) on one database behind "
        "haproxy in HTTP mode: round robin per request, health check `GET /readyz` every 200 ms (down after "
        "2 failures, up after 2 successes), a refused connection retried once on another replica "
        "(`retries 1`, `option redispatch 1`), no other retry. Through it, 16 agent threads (Python, "
        f"keep-alive connections) renew {r['kept']} tunnels in a loop for {r['duration_s']:.1f} s and record the "
        f"newest acknowledged `lastHeartbeatAt` of each; 2 more renew {r['late']} tunnels until the kill and then "
        f"stop; {r['early']} tunnels are never renewed. At {r['kill_at']} s replica a gets `kill -9`; at "
        f"{r['restart_at']} s replica b gets SIGTERM and, once it has exited, is started again on the same port "
        "(a rolling restart). An event stream (`GET /v1/events/stream?after=0`) is open on c from before the "
        "first tunnel to the end and is compared with the paged log (`GET /v1/events`).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| heartbeat requests made through the balancer | {r['requests']:,}: {r['ok']:,} answered 200, {cats(r['by_status'])} |",
        f"| 5xx other than Warren's 503 / requests without an answer (connection closed or reset) | {other_5xx:,} / {conn_errors:,} |",
        f"| heartbeats acknowledged per second (overall) | {r['heartbeats_per_s']:,.0f} |",
        f"| agent request latency, all answers | p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms |",
        f"| acknowledged heartbeats lost (stored `last_heartbeat_at` older than the newest ack) | **{r['lost']}** of the {r['compared']} tunnels still live ({r['acked'] - r['compared']} acknowledged ones failed as planned, which clears their heartbeat) |",
        f"| tunnels transitioned twice | **{r['twice']}** |",
        f"| renewed tunnels that failed | {r['kept_failed']} of {r['kept']} |",
        f"| abandoned from the start (leases ran out while a, b, c ran) | {r['early_reaped']} of {r['early']} reaped; after their lease ran out: median {s(r['early_delay_median_s'])}, max {s(r['early_delay_max_s'])} |",
        f"| abandoned at the kill (leases ran out with a dead and b restarting) | {r['late_reaped']} of {r['late']} reaped; median {s(r['late_delay_median_s'])}, max {s(r['late_delay_max_s'])} after their lease ran out |",
        f"| reaper transitions to `failed`, per process (`warren_reaper_transitions_total`, last scrape; b' is b after its restart) | {by_replica}; failed tunnels in the database: {r['reaped_in_db']} |",
        f"| requests served, per replica (`X-Served-By`) | a {sv['a']:,} (until killed), b {sv['b']:,}, b' {b_again:,}, c {sv['c']:,}, none {sv['']:,} |",
        f"| `kill -9` of a: failed requests after it | {k['failed']:,} ({cats(k['by'])}); the last {s(k['last_failure_s'], '{:.3f}')} after the kill; first whole second without a failure: from +{k['first_clean_second']} s |",
        f"| `kill -9` of a: requests haproxy retried on another replica (a refused the connection), kill to SIGTERM of b | {k['retried']:,} (before the kill: {r['retried_before_kill']:,}) |",
        f"| `kill -9` of a: balancer marked it down / last request it served | {s(k['marked_down_s'], none='never')} after the kill / its last answer arrived {abs(k['last_served_by_a_s']) * 1000:.1f} ms {'before' if k['last_served_by_a_s'] < 0 else 'after'} the kill |",
        f"| rolling restart of b: SIGTERM drained and exited ({rs['exit']}) in | {s(rs['drain_s'], '{:.3f}')} |",
        f"| rolling restart of b: failed requests from SIGTERM to the end | {rs['failed']:,} ({cats(rs['by'])}){'' if rs['last_failure_s'] is None else '; the last ' + s(rs['last_failure_s'], '{:.3f}') + ' after SIGTERM'}; first whole second without a failure: from +{rs['first_clean_second']} s |",
        f"| rolling restart of b: requests haproxy retried on another replica (b refused the connection) | {rs['retried']:,} |",
        f"| rolling restart of b: ready (`/readyz` 200) after start / balancer marked it up / first request it served | {s(rs['ready_s'], '{:.3f}')} after it was started / {s(rs['marked_up_s'], none='never (it never marked it down)')} / {s(rs['first_served_s'], '{:.3f}')} after the old b exited (balancer marked b down: {s(rs['marked_down_s'], none='never')}{'' if rs['marked_down_s'] is None else ' after SIGTERM'}) |",
        f"| event stream on c: events in the log / received | {r['events_logged']} (ids 1..{r['events_logged']} without gaps: {'yes' if r['log_contiguous'] else 'NO'}; expected {r['expected_events']}) / {r['events_streamed']} |",
        f"| event stream on c: duplicates / missing / not in the log / in order / reconnects | **{r['stream_duplicates']}** / **{r['stream_missing']}** / {r['stream_unknown']} / {'yes' if r['stream_in_order'] else 'NO'} / {r['stream_reconnects']} |",
        "",
    ]
    notes = []
    if conn_errors:
        notes.append(
            f"{conn_errors} request(s) ended without any answer (the agent's connection to haproxy was closed or reset; "
            f"{k['by'].get('connection error', 0)} of them between the kill and b's SIGTERM, the last "
            f"{s(k['last_failure_s'], '{:.3f}')} after the kill), so most likely the requests a had in hand when it "
            "was killed. haproxy sent no 502 for them and logged nothing about them; the agents here do not retry, so "
            "they count as failures. Not acknowledged, they are not part of the loss check.")
    everyone = ("a", "b", "b'", "c")
    names = [n for n in everyone if r["reaped_by"].get(n)]
    idle = [n for n in everyone if n not in names]
    notes.append(
        "Who reaped (the per-process counters above): "
        + ", ".join(f"{n} {r['reaped_by'][n]:.0f}" for n in names)
        + (f", none by {', '.join(idle)}" if idle else "")
        + f"; {r['early']} + {r['late']} abandoned, {r['reaped_in_db']} failed in the database, "
        + f"{r['twice']} transitioned twice, {r['kept_failed']} renewed ones failed.")
    if rs["marked_down_s"] is None:
        notes.append(
            f"The rolling restart was shorter than haproxy's health checks could see (drain {s(rs['drain_s'], '{:.3f}')}, "
            f"ready {s(rs['ready_s'], '{:.3f}')} after start, checks every 200 ms, down after 2): it never marked b down; "
            f"the {rs['retried']} requests that found b's port closed were retried on another replica.")
    notes.append(
        "The agents are Python threads on the same 2 cores as the three replicas, PostgreSQL and haproxy: the rate and "
        "latencies are this setup's, not Warren's throughput (see BENCHMARKS.md).")
    lines += [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


SCENARIOS = {"logins": login_timing, "killed": postgres_killed, "grace": outage_grace,
             "replicas": replica_killed, "replicas3": three_replicas}
FAULTS = ("logins", "killed", "grace", "replicas")  # the "Faults injected" table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated scenarios to run, of " + ", ".join(SCENARIOS)
                    + " (default: all); a section of RELIABILITY.md is rewritten only if all its scenarios ran")
    ap.add_argument("--schemathesis", default="", help="the summary line of the last schemathesis run")
    args = ap.parse_args()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if "replicas3" in chosen and not os.path.exists(HAPROXY):
        sys.exit(f"the replicas3 scenario needs haproxy at {HAPROXY} (apt-get install haproxy)")
    if not (args.no_build and os.path.exists(WARREN)):
        subprocess.run(["cargo", "build", "--release", "--bin", "warren"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="warren-reliability-")
    pg = Postgres(workdir)
    try:
        results = {}
        for name in (n for n in SCENARIOS if n in chosen):
            print(f"--- {name}", flush=True)
            results[name] = SCENARIOS[name](pg, workdir)
            print(json.dumps(results[name]), flush=True)
        path = os.path.join(ROOT, "RELIABILITY.md")
        if all(n in results for n in FAULTS):
            text = render(results, args.schemathesis)
            print(text)
            if not args.no_write:
                replace_section(path, "## Faults injected", text)
        if "replicas3" in results:
            text = render_three(results["replicas3"])
            print(text)
            if not args.no_write:
                replace_section(path, "## Three replicas behind a balancer", text, after="## Faults injected")
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        pg.stop()


if __name__ == "__main__":
    main()
