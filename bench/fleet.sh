#!/usr/bin/env bash
# Device fleet status benchmark: HTTP ingest rate with 1,000-snapshot batches, and list
# latency (p50/p99) for a page of 50 with 1,000,000 raw snapshots of 10,000 devices stored.
#
# Needs a PostgreSQL server it may create a database on (BENCH_PG, default the dev cluster)
# and builds the release binary. Runs in a throwaway database, dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5439}
DB=warren_fleet_bench_$$
URL="$PG/$DB"
PORT=${BENCH_PORT:-18089}
BASE="http://127.0.0.1:$PORT"
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet
BIN=$(mktemp /tmp/warren-bench.XXXXXX)
cp "$TARGET/release/warren" "$BIN" && chmod 755 "$BIN"

psql "$PG/postgres" -qc "CREATE DATABASE $DB"
cleanup() {
    [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    rm -f "$BIN"
}
trap cleanup EXIT

DATABASE_URL=$URL WARREN_LISTEN=127.0.0.1:$PORT WARREN_JWT_SECRET=bench-secret-that-is-at-least-32-characters \
    WARREN_DATA_DIR=$(mktemp -d) RUST_LOG=error "$BIN" serve &
SERVER=$!
for _ in $(seq 50); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.2; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -sf -H 'content-type: application/json' -d '{"email":"bench@example.com","password":"benchmark password"}' \
    "$BASE/v1/auth/register" >/dev/null
ACCESS=$(curl -sf -H 'content-type: application/json' -d '{"email":"bench@example.com","password":"benchmark password"}' \
    "$BASE/v1/auth/login" | json '["accessToken"]')
TOKEN=$(curl -sf -H "authorization: Bearer $ACCESS" -H 'content-type: application/json' \
    -d '{"name":"bench","scopes":["dex:read","dex:write"]}' "$BASE/v1/tokens" | json '["token"]')

echo "== HTTP ingest"
python3 bench/fleet_client.py "$BASE" "$TOKEN" ingest 20 1
python3 bench/fleet_client.py "$BASE" "$TOKEN" ingest 20 2

echo "== bulk load: 1,000,000 snapshots of 10,000 devices over 7 days (SQL)"
psql "$URL" -q <<'SQL'
TRUNCATE device_snapshots, device_hourly;
\timing on
-- 100 snapshots per device, one every 100 minutes, staggered per device, all within 7 days.
INSERT INTO device_snapshots (account_id, device_id, ts, colo, mode, platform, status, version, details)
SELECT a.id, md5('device' || d)::uuid,
       date_trunc('milliseconds', now() - interval '1 minute' - (s * interval '100 minutes') - (d % 6000) * interval '1 second'),
       (ARRAY['SJC','FRA','AMS','LHR','NRT','GRU','SIN','SYD'])[1 + (d + s) % 8],
       (ARRAY['proxy','warp','doh'])[1 + d % 3],
       (ARRAY['windows','mac','linux'])[1 + d % 3],
       (ARRAY['connected','disconnected'])[1 + (d * s) % 2],
       (ARRAY['2026.1.0','2026.2.1'])[1 + s % 2],
       jsonb_build_object('cpuPct', (d * s) % 100, 'ramUsedPct', (d + s) % 100, 'batteryPct', s % 100,
           'wifiStrengthDbm', -60, 'networkSentBps', 4000, 'deviceName', 'device-' || d,
           'deviceIpv4', jsonb_build_object('address', '192.168.1.20', 'asn', 13335, 'version', 1),
           'rtt', jsonb_build_object('rttUs', jsonb_build_object('downstream', 100, 'upstream', 200)))
FROM accounts a, generate_series(1, 10000) d, generate_series(0, 99) s;
-- The hourly rollup those snapshots would have produced.
INSERT INTO device_hourly (account_id, device_id, hour, last_ts, colo, mode, platform, status, version, details, sums, counts)
SELECT DISTINCT ON (account_id, device_id, date_trunc('hour', ts))
       account_id, device_id, date_trunc('hour', ts), ts, colo, mode, platform, status, version, details,
       ARRAY[(details->>'batteryPct')::float8, (details->>'cpuPct')::float8, 0, (details->>'ramUsedPct')::float8,
             0, -60, 0, 0, 4000, 0, 0, 0],
       ARRAY[1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0]
FROM device_snapshots ORDER BY account_id, device_id, date_trunc('hour', ts), ts DESC;
VACUUM ANALYZE device_snapshots;
VACUUM ANALYZE device_hourly;
SELECT count(*) AS snapshots, count(DISTINCT device_id) AS devices FROM device_snapshots;
SQL

echo "== list latency, page of 50"
# 'from' is 6 days back, not 7: the 7-day edge moves while we measure.
for q in 'perPage=50' \
         'source=raw&perPage=50' \
         'source=raw&perPage=50&from=$WEEK' \
         'source=raw&perPage=50&from=$WEEK&page=100' \
         'source=raw&perPage=50&from=$WEEK&colo=FRA&status=connected' \
         'source=hourly&perPage=50&from=$WEEK' \
         'source=last_seen&perPage=50&sortBy=device_id'; do
    WEEK=$(( ($(date +%s) - 6*24*3600) * 1000 ))
    python3 bench/fleet_client.py "$BASE" "$TOKEN" list 200 "${q//\$WEEK/$WEEK}"
done
# Sorting by a dimension other than time has no index of its own: fewer requests.
WEEK=$(( ($(date +%s) - 6*24*3600) * 1000 ))
python3 bench/fleet_client.py "$BASE" "$TOKEN" list 20 "source=raw&perPage=50&from=$WEEK&sortBy=colo"
python3 bench/fleet_client.py "$BASE" "$TOKEN" list 20 "source=raw&perPage=50&sortBy=colo"
