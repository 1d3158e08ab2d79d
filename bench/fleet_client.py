#!/usr/bin/env python3
"""Fleet-status benchmark client: HTTP ingest rate and list latency against a running Warren.

usage: fleet_client.py ingest BATCHES CONCURRENCY ROUNDS NAME=BASE_URL@TOKEN...
       fleet_client.py list REQUESTS QUERY NAME=BASE_URL@TOKEN...

With several servers (variants, e.g. before and after a change) the requests alternate
between them, and each figure is also given as a ratio of the first variant's.
"""
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone


def conn_for(base):
    u = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def snapshot(device, ts):
    ip = lambda a, v: {"address": a, "asn": 13335, "aso": "Cloudflare", "name": "eth0", "netmask": "255.255.255.0",
                       "version": v, "location": {"city": "Berlin", "country_iso": "DE", "state_iso": "BE", "zip": "10115"}}
    d = {"downstream": random.randint(0, 10**6), "upstream": random.randint(0, 10**6)}
    return {
        "deviceId": device, "colo": random.choice(["SJC", "FRA", "AMS", "LHR", "NRT", "GRU", "SIN", "SYD"]),
        "mode": random.choice(["proxy", "warp", "doh"]), "platform": random.choice(["windows", "mac", "linux"]),
        "status": random.choice(["connected", "disconnected"]), "version": random.choice(["2026.1.0", "2026.2.1"]),
        "timestamp": ts, "alwaysOn": True, "batteryPct": random.uniform(0, 100), "cpuPct": random.uniform(0, 100),
        "ramUsedPct": random.uniform(0, 100), "diskUsagePct": random.uniform(0, 100), "wifiStrengthDbm": -60,
        "networkRcvdBps": 5000, "networkSentBps": 4000, "handshakeLatencyMs": 30, "ramAvailableKb": 4096000,
        "cpuPctByApp": [{"cpu_pct": 3.5, "name": "chrome"}], "deviceIpv4": ip("192.168.1.20", 1),
        "ispIpv4": ip("203.0.113.7", 1), "rtt": {"rttUs": d, "minRttUs": d, "rttVarUs": d},
        "tunnelStats": {"bytesSent": d, "bytesReceived": d, "packetsSent": d, "packetsReceived": d, "statsWindowMs": 60000},
    }


def ingest_rate(base, token, bodies, concurrency):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    queue = list(bodies)
    lock = threading.Lock()

    def worker():
        c = conn_for(base)
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            c.request("POST", "/v1/fleet-status/devices", body, headers)
            r = c.getresponse()
            data = r.read()
            assert r.status == 201, data[:300]

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return len(bodies) * 1000 / (time.perf_counter() - start)


def ingest(variants, batches, concurrency, rounds):
    """Rounds of `batches` 1,000-snapshot batches per variant, the variants' order alternating
    from round to round; the median rate of each."""
    rates = {name: [] for name, _, _ in variants}
    size = 0
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for name, base, token in order:
            now = datetime.now(timezone.utc)
            bodies = []
            for b in range(batches):
                items = [snapshot(str(uuid.uuid4()), (now - timedelta(seconds=random.randint(0, 3000)))
                                  .isoformat(timespec="milliseconds").replace("+00:00", "Z")) for _ in range(1000)]
                bodies.append(json.dumps(items).encode())
            size = sum(len(b) for b in bodies) / len(bodies) / 1024
            rates[name].append(ingest_rate(base, token, bodies, concurrency))
    first = statistics.median(rates[variants[0][0]])
    for name, _, _ in variants:
        m = statistics.median(rates[name])
        runs = ", ".join(f"{x:.0f}" for x in rates[name])
        print(f"ingest {name}: {batches} x 1000 snapshots ({size:.0f} KiB per batch), {concurrency} client(s): "
              f"median {m:.0f} snapshots/s ({runs}; x{m / first:.2f} of {variants[0][0]})")


def list_latency(variants, requests, query):
    """`requests` GETs per variant after 5 warm-up ones, alternating between the variants so
    that the machine's noise falls on all of them alike."""
    headers = {n: {"Authorization": f"Bearer {t}"} for n, _, t in variants}
    conns = {n: conn_for(b) for n, b, _ in variants}
    times = {n: [] for n, _, _ in variants}
    total = {}
    for i in range(requests + 5):
        for name, _, _ in (variants if i % 2 == 0 else variants[::-1]):
            c = conns[name]
            start = time.perf_counter()
            c.request("GET", f"/v1/fleet-status/devices?{query}", headers=headers[name])
            r = c.getresponse()
            data = r.read()
            elapsed = time.perf_counter() - start
            assert r.status == 200, data[:300]
            if i >= 5:  # warm-up
                times[name].append(elapsed * 1000)
            info = json.loads(data)["resultInfo"]
            total[name] = f"{info['totalCount']}{'' if info.get('totalCountExact', True) else '+'}"
    p = lambda ts, q: sorted(ts)[min(len(ts) - 1, int(q * len(ts)))]
    first = p(times[variants[0][0]], 0.50)
    for name, _, _ in variants:
        p50 = p(times[name], 0.50)
        print(f"list {name} `{query}` (totalCount {total[name]}): p50 {p50:.1f} ms, "
              f"p99 {p(times[name], 0.99):.1f} ms over {requests} requests; p50 x{p50 / first:.3f} of {variants[0][0]}")


def parse_variants(args):
    """NAME=BASE_URL@TOKEN ..."""
    out = []
    for a in args:
        name, rest = a.split("=", 1)
        base, token = rest.rsplit("@", 1)
        out.append((name, base, token))
    return out


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "ingest":
        ingest(parse_variants(sys.argv[5:]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        list_latency(parse_variants(sys.argv[4:]), int(sys.argv[2]), sys.argv[3])
