#!/usr/bin/env python3
"""Scale benchmark: Warren with 10,000, 100,000 and 1,000,000 tunnels of many accounts.

For each scale N (`--scales`) it makes a fresh database on its own PostgreSQL, starts a release
Warren on it (which applies the migrations), registers a user and makes its API token through
the API, then bulk-loads with SQL `--accounts` more accounts (a user and an API token each,
stored as Warren stores them: the SHA-256 of the secret) and N live (`active`) tunnels whose
leases end in a day. One account, the registered user's, holds 10 % of the tunnels, so that
its list has deep pages; the others are spread round-robin over the other accounts. VACUUM
ANALYZE after loading. Then:

  (1) heartbeats   POST /v1/tunnels/{id}/heartbeat with wrk (`--connections`), each request to a
                   tunnel drawn uniformly from all N with its own account's token. The scales take
                   turns, round after round (a fresh Warren process per round, a discarded warm-up
                   first), so that the shared machine's drift falls on all alike; the median
                   round's requests/s and p99 are reported.
  (2) RSS          Warren's peak resident set (VmHWM) of those heartbeat processes, and of the
                   process that then does (3)-(5).
  (3) list         GET /v1/tunnels?limit=100 and the default page (1000) of the big account: the
                   first page, and a deep page (the cursor 90 % into the account, reached by
                   walking the `Link: rel="next"` headers), `--list-requests` sequential
                   requests each on one keep-alive connection.
  (4) statements   EXPLAIN (ANALYZE, BUFFERS) of the SQL Warren runs, read from src/ so it stays
                   the code's, with generic plans as prepared statements end up using: the
                   reaper's pass over the live leases, a list page, a heartbeat batch of 30, the
                   /metrics count, the history prune, and the tick that gives the outage grace (the changes
                   in BEGIN ... ROLLBACK). Plus the CPU the idle Warren and PostgreSQL use.
  (5) reap         `--reap` leases (all tunnels at a scale no larger) set by one UPDATE to end
                   together 12 s later; the time from their end to the last `failed` transition. At scales
                   with tunnels to spare, a second reap as large under heartbeat load on the
                   tunnels left, with that load's p99.

Writes the "## One million tunnels" section of BENCHMARKS.md unless `--no-write`.

Needs: PostgreSQL server binaries, wrk (Debian: postgresql, wrk).
Usage: bench/scale.py [--scales 10000,100000,1000000] [--rounds 5] [--duration 10]
                      [--connections 64] [--accounts 1000] [--reap 100000] [--list-requests 300]
                      [--shared-buffers 1GB] [--no-build] [--no-write] [--json FILE]
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, WARREN, Postgres, free_port, http_json, start_warren, write_section  # noqa: E402
from heartbeat import cpu_seconds, median_run, postgres_pids, rss_peak_kb, wrk  # noqa: E402

HEADING = "## One million tunnels"
WARMUP_SECS = 3
BIG_SHARE = 10  # one account holds 1/BIG_SHARE of the tunnels
LIVE = "('creating', 'active', 'stopping')"
REAP_LEAD_SECS = 12  # the reaped leases end this long after they are set (see `reap`)


def psql_script(pg, sql, db):
    """Runs a script through psql's stdin (every statement's result is printed)."""
    out = subprocess.run([os.path.join(pg.bin, "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "bench", "-d", db,
                          "-At", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                         input=sql, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def source_sql(relpath, fn, nth=0):
    """The `nth` SQL string of `sqlx::query*!` in function `fn` of a source file: EXPLAIN runs
    exactly what Warren runs."""
    text = open(os.path.join(ROOT, relpath)).read()
    start = text.index(f"pub async fn {fn}(")
    body = text[start:text.find("\n}\n", start)]
    found = re.findall(r'sqlx::query(?:_scalar|_as)?!\(\s*(?:\w+,\s*)?(?:r#"(.*?)"#|"((?:[^"\\]|\\.)*)")', body, re.S)
    raw, plain = found[nth]
    return raw or plain


def ms_from_explain(plan):
    m = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return float(m.group(1)) if m else None


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def heartbeat_lua(ids_file, tokens_file, threads):
    """wrk script: each thread keeps every `threads`-th line of the ids file (so 1,000,000 ids
    are not held twice) and sends each request to one of them drawn uniformly at random, with
    the token of the tunnel's account. The threads' shares together are all the tunnels."""
    return f"""
local tokens = {{}}
for line in io.lines("{tokens_file}") do tokens[#tokens + 1] = "Bearer " .. line end
local paths, owners = {{}}, {{}}
counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  local k = 0
  for line in io.lines("{ids_file}") do
    if k % {threads} == tid then
      local id, t = line:match("^(%S+) (%d+)$")
      paths[#paths + 1] = "/v1/tunnels/" .. id .. "/heartbeat"
      owners[#owners + 1] = tonumber(t) + 1
    end
    k = k + 1
  end
  math.randomseed(os.time() * 131 + tid * 7919)
end
request = function()
  local i = math.random(#paths)
  return wrk.format("POST", paths[i], {{["Authorization"] = tokens[owners[i]]}}, "")
end
"""


class Scale:
    """One scale: its database, its tokens and tunnels, and the Warren processes run on it."""

    def __init__(self, pg, workdir, n, args):
        self.pg, self.workdir, self.n, self.args = pg, workdir, n, args
        self.db = f"warren_{n}"
        self.big = n // BIG_SHARE
        self.proc = None
        self.port = None
        self.results = {"n": n, "big_account_tunnels": self.big}

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def sql(self, text):
        return self.pg.psql(text, self.db)

    def start(self, migrated=True):
        # A database whose reaper has not run for a while is taken for an outage at the next
        # start, and every live lease is extended (one UPDATE of the whole live set). The
        # stamp is cleared, as in a fresh database, so a restart between rounds is only that.
        if migrated:
            self.sql("UPDATE lease_clock SET reaper_ran_at = NULL")
        self.port = free_port()
        self.proc = start_warren(self.pg, self.workdir, self.port, self.db)
        return self.proc

    def stop(self):
        """Stops the process; its peak RSS in kB."""
        peak = rss_peak_kb(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        return peak

    def load(self):
        n, args = self.n, self.args
        print(f"[{n:,}] creating the database and loading {n:,} tunnels over {args.accounts + 1:,} accounts", flush=True)
        self.pg.psql(f"CREATE DATABASE {self.db}")
        self.start(migrated=False)
        email, password = f"bench-{n}@example.com", "bench password 123"
        http_json(self.base, "POST", "/v1/auth/register", {"email": email, "password": password})
        jwt = http_json(self.base, "POST", "/v1/auth/login", {"email": email, "password": password})["accessToken"]
        token = http_json(self.base, "POST", "/v1/tokens", {"name": "bench", "scopes": ["tunnels:heartbeat", "tunnels:read"]},
                          jwt)["token"]
        account = self.sql("SELECT account_id FROM users")
        started = time.time()
        # Accounts 1..A: an account, a user and an API token each, as Warren stores them (the
        # token as the SHA-256 of its secret). Account 0 is the registered user's.
        psql_script(self.pg, f"""
            CREATE TABLE bench_accounts (n int PRIMARY KEY, id uuid NOT NULL, token text NOT NULL);
            INSERT INTO bench_accounts VALUES (0, '{account}', '{token}');
            INSERT INTO bench_accounts
                SELECT a, gen_random_uuid(), 'wrn_' || substr(md5(random()::text) || md5(random()::text), 1, 40)
                FROM generate_series(1, {args.accounts}) a;
            INSERT INTO accounts (id) SELECT id FROM bench_accounts WHERE n > 0;
            INSERT INTO users (id, account_id, email, password_hash)
                SELECT gen_random_uuid(), id, 'bench-' || n || '@example.com', 'not-a-password-hash'
                FROM bench_accounts WHERE n > 0;
            INSERT INTO api_tokens (id, account_id, user_id, name, scopes, token_hash)
                SELECT gen_random_uuid(), b.id, u.id, 'bench', ARRAY['tunnels:heartbeat', 'tunnels:read'],
                       sha256(convert_to(b.token, 'UTF8'))
                FROM bench_accounts b JOIN users u ON u.account_id = b.id WHERE b.n > 0;
            """, self.db)
        # The tunnels: live, leases a day ahead, distinct creation times (1 ms apart, the last
        # one now), random ids in random order, as Warren would have made them over time.
        psql_script(self.pg, f"""
            INSERT INTO tunnels (id, account_id, slug, status, requested_port, created_at,
                                 last_heartbeat_at, lease_expires_at, activated_at)
                SELECT gen_random_uuid(), b.id, 't' || i, 'active', 8000,
                       date_trunc('milliseconds', now()) - ({n} - i) * interval '1 millisecond',
                       now(), now() + interval '1 day', now()
                FROM generate_series(1, {n}) i
                JOIN bench_accounts b ON b.n = CASE WHEN i <= {self.big} THEN 0 ELSE 1 + i % {args.accounts} END;
            """, self.db)
        loaded = time.time()
        self.sql("VACUUM ANALYZE")
        self.results["load_s"] = loaded - started
        self.results["vacuum_s"] = time.time() - loaded
        self.results["sizes_mb"] = {
            "table": int(self.sql("SELECT pg_table_size('tunnels')")) / 2**20,
            "indexes": int(self.sql("SELECT pg_indexes_size('tunnels')")) / 2**20,
        }
        self.accounts = [line.split("|") for line in self.sql("SELECT n, id, token FROM bench_accounts ORDER BY n").splitlines()]
        self.tokens_file = os.path.join(self.workdir, f"tokens-{n}.txt")
        with open(self.tokens_file, "w") as f:
            f.write("\n".join(t for _, _, t in self.accounts) + "\n")
        self.ids_file = os.path.join(self.workdir, f"ids-{n}.txt")
        self.write_ids(self.ids_file, "TRUE")
        self.loaded_at = self.sql("SELECT now()")
        self.stop()
        print(f"[{n:,}] loaded in {self.results['load_s']:.1f} s, VACUUM ANALYZE {self.results['vacuum_s']:.1f} s; "
              f"table {self.results['sizes_mb']['table']:.0f} MB, indexes {self.results['sizes_mb']['indexes']:.0f} MB",
              flush=True)

    def write_ids(self, path, where):
        """`id token-index` lines of the tunnels matching `where`; how many."""
        out = self.sql(f"""SELECT t.id || ' ' || b.n FROM tunnels t JOIN bench_accounts b ON b.id = t.account_id
                           WHERE {where}""")
        with open(path, "w") as f:
            f.write(out + "\n")
        return out.count("\n") + 1

    def heartbeat_round(self, warmup):
        self.start()
        lua = heartbeat_lua(self.ids_file, self.tokens_file, 2)
        r = wrk(self.base, lua, self.args.duration, self.args.connections, warmup=warmup)
        r["rss_kb"] = self.stop()
        return r

    # (3) list pages --------------------------------------------------------------------------------

    def list_pages(self):
        n, token = self.n, self.accounts[0][2]
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        headers = {"authorization": f"Bearer {token}"}

        def get(path):
            t = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = (time.perf_counter() - t) * 1000
            if resp.status != 200:
                sys.exit(f"GET {path}: {resp.status} {body[:300]!r}")
            return elapsed, resp.getheader("link"), body

        # Walk the Link headers to the page 90 % into the account.
        step = max(1, min(1000, self.big // 20))
        path, seen, pages, walk_ms = f"/v1/tunnels?limit={step}", 0, 0, []
        while seen < self.big * 9 // 10:
            ms, link, body = get(path)
            walk_ms.append(ms)
            seen += len(json.loads(body))
            pages += 1
            if not link:
                sys.exit(f"the list ended after {seen} tunnels, expected {self.big}")
            path = re.match(r"<([^>]+)>", link).group(1)
        cursor = re.search(r"after=([^&>]+)", path).group(1)
        self.results["walk"] = {"pages": pages, "limit": step, "skipped": seen, "p50": statistics.median(walk_ms),
                                "max": max(walk_ms)}
        queries = {
            "first_100": "/v1/tunnels?limit=100",
            "first_1000": "/v1/tunnels",
            "deep_100": f"/v1/tunnels?limit=100&after={cursor}",
            "deep_1000": f"/v1/tunnels?after={cursor}",
        }
        out = {}
        for name, q in queries.items():
            for _ in range(10):
                get(q)
            times, rows = [], None
            for _ in range(self.args.list_requests):
                ms, _, body = get(q)
                times.append(ms)
            rows = len(json.loads(body))
            out[name] = {"p50": statistics.median(times), "p99": percentile(times, 99), "max": max(times), "rows": rows,
                         "bytes": len(body), "requests": len(times)}
            print(f"[{n:,}] GET {q[:60]}: {rows} rows, p50 {out[name]['p50']:.2f} ms, p99 {out[name]['p99']:.2f} ms", flush=True)
        conn.close()
        # /metrics counts tunnels by status (a scrape's cost); a few requests only.
        times = []
        for _ in range(5):
            t = time.perf_counter()
            c = http.client.HTTPConnection("127.0.0.1", self.port)
            c.request("GET", "/metrics")
            c.getresponse().read()
            c.close()
            times.append((time.perf_counter() - t) * 1000)
        out["metrics"] = {"p50": statistics.median(times), "max": max(times)}
        self.results["list"] = out
        self.cursor = cursor

    # (4) statements --------------------------------------------------------------------------------

    def explain(self, name, sql, types, values, rollback=False):
        script = (f"SET plan_cache_mode = force_generic_plan;\n"
                  f"PREPARE bench_stmt{'(' + ', '.join(types) + ')' if types else ''} AS {sql}\n;\n"
                  + ("BEGIN;\n" if rollback else "")
                  + f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_stmt{'(' + ', '.join(values) + ')' if values else ''};\n"
                  + ("ROLLBACK;\n" if rollback else ""))
        t = time.perf_counter()
        plan = psql_script(self.pg, script, self.db)
        wall = (time.perf_counter() - t) * 1000
        ms = ms_from_explain(plan)
        self.results.setdefault("explain", {})[name] = {"ms": ms, "wall_ms": wall, "plan": plan}
        print(f"[{self.n:,}] EXPLAIN {name}: {ms} ms\n" + "\n".join("    " + line for line in plan.splitlines()), flush=True)

    def statements(self):
        big = self.accounts[0][1]
        created, cid = self.cursor.split("_")
        cursor_ts = f"to_timestamp({int(created)} / 1e6)"
        cursor_id = f"'{cid[:8]}-{cid[8:12]}-{cid[12:16]}-{cid[16:20]}-{cid[20:]}'"
        self.explain("due_leases", source_sql("src/tunnels/leases.rs", "due_leases"), ["integer"], ["1000000"])
        listing = source_sql("src/tunnels/store.rs", "list")
        types = ["uuid", "boolean", "timestamptz", "uuid", "bigint"]
        self.explain("list_first_1001", listing, types, [f"'{big}'", "false", "NULL", "NULL", "1001"])
        self.explain("list_deep_1001", listing, types, [f"'{big}'", "false", cursor_ts, cursor_id, "1001"])
        # A heartbeat batch of 30 random tunnels, sorted by id as the batcher sends them.
        with open(self.ids_file) as f:
            lines = f.read().split()
        picks = sorted(random.sample(range(len(lines) // 2), 30), key=lambda k: lines[2 * k])
        ids = ", ".join(f"'{lines[2 * k]}'" for k in picks)
        accounts = ", ".join(f"'{self.accounts[int(lines[2 * k + 1])][1]}'" for k in picks)
        principals = ", ".join("'{\"type\": \"token\"}'" for _ in picks)
        self.explain("renew_many_30", source_sql("src/tunnels/leases.rs", "renew_many"),
                     ["uuid[]", "uuid[]", "bigint", "uuid[]", "uuid[]", "bytea[]", "jsonb[]", "text", "text"],
                     [f"ARRAY[{ids}]::uuid[]", f"ARRAY[{accounts}]::uuid[]", "60000", "'{}'", "'{}'", "'{}'",
                      f"ARRAY[{principals}]::jsonb[]", "'localhost'", "'tunnel.active.v1'"], rollback=True)
        self.explain("count_by_status", source_sql("src/tunnels/store.rs", "count_by_status"), [], [])
        self.explain("prune_history", source_sql("src/tunnels/store.rs", "prune_history"), ["bigint", "bigint"],
                     [str(30 * 86_400_000), "2000"], rollback=True)

    def idle_cpu(self, secs=30):
        """CPU the idle Warren and its PostgreSQL use (the reaper ticks every 500 ms and passes
        over the live leases at most every 10 s: long enough to see several passes)."""
        time.sleep(2)
        pids = postgres_pids(self.pg)
        before = (cpu_seconds([self.proc.pid]), cpu_seconds(pids))
        time.sleep(secs)
        after = (cpu_seconds([self.proc.pid]), cpu_seconds(postgres_pids(self.pg)))
        self.results["idle_cpu"] = {"warren": (after[0] - before[0]) / secs, "postgres": (after[1] - before[1]) / secs}
        print(f"[{self.n:,}] idle CPU: Warren {self.results['idle_cpu']['warren']:.1%}, "
              f"PostgreSQL {self.results['idle_cpu']['postgres']:.1%} of a core", flush=True)

    # (5) reap --------------------------------------------------------------------------------------

    def reap(self, label, count, under_load):
        """Moves `count` live leases (none of the big account's while others are left) into the
        past with one UPDATE and waits until the reaper has failed them all."""
        n = self.n
        table = f"bench_reap_{label}"
        self.sql(f"""CREATE TABLE {table} AS SELECT id FROM tunnels WHERE status = 'active'
                     {"AND account_id <> '" + self.accounts[0][1] + "'" if count < n else ""}
                     ORDER BY random() LIMIT {count}""")
        count = int(self.sql(f"SELECT count(*) FROM {table}"))
        last_transition = int(self.sql("SELECT coalesce(max(id), 0) FROM tunnel_transitions"))
        load = None
        if under_load:
            others = os.path.join(self.workdir, f"ids-{n}-{label}.txt")
            left = self.write_ids(others, f"t.status = 'active' AND t.id NOT IN (SELECT id FROM {table})")
            script = os.path.join(self.workdir, f"hb-{n}-{label}.lua")
            with open(script, "w") as f:
                f.write(heartbeat_lua(others, self.tokens_file, 2))
            secs = self.args.reap_load_secs
            load = subprocess.Popen(["wrk", "-t", "2", "-c", str(self.args.connections), "-d", f"{secs}s", "--latency",
                                     "-s", script, self.base], stdout=subprocess.PIPE, text=True)
            time.sleep(4)
        # The leases end together a little later, as when their agents all stopped 48 s ago:
        # Warren's reaper skips its pass over the live set while it knows that no lease ends
        # sooner (at most 10 s), so a lease moved straight into the past, which no running
        # Warren ever does, would be seen up to 10 s late; one that ends after that window is
        # seen as it would be in life.
        out = psql_script(self.pg, f"""
            BEGIN;
            UPDATE tunnels SET lease_expires_at = date_trunc('milliseconds', now()) + interval '{REAP_LEAD_SECS} seconds'
            WHERE id IN (SELECT id FROM {table});
            SELECT extract(epoch FROM date_trunc('milliseconds', now()) + interval '{REAP_LEAD_SECS} seconds');
            COMMIT;""", self.db)
        ends_at = float(out.split()[-1])
        print(f"[{n:,}] reap {label}: {count:,} leases end together in {REAP_LEAD_SECS} s{' under heartbeat load' if under_load else ''}",
              flush=True)
        done_at, reaped = None, 0
        while time.time() < ends_at + self.args.reap_timeout:
            row = self.sql(f"""SELECT count(*), coalesce(extract(epoch FROM max(at)), 0) FROM tunnel_transitions
                               WHERE id > {last_transition} AND to_status = 'failed'""").split("|")
            reaped = int(row[0])
            if reaped >= count:
                done_at = float(row[1])
                break
            time.sleep(0.2)
        left_live = int(self.sql(f"SELECT count(*) FROM tunnels WHERE id IN (SELECT id FROM {table}) AND status <> 'failed'"))
        r = {"count": count, "seconds": (done_at - ends_at) if done_at else None, "reaped": reaped,
             "left_live": left_live}
        if load:
            out = load.communicate()[0]
            r["hb_rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            r["hb_p99"] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            r["hb_non2xx"] = int(non2xx.group(1)) if non2xx else 0
            r["hb_tunnels"] = left
        secs = f"{r['seconds']:.2f} s" if r["seconds"] is not None else f"not done in {self.args.reap_timeout} s"
        print(f"[{n:,}] reap {label}: {secs}, {reaped:,} transitions" +
              (f"; heartbeats meanwhile {r['hb_rps']:,.0f}/s, p99 {r['hb_p99']:.2f} ms" if load else ""), flush=True)
        self.results.setdefault("reap", {})[label] = r

    def grace(self):
        """The reaper's tick that gives the outage grace (what a restart after > 20 s without a
        reaper runs; a stall_after of 0 makes any earlier stamp an outage), rolled back."""
        self.explain("outage_grace_update", source_sql("src/tunnels/clock.rs", "tick"), ["bigint", "bigint"],
                     ["0", "60000"], rollback=True)

    def inspect(self):
        """(3), (4), (5) on one fresh process; its peak RSS."""
        self.start()
        # the same warm-up the heartbeat rounds had, so that the pages are read warm
        wrk(self.base, heartbeat_lua(self.ids_file, self.tokens_file, 2), WARMUP_SECS, self.args.connections, warmup=0)
        self.list_pages()
        self.statements()
        self.idle_cpu()
        self.results["renewed"] = int(self.sql(f"SELECT count(*) FROM tunnels WHERE last_heartbeat_at > '{self.loaded_at}'"))
        self.grace()
        self.reap("a", min(self.args.reap, self.n), under_load=False)
        if self.n >= 2 * self.args.reap + self.big:
            self.reap("b", self.args.reap, under_load=True)
        self.results["inspect_rss_kb"] = self.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="10000,100000,1000000")
    ap.add_argument("--accounts", type=int, default=1000, help="accounts besides the big one")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="seconds per heartbeat round")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--shared-buffers", default="1GB",
                    help="PostgreSQL's shared_buffers: the 1M database is 360 MB of table and indexes")
    ap.add_argument("--reap", type=int, default=100_000)
    ap.add_argument("--reap-timeout", type=int, default=120)
    ap.add_argument("--reap-load-secs", type=int, default=32)
    ap.add_argument("--list-requests", type=int, default=300)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    scales = [int(s.replace("_", "")) for s in args.scales.split(",") if s]
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    if not (args.no_build and os.path.exists(WARREN)):
        subprocess.run(["cargo", "build", "--release", "--bin", "warren"], cwd=ROOT, check=True)

    began = time.time()
    workdir = tempfile.mkdtemp(prefix="warren-bench-scale-")
    pg = Postgres(workdir, shared_buffers=args.shared_buffers)
    runs = [Scale(pg, workdir, n, args) for n in scales]
    try:
        for s in runs:
            s.load()
        # (1)/(2): the scales take turns, the order rotating every round; one fresh process per
        # round with its own warm-up.
        rounds = {s.n: [] for s in runs}
        for r in range(args.rounds):
            order = runs[r % len(runs):] + runs[:r % len(runs)]
            for s in order:
                x = s.heartbeat_round(WARMUP_SECS)
                rounds[s.n].append(x)
                print(f"round {r + 1}/{args.rounds} [{s.n:,}]: {x['rps']:,.0f} heartbeats/s, p50 {x['p50']:.2f} ms, "
                      f"p99 {x['p99']:.2f} ms, non-2xx {x['non2xx']}, peak RSS {x['rss_kb'] / 1024:.0f} MB", flush=True)
        for s in runs:
            hb = median_run(rounds[s.n])
            hb["each_p99"] = [x["p99"] for x in rounds[s.n]]
            s.results["heartbeat"] = hb
            s.results["hb_rss_kb"] = max(x["rss_kb"] for x in rounds[s.n])
        for s in runs:
            s.inspect()
    finally:
        for s in runs:
            if s.proc:
                s.proc.kill()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    results = [s.results for s in runs]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    report = render(results, args, time.time() - began)
    print(report)
    if not args.no_write:
        write_section(os.path.join(ROOT, "BENCHMARKS.md"), HEADING, report)


def fmt_n(n):
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def render(results, args, elapsed):
    by = {r["n"]: r for r in results}
    ns = [r["n"] for r in results]
    grow = 100_000 in by and 1_000_000 in by

    def row(label, get, fmt="{:,.2f}", ratio=True):
        vals = []
        for n in ns:
            try:
                v = get(by[n])
            except (KeyError, TypeError):
                v = None
            vals.append(v)
        cells = [fmt.format(v) if isinstance(v, (int, float)) else (v if isinstance(v, str) else "–") for v in vals]
        g = ""
        if grow:
            a, b = vals[ns.index(100_000)], vals[ns.index(1_000_000)]
            g = f"×{b / a:.2f}" if ratio and isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else ""
        return f"| {label} | " + " | ".join(cells) + (f" | {g} |" if grow else " |")

    def reap_cell(r, key):
        x = r["reap"][key]
        if x["seconds"] is None:
            return f"not done in {args.reap_timeout} s"
        return x["seconds"]

    head = "| | " + " | ".join(f"{fmt_n(n)} tunnels" for n in ns) + (" | 100k → 1M |" if grow else " |")
    sep = "| --- | " + " | ".join("---:" for _ in ns) + (" | ---: |" if grow else " |")
    reap_n = {n: by[n]["reap"]["a"]["count"] for n in ns}
    lines = [
        HEADING,
        "",
        f"`bench/scale.py --scales {','.join(str(n) for n in ns)}` on {time.strftime('%Y-%m-%d', time.gmtime())} "
        f"({elapsed / 60:.0f} min): one run on this machine (2 CPU cores, shared with other tenants; Warren, "
        f"PostgreSQL 15 with `shared_buffers={args.shared_buffers}` and wrk all on them, over loopback). Each scale is a fresh database "
        f"with {args.accounts:,} accounts plus one that holds {100 // BIG_SHARE} % of the tunnels; the tunnels are "
        "bulk-loaded with SQL (live, leases a day ahead), then `VACUUM ANALYZE`. Heartbeats: wrk with "
        f"{args.connections} connections, each request to a tunnel drawn uniformly from all of them with its "
        f"account's API token; the scales took turns for {args.rounds} rounds of {args.duration} s (a fresh Warren "
        f"process each, after a discarded {WARMUP_SECS} s warm-up) and each figure is the median round. List: "
        f"{args.list_requests} sequential requests per row on one keep-alive connection, timed at the client, "
        "for the big account; the deep page starts 90 % into that account, at a cursor reached by walking the "
        "`Link` headers. The last column is the 1M figure divided by the 100k one.",
        "",
        head,
        sep,
        row("heartbeats/s (median round)", lambda r: r["heartbeat"]["rps"], "{:,.0f}"),
        row("heartbeat p50 ms", lambda r: r["heartbeat"]["p50"]),
        row("heartbeat p99 ms", lambda r: r["heartbeat"]["p99"]),
        row("first page, `limit=100`: p50 / p99 ms",
            lambda r: f"{r['list']['first_100']['p50']:.2f} / {r['list']['first_100']['p99']:.2f}"),
        row("first page, default (1000): p50 / p99 ms",
            lambda r: f"{r['list']['first_1000']['p50']:.2f} / {r['list']['first_1000']['p99']:.2f}"),
        row("deep page, `limit=100`: p50 / p99 ms",
            lambda r: f"{r['list']['deep_100']['p50']:.2f} / {r['list']['deep_100']['p99']:.2f}"),
        row("deep page, default: p50 / p99 ms (rows)",
            lambda r: f"{r['list']['deep_1000']['p50']:.2f} / {r['list']['deep_1000']['p99']:.2f} ({r['list']['deep_1000']['rows']:,})"),
        row("deep cursor: tunnels skipped", lambda r: r["walk"]["skipped"], "{:,}", ratio=False),
        row("`GET /metrics` (counts tunnels by status), p50 ms", lambda r: r["list"]["metrics"]["p50"]),
        row("reap: leases ending together", lambda r: r["reap"]["a"]["count"], "{:,}", ratio=False),
        row("reap: seconds until all `failed`", lambda r: reap_cell(r, "a")),
        row("reap: leases/s", lambda r: r["reap"]["a"]["count"] / r["reap"]["a"]["seconds"], "{:,.0f}"),
        row("second reap under heartbeat load: seconds", lambda r: reap_cell(r, "b")),
        row("heartbeats meanwhile: per s / p99 ms",
            lambda r: f"{r['reap']['b']['hb_rps']:,.0f} / {r['reap']['b']['hb_p99']:.2f}"),
        row("Warren peak RSS, heartbeat rounds (MB)", lambda r: r["hb_rss_kb"] / 1024, "{:.0f}"),
        row("Warren peak RSS, list + reap process (MB)", lambda r: r["inspect_rss_kb"] / 1024, "{:.0f}"),
        row("idle: PostgreSQL CPU, % of a core", lambda r: 100 * r["idle_cpu"]["postgres"], "{:.1f}"),
        row("idle: Warren CPU, % of a core", lambda r: 100 * r["idle_cpu"]["warren"], "{:.1f}"),
        row("`tunnels`: table / indexes MB",
            lambda r: f"{r['sizes_mb']['table']:.0f} / {r['sizes_mb']['indexes']:.0f}"),
        row("bulk load s / `VACUUM ANALYZE` s", lambda r: f"{r['load_s']:.0f} / {r['vacuum_s']:.0f}"),
    ]
    lines += [
        "",
        "Statements from `src/` under `EXPLAIN (ANALYZE, BUFFERS)`, generic plans (as prepared statements "
        "run once cached), execution time in ms; the writes rolled back:",
        "",
        head,
        sep,
    ]
    for key, label in (("due_leases", "reaper's pass over the live leases (`leases::due_leases`, none due), at most every 10 s"),
                       ("renew_many_30", "heartbeat batch of 30 (`leases::renew_many`)"),
                       ("list_first_1001", "list, first page (`store::list`, 1001 rows)"),
                       ("list_deep_1001", "list, deep page"),
                       ("count_by_status", "`/metrics` count (`store::count_by_status`)"),
                       ("prune_history", "history prune (`store::prune_history`), every 500 ms"),
                       ("outage_grace_update", "outage grace (`clock::tick`), once after an outage")):
        lines.append(row(label, lambda r, k=key: r["explain"][k]["ms"]))
    lines += ["", "Requests/s of each round: " + "; ".join(
        f"{fmt_n(n)} " + ", ".join(f"{x:,.0f}" for x in by[n]["heartbeat"]["each_rps"]) for n in ns) + "."]
    lines.append("p99 ms of each round: " + "; ".join(
        f"{fmt_n(n)} " + ", ".join(f"{x:.2f}" for x in by[n]["heartbeat"]["each_p99"]) for n in ns) + ".")
    lines.append("Heartbeat answers other than 2xx: " + "; ".join(
        f"{fmt_n(n)} {by[n]['heartbeat']['non2xx']}" for n in ns) + "; distinct tunnels renewed over the rounds and warm-ups: " + "; ".join(
        f"{fmt_n(n)} {by[n]['renewed']:,} of {n:,}" for n in ns) + ".")
    small = [n for n in ns if reap_n[n] == n]
    if small:
        lines.append(f"At {', '.join(fmt_n(n) for n in small)} the reap expires every tunnel "
                     f"({', '.join(f'{reap_n[n]:,}' for n in small)}), so there is no second reap under load there.")
    lines += ["", "| target | measured | |", "| --- | --- | --- |"]

    def verdict(ok):
        return "**met**" if ok else "**missed**"
    if 10_000 in by and 1_000_000 in by:
        ratio = by[1_000_000]["heartbeat"]["rps"] / by[10_000]["heartbeat"]["rps"]
        lines.append(f"| heartbeats/s at 1M within 20 % of 10k (ratio ≥ 0.80) | {ratio:.2f} "
                     f"({by[1_000_000]['heartbeat']['rps']:,.0f} / {by[10_000]['heartbeat']['rps']:,.0f}) | {verdict(ratio >= 0.8)} |")
    else:
        lines.append("| heartbeats/s at 1M within 20 % of 10k | not measured (both scales needed) | |")
    top = max(ns)
    for key, label in (("first_100", "`limit=100`"), ("first_1000", "default page of 1000")):
        p99 = by[top]["list"][key]["p99"]
        lines.append(f"| first page ≤ 10 ms p99 at {fmt_n(top)}, {label} | {p99:.2f} ms | {verdict(p99 <= 10)} |")
    peak = max(max(r["hb_rss_kb"], r["inspect_rss_kb"]) for r in results) / 1024
    lines.append(f"| Warren RSS ≤ 150 MB (peak of every process, up to {fmt_n(top)}) | {peak:.0f} MB | {verdict(peak <= 150)} |")
    lines += ["", f"Rerun: `bench/scale.py` (all three scales, writes this section; about {elapsed / 60:.0f} minutes here), "
              "or `bench/scale.py --scales 10000 --no-write` for a quick look.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
