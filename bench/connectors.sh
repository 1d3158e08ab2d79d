#!/usr/bin/env bash
# What a connector costs on the heartbeat path: database transactions and row writes per
# heartbeat, and latency, for N sequential heartbeats
#   bare      - no body
#   unchanged - the same 4-connection connector every time (the steady state of an agent)
#   changed   - a 4-connection connector whose connection list changes on every heartbeat
# against the release binary and a throwaway database on the PostgreSQL server at $PGURL.
#
# Counting: each phase runs a fresh `warren serve`, stopped before the counters are read (a
# backend flushes its statistics when it exits); pg_stat_database.xact_commit counts
# transactions (a statement outside BEGIN is one), pg_stat_user_tables the rows written.
# An idle phase of the same length measures the background tasks (reaper, sweeper), which
# are subtracted. Auth is a JWT, so no token lookup is counted: only the heartbeat itself.
#
# usage: bench/connectors.sh [N]   (env: PGURL, WARREN_BIN)
set -euo pipefail
N=${1:-2000}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5439}
BIN=${WARREN_BIN:-target/release/warren}
DB=warren_bench_conn_$$
PORT=$((20000 + RANDOM % 20000))
WORK=$(mktemp -d)
BIN_COPY="$WORK/warren"
cp "$BIN" "$BIN_COPY"   # a shared target dir may be rebuilt meanwhile
PID=

cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$PGURL/postgres" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL="$PGURL/$DB" WARREN_LISTEN=127.0.0.1:$PORT WARREN_DATA_DIR=$WORK \
  WARREN_JWT_SECRET=bench-secret-that-is-at-least-32-characters-long \
  WARREN_ALLOW_REGISTRATION=true WARREN_LEASE_TTL_SECS=600 RUST_LOG=warn

start() {
  "$BIN_COPY" serve >"$WORK/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && return; sleep 0.1; done
  echo "warren did not start" >&2; cat "$WORK/serve.log" >&2; exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" || true; PID=; sleep 0.5; }

# "xact tunnels_upd connectors_upd connectors_hot connections_ins connections_upd"
counters() {
  psql -qtA -F' ' "$DATABASE_URL" -c "
    SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
           coalesce(sum(n_tup_upd) FILTER (WHERE relname = 'tunnels'), 0),
           coalesce(sum(n_tup_upd + n_tup_ins) FILTER (WHERE relname = 'connectors'), 0),
           coalesce(sum(n_tup_hot_upd) FILTER (WHERE relname = 'connectors'), 0),
           coalesce(sum(n_tup_ins + n_tup_upd) FILTER (WHERE relname = 'connections'), 0),
           coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del) FILTER (WHERE relname = 'tunnel_transitions'), 0)
    FROM pg_stat_user_tables"
}

start
python3 - "$PORT" >"$WORK/setup" <<'PY'
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
def call(path, body, token=None):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    if token: req.add_header("authorization", f"Bearer {token}")
    return json.load(urllib.request.urlopen(req))
call("/v1/auth/register", {"email": "bench@example.com", "password": "correct horse battery"})
token = call("/v1/auth/login", {"email": "bench@example.com", "password": "correct horse battery"})["accessToken"]
print(token, call("/v1/tunnels", {"requestedPort": 1}, token)["id"], call("/v1/tunnels", {"requestedPort": 2}, token)["id"])
PY
read -r TOKEN TUNNEL_A TUNNEL_B <"$WORK/setup"
stop

# drive MODE TUNNEL: N heartbeats on one keep-alive connection; prints "seconds p50_ms p99_ms".
drive() {
  python3 - "$PORT" "$TOKEN" "$2" "$N" "$1" <<'PY'
import http.client, json, sys, time, uuid
port, token, tunnel, n, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
conn = http.client.HTTPConnection("127.0.0.1", int(port))
client = str(uuid.uuid4())
conns = [str(uuid.uuid4()) for _ in range(5)]
def body(i):
    if mode == "bare":
        return None
    ids = conns[:4] if mode == "unchanged" or i % 2 == 0 else conns[1:]
    return json.dumps({"connector": {"id": client, "arch": "linux_amd64", "version": "2026.1.0",
        "configVersion": 0, "features": ["ha-origin"], "runAt": "2026-03-05T10:30:00.000Z",
        "connections": [{"id": c, "coloName": "FRA", "openedAt": "2026-03-05T10:30:01.000Z"} for c in ids]}})
def beat(i):
    b = body(i)
    headers = {"authorization": f"Bearer {token}"}
    if b: headers["content-type"] = "application/json"
    conn.request("POST", f"/v1/tunnels/{tunnel}/heartbeat", b, headers)
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
if mode != "bare":
    beat(0)  # the connector's first report, not measured
times = []
start = time.perf_counter()
for i in range(1, n + 1):
    t = time.perf_counter(); beat(i); times.append(time.perf_counter() - t)
total = time.perf_counter() - start
times.sort()
print(f"{total:.3f} {times[len(times)//2]*1000:.3f} {times[int(len(times)*0.99)]*1000:.3f}")
PY
}

# phase NAME MODE TUNNEL → "NAME seconds p50 p99 Δxact Δtunnels Δconnectors Δhot Δconnections Δtransitions"
phase() {
  start
  read -r -a before <<<"$(counters)"
  local timing; timing=$(drive "$2" "$3")
  stop
  read -r -a after <<<"$(counters)"
  local out="$1 $timing"
  for i in 0 1 2 3 4 5; do out="$out $((after[i] - before[i]))"; done
  echo "$out"
}

results=()
for spec in "bare bare $TUNNEL_A" "unchanged unchanged $TUNNEL_B" "changed changed $TUNNEL_B"; do
  # shellcheck disable=SC2086
  results+=("$(phase $spec)")
done

# idle SECONDS → Δxact of a server started, left idle that long, and stopped: its startup and
# background tasks (reaper, sweeper), subtracted from the phase of the same length.
idle() {
  start; read -r -a before <<<"$(counters)"; sleep "$1"; stop
  read -r -a after <<<"$(counters)"
  echo $((after[0] - before[0]))
}

printf '%s heartbeats each, JWT auth, sequential on one keep-alive connection; the transactions of an idle server run for as long are subtracted\n\n' "$N"
printf '| heartbeat | transactions / hb (raw Δ) | tunnel rows / hb | connector rows / hb (HOT) | connection rows / hb | p50 ms | p99 ms | hb/s |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
for r in "${results[@]}"; do
  read -r name secs p50 p99 xact tun con hot cns _ <<<"$r"
  bg=$(idle "$secs")
  python3 - "$N" "$name" "$secs" "$p50" "$p99" "$xact" "$tun" "$con" "$hot" "$cns" "$bg" <<'PY'
import sys
n, name, secs, p50, p99, xact, tun, con, hot, cns, bg = sys.argv[1:]
n, secs, bg = int(n), float(secs), float(bg)
label = {"bare": "no body", "unchanged": "4-connection connector, unchanged", "changed": "4-connection connector, list changes every time"}[name]
xact_hb = (int(xact) - bg) / n
print(f"| {label} | {xact_hb:.2f} ({xact}) | {int(tun)/n:.2f} | {int(con)/n:.2f} ({int(hot)/n:.2f}) | {int(cns)/n:.2f} | {float(p50):.2f} | {float(p99):.2f} | {n/secs:.0f} |")
PY
done
