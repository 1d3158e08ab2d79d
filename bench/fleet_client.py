#!/usr/bin/env python3
"""Fleet-status benchmark client: HTTP ingest rate and list latency against a running Warren.

usage: fleet_client.py BASE_URL TOKEN ingest BATCHES CONCURRENCY
       fleet_client.py BASE_URL TOKEN list REQUESTS QUERY
"""
import http.client
import json
import random
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


def ingest(base, token, batches, concurrency):
    now = datetime.now(timezone.utc)
    bodies = []
    for b in range(batches):
        items = [snapshot(str(uuid.uuid4()), (now - timedelta(seconds=random.randint(0, 3000)))
                          .isoformat(timespec="milliseconds").replace("+00:00", "Z")) for _ in range(1000)]
        bodies.append(json.dumps(items).encode())
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
    elapsed = time.perf_counter() - start
    size = sum(len(b) for b in bodies) / len(bodies) / 1024
    print(f"ingest: {batches} x 1000 snapshots ({size:.0f} KiB per batch), {concurrency} client(s): "
          f"{elapsed:.2f} s, {batches * 1000 / elapsed:.0f} snapshots/s")


def list_latency(base, token, requests, query):
    c = conn_for(base)
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    total = None
    for i in range(requests + 5):
        start = time.perf_counter()
        c.request("GET", f"/v1/fleet-status/devices?{query}", headers=headers)
        r = c.getresponse()
        data = r.read()
        elapsed = time.perf_counter() - start
        assert r.status == 200, data[:300]
        if i >= 5:  # warm-up
            times.append(elapsed * 1000)
        total = json.loads(data)["resultInfo"]["totalCount"]
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"list `{query}` (totalCount {total}): p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms over {len(times)} requests")


if __name__ == "__main__":
    base, token, mode = sys.argv[1:4]
    if mode == "ingest":
        ingest(base, token, int(sys.argv[4]), int(sys.argv[5]))
    else:
        list_latency(base, token, int(sys.argv[4]), sys.argv[5])
