#!/usr/bin/env python3
"""Prepares a fresh Warren for .ci/run's schemathesis step and prints shell exports.

Waits for /readyz, registers the first user (always allowed), logs in, creates an API token
with every scope, reports one device snapshot (so the live-status routes have a device), and
prints WARREN_TOKEN, WARREN_EMAIL, WARREN_ACCOUNT_ID and WARREN_DEVICE_ID for the config in
.ci/schemathesis.toml. Standard library only.
"""

import datetime
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

BASE = sys.argv[1]
EMAIL = "schemathesis@example.com"
PASSWORD = "schemathesis-password-0"
SCOPES = ["tunnels:read", "tunnels:write", "tunnels:heartbeat", "dex:read", "dex:write", "tokens:write",
          "events:read", "webhooks:write"]


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read() or b"null")


def wait_ready(seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call("GET", "/readyz")
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise SystemExit("warren did not become ready")
            time.sleep(0.5)


wait_ready()
user = call("POST", "/v1/auth/register", {"email": EMAIL, "password": PASSWORD})
login = call("POST", "/v1/auth/login", {"email": EMAIL, "password": PASSWORD})
token = call("POST", "/v1/tokens", {"name": "schemathesis", "scopes": SCOPES}, login["accessToken"])["token"]
device = str(uuid.uuid4())
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
snapshot = {"deviceId": device, "colo": "FRA", "mode": "proxy", "platform": "linux",
            "status": "connected", "version": "1.0.0", "timestamp": now}
call("POST", "/v1/fleet-status/devices", snapshot, token)
print(f"export WARREN_TOKEN={token} WARREN_EMAIL={EMAIL} "
      f"WARREN_ACCOUNT_ID={user['accountId']} WARREN_DEVICE_ID={device}")
