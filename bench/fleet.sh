#!/usr/bin/env bash
# Device fleet status benchmark: HTTP ingest rate with 1,000-snapshot batches, and list
# latency (p50/p99) for a page of 50 with 1,000,000 raw snapshots of 10,000 devices stored,
# for every source and sort key.
#
#   bench/fleet.sh                          this tree
#   BENCH_BASELINE=REV bench/fleet.sh       REV ("before") and this tree ("after") side by side:
#                                           two servers, two databases with the same data, the
#                                           requests alternating between them, ratios to REV
#
# Needs a PostgreSQL server it may create databases on (BENCH_PG, default the dev cluster)
# and builds the release binaries (SQLX_OFFLINE). Runs in throwaway databases, dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5439}
PORT=${BENCH_PORT:-18089}
WORK=$(mktemp -d /tmp/warren-fleet-bench.XXXXXX)
NAMES=()
declare -A URL BASE TOKEN SERVER

cleanup() {
    for name in "${NAMES[@]}"; do
        [ -n "${SERVER[$name]:-}" ] && kill "${SERVER[$name]}" 2>/dev/null && wait "${SERVER[$name]}" 2>/dev/null || true
        [ -n "${URL[$name]:-}" ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${URL[$name]##*/} WITH (FORCE)" || true
    done
    [ -d "$WORK/baseline" ] && git worktree remove --force "$WORK/baseline" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# build NAME DIR: the release binary of the tree in DIR, copied (a shared target dir may be
# rebuilt meanwhile).
build() {
    local target=${CARGO_TARGET_DIR:-$2/target}
    (cd "$2" && SQLX_OFFLINE=true cargo build --release --quiet)
    cp "$target/release/warren" "$WORK/warren-$1" && chmod 755 "$WORK/warren-$1"
}
if [ -n "${BENCH_BASELINE:-}" ]; then
    # This tree first: cargo tells a package's builds apart by their sources' mtimes, not by
    # their directory, and the baseline's fresh checkout is newer than anything here.
    build after "$PWD"
    git worktree add --quiet --detach "$WORK/baseline" "$BENCH_BASELINE"
    build before "$WORK/baseline"
    if cmp -s "$WORK/warren-before" "$WORK/warren-after"; then
        echo "the baseline and this tree built the same binary" >&2
        exit 1
    fi
    NAMES=(before after)
else
    build this "$PWD"
    NAMES=(this)
fi

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
for name in "${NAMES[@]}"; do
    URL[$name]="$PG/warren_fleet_bench_${name}_$$"
    BASE[$name]="http://127.0.0.1:$PORT"
    psql "$PG/postgres" -qc "CREATE DATABASE ${URL[$name]##*/}"
    DATABASE_URL=${URL[$name]} WARREN_LISTEN=127.0.0.1:$PORT WARREN_JWT_SECRET=bench-secret-that-is-at-least-32-characters \
        WARREN_DATA_DIR=$(mktemp -d "$WORK/data.XXXXXX") RUST_LOG=error "$WORK/warren-$name" serve &
    SERVER[$name]=$!
    for _ in $(seq 100); do curl -sf "${BASE[$name]}/readyz" >/dev/null && break; sleep 0.2; done
    curl -sf -H 'content-type: application/json' -d '{"email":"bench@example.com","password":"benchmark password"}' \
        "${BASE[$name]}/v1/auth/register" >/dev/null
    access=$(curl -sf -H 'content-type: application/json' -d '{"email":"bench@example.com","password":"benchmark password"}' \
        "${BASE[$name]}/v1/auth/login" | json '["accessToken"]')
    TOKEN[$name]=$(curl -sf -H "authorization: Bearer $access" -H 'content-type: application/json' \
        -d '{"name":"bench","scopes":["dex:read","dex:write"]}' "${BASE[$name]}/v1/tokens" | json '["token"]')
    PORT=$((PORT + 1))
done
variants() { for name in "${NAMES[@]}"; do printf '%s ' "$name=${BASE[$name]}@${TOKEN[$name]}"; done; }
# shellcheck disable=SC2046
ingest() { python3 bench/fleet_client.py ingest "$1" "$2" 3 $(variants); }
# shellcheck disable=SC2046
list() { python3 bench/fleet_client.py list "$1" "$2" $(variants); }

echo "== HTTP ingest, empty tables (3 rounds each, medians)"
ingest 20 1
ingest 20 2

echo "== bulk load: 1,000,000 snapshots of 10,000 devices over 7 days (SQL)"
for name in "${NAMES[@]}"; do
psql "${URL[$name]}" -q <<'SQL'
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
SELECT relname AS "table", pg_size_pretty(pg_table_size(relid)) AS data,
       pg_size_pretty(pg_indexes_size(relid)) AS indexes, count(*) AS "index count"
FROM pg_stat_user_tables JOIN pg_index ON indrelid = relid
WHERE relname IN ('device_snapshots', 'device_hourly') GROUP BY relname, relid;
SQL
done

echo "== list latency, page of 50"
# 'from' is 6 days back, not 7: the 7-day edge moves while we measure. '+' after a
# totalCount: a lower bound (totalCountExact false).
week() { echo $(( ($(date +%s) - 6*24*3600) * 1000 )); }
for q in 'perPage=50' \
         'source=last_seen&perPage=50&sortBy=device_id' \
         'source=last_seen&perPage=50&sortBy=colo' \
         'source=raw&perPage=50' \
         'source=raw&perPage=50&from=$WEEK' \
         'source=raw&perPage=50&from=$WEEK&page=100' \
         'source=raw&perPage=50&from=$WEEK&colo=FRA&status=connected' \
         'source=hourly&perPage=50&from=$WEEK'; do
    list 200 "${q//\$WEEK/$(week)}"
done
# Sorting by a dimension: fewer requests (it took seconds each before the sort indexes).
for q in 'source=raw&perPage=50&sortBy=colo' \
         'source=raw&perPage=50&from=$WEEK&sortBy=colo' \
         'source=raw&perPage=50&from=$WEEK&sortBy=mode' \
         'source=raw&perPage=50&from=$WEEK&sortBy=platform' \
         'source=raw&perPage=50&from=$WEEK&sortBy=status' \
         'source=raw&perPage=50&from=$WEEK&sortBy=version' \
         'source=raw&perPage=50&from=$WEEK&sortBy=device_id' \
         'source=raw&perPage=50&from=$WEEK&sortBy=colo&page=100' \
         'source=raw&perPage=50&from=$WEEK&sortBy=version&colo=FRA&status=connected' \
         'source=hourly&perPage=50&from=$WEEK&sortBy=colo' \
         'source=hourly&perPage=50&from=$WEEK&sortBy=status' \
         'source=hourly&perPage=50&from=$WEEK&sortBy=device_id'; do
    list 30 "${q//\$WEEK/$(week)}"
done

echo "== HTTP ingest with 1,000,000 snapshots stored (3 rounds, medians)"
ingest 20 1
