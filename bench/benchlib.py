"""What the benchmark scripts share: a throwaway PostgreSQL, a release Warren on it, small
HTTP helpers, and writing a section of BENCHMARKS.md. Standard library only."""

import glob
import json
import os
import pwd
import re
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARREN = os.path.join(ROOT, "target", "release", "warren")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        sys.exit("PostgreSQL server binaries not found: apt-get install postgresql")
    return dirs[-1]


class Postgres:
    def __init__(self, workdir, shared_buffers="256MB"):
        self.bin = pg_bin()
        self.dir = os.path.join(workdir, "pg")
        self.port = free_port()
        os.makedirs(self.dir)
        self.as_user = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.as_user = (pw.pw_uid, pw.pw_gid)
            os.chmod(workdir, 0o755)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.run("initdb", "-D", self.dir + "/data", "-U", "bench", "--auth=trust", "-E", "UTF8", "--locale=C")
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300 -c shared_buffers={shared_buffers}"
        self.run("pg_ctl", "-D", self.dir + "/data", "-l", self.dir + "/log", "-w", "-o", opts, "start")
        self.url = f"postgres://bench@127.0.0.1:{self.port}/postgres"

    def run(self, prog, *args, **kw):
        def demote():
            if self.as_user:
                os.setgroups([])
                os.setgid(self.as_user[1])
                os.setuid(self.as_user[0])
        return subprocess.run([os.path.join(self.bin, prog), *args], check=True, preexec_fn=demote,
                              stdout=subprocess.DEVNULL, **kw)

    def psql(self, sql, db="postgres"):
        out = subprocess.run([os.path.join(self.bin, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench",
                              "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        try:
            self.run("pg_ctl", "-D", self.dir + "/data", "-m", "immediate", "stop")
        except Exception:
            pass


def http_json(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def wait_http(url, timeout=60):
    start = time.time()
    while time.time() - start < timeout:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{url} did not come up")


def start_warren(pg, workdir, port, db, **extra):
    env = dict(os.environ, **extra, DATABASE_URL=pg.url.rsplit("/", 1)[0] + "/" + db, WARREN_LISTEN=f"127.0.0.1:{port}",
               WARREN_DATA_DIR=os.path.join(workdir, "warren"), WARREN_JWT_SECRET="bench-secret-bench-secret-bench-secret",
               WARREN_ALLOW_REGISTRATION="true", RUST_LOG="warn", WARREN_LEASE_TTL_SECS="60")
    log = open(os.path.join(workdir, f"warren-{port}.log"), "w")
    proc = subprocess.Popen([WARREN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    wait_http(f"http://127.0.0.1:{port}/readyz")
    return proc


def write_section(path, heading, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    parts = re.split(r"(?m)^(?=## )", old)
    kept = [p for p in parts if not p.startswith(heading)]
    new = "".join(kept).rstrip() + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)
