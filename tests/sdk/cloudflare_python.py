"""The official Cloudflare Python SDK against Warren's /client/v4: the tunnel connection routes.

Not part of `cargo test` (it needs the SDK from PyPI). Run against a Warren with open
registration:
    python3 -m venv /tmp/cf && /tmp/cf/bin/pip install cloudflare
    /tmp/cf/bin/python tests/sdk/cloudflare_python.py http://127.0.0.1:8080
Checked with cloudflare 5.9.0.
"""
import json
import sys
import urllib.request
import uuid

import cloudflare

base = sys.argv[1]


def call(path, body, token=None):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    if token:
        req.add_header("authorization", f"Bearer {token}")
    return json.load(urllib.request.urlopen(req))


email = f"sdk-{uuid.uuid4().hex[:8]}@example.com"
account = call("/v1/auth/register", {"email": email, "password": "correct horse battery"})["accountId"]
jwt = call("/v1/auth/login", {"email": email, "password": "correct horse battery"})["accessToken"]
key = call("/v1/tokens", {"name": "sdk", "scopes": ["tunnels:read", "tunnels:write"]}, jwt)["token"]
tunnel = call("/v1/tunnels", {"requestedPort": 1}, jwt)["id"]
a, b = str(uuid.uuid4()), str(uuid.uuid4())
for connector in (a, b):
    report = {"id": connector, "arch": "linux_amd64", "version": "2026.1.0", "configVersion": 2,
              "features": ["ha-origin"], "runAt": "2026-03-05T10:30:00Z",
              "connections": [{"id": str(uuid.uuid4()), "coloName": "FRA", "openedAt": "2026-03-05T10:30:01Z"}]}
    call(f"/v1/tunnels/{tunnel}/heartbeat", {"connector": report}, jwt)

v4 = base + "/client/v4"
clients = [cloudflare.Cloudflare(api_token=key, base_url=v4),
           cloudflare.Cloudflare(api_email=email, api_key=key, base_url=v4)]
for client in clients:
    cfd = client.zero_trust.tunnels.cloudflared
    listed = list(cfd.connections.get(tunnel, account_id=account))
    assert sorted(c.id for c in listed) == sorted([a, b]), listed
    assert listed[0].config_version == 2 and listed[0].conns[0].colo_name == "FRA", listed
    assert listed[0].conns[0].is_pending_reconnect is False, listed
    one = cfd.connectors.get(a, account_id=account, tunnel_id=tunnel)
    assert one.id == a and one.conns[0].client_id == a and one.conns[0].client_version == "2026.1.0", one

cfd = clients[0].zero_trust.tunnels.cloudflared
cfd.connections.delete(tunnel, account_id=account, client_id=a)
assert [c.id for c in cfd.connections.get(tunnel, account_id=account)] == [b]
cfd.connections.delete(tunnel, account_id=account)
assert list(cfd.connections.get(tunnel, account_id=account)) == []

for expected, attempt in [
    (cloudflare.NotFoundError, lambda: cfd.connections.get(tunnel, account_id=uuid.uuid4().hex)),
    (cloudflare.NotFoundError, lambda: cfd.connectors.get(str(uuid.uuid4()), account_id=account, tunnel_id=tunnel)),
    (cloudflare.AuthenticationError, lambda: cloudflare.Cloudflare(api_token="wrn_nope", base_url=v4)
        .zero_trust.tunnels.cloudflared.connections.get(tunnel, account_id=account)),
]:
    try:
        attempt()
        raise AssertionError(f"expected {expected.__name__}")
    except expected as err:
        assert err.body["errors"][0]["code"] >= 1000, err.body
print("the Cloudflare Python SDK works against Warren's tunnel connection routes")
