"""``make run`` serves the app: the README's command, the real HTTP server, real requests.

Most of the suite calls the app through Flask's test client or werkzeug's
development server; here ``make run`` itself (granian by default, gunicorn
with ``SERVER=gunicorn``) is driven end to end: set-up (migrations, signing
key), readiness, the checkpoint signed at start, an authenticated write,
hostile bodies (chunked ones included) answered by the app and not by a
crash, keep-alive, the access log, and a clean stop on SIGTERM to the
server's main process (what a process manager sends). The database is the
suite's (a SQLite file, or a PostgreSQL schema under ``DATABASE_URL``).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ports import free_port

ROOT = Path(__file__).resolve().parents[1]
FLASK = Path(sys.executable).with_name("flask")
MAX_BODY = 64 * 1024
WORKERS = 2
STARTED = {"granian": "Started worker-", "gunicorn": "Booting worker with pid"}  # one line per worker


class Served:
    def __init__(self, server: str, database, tmp_path: Path):
        url, schema = database
        instance = tmp_path / "instance"
        instance.mkdir()
        # Not inherited: an enclosing make's flags, or a stray setting of the developer's.
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("MAKE", "MFLAGS", "LEDGER_", "DATABASE_", "GRANIAN_"))}
        self.env.update({
            "DATABASE_URL": url, "DATABASE_SCHEMA": schema or "",
            "LEDGER_SIGNING_KEY": str(instance / "signing.key"),
            "LEDGER_CHECKPOINT_DIR": str(instance / "checkpoints"),
            "LEDGER_VERIFY_STATE": str(instance / "verify-state.json"),
            "WEB_SESSION_KEY_FILE": str(instance / "web-session.key"),
            "MAX_CONTENT_LENGTH": str(MAX_BODY),
        })
        self.started_marker = STARTED[server]
        self.port = free_port()
        self.log_path = tmp_path / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"SERVER={server}", f"PORT={self.port}",
             f"WORKERS={WORKERS}"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make run exited with {self.proc.returncode}:\n{self.log()}"
            try:
                status, _, _ = self.request("GET", "/readyz")
                # every worker, not just the one that answered: granian leaves a
                # worker that is still loading the app running until its kill
                # timeout (30 s) when told to stop
                if status == 200 and self.log().count(self.started_marker) >= WORKERS:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready after {timeout} s:\n{self.log()}")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, token=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            if own:
                conn.close()

    def token(self, name: str, role: str) -> str:
        out = subprocess.run([str(FLASK), "--app", "app", "tokens", "create", "--name", name, "--role", role],
                             cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return next(word for word in out.stdout.split() if word.startswith("mlg_"))

    def stop(self, timeout: float = 45.0) -> int:
        if self.proc.poll() is None:
            # SIGTERM to the server's main process (make exec'd it), as a process
            # manager stops a service. Not to the whole group: granian workers that
            # get the signal themselves (Ctrl-C in a terminal) sometimes miss the
            # stop and are killed only after --workers-kill-timeout (30 s).
            main = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
            for pid in main.stdout.split():
                os.kill(int(pid), signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError(f"still running {timeout} s after SIGTERM:\n{self.log()}")
        self._log.close()
        deadline = time.monotonic() + 10  # the workers are in make's process group too
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return self.proc.returncode
            time.sleep(0.1)
        os.killpg(self.proc.pid, signal.SIGKILL)
        raise AssertionError("server processes left behind after make run exited")


def chunks(body: bytes, size: int = 16 * 1024):
    """``body`` as an iterable, which http.client sends with ``Transfer-Encoding: chunked``."""
    return (body[i:i + size] for i in range(0, len(body), size))


@pytest.fixture(params=["granian", "gunicorn"])
def served(request, database, tmp_path):
    served = Served(request.param, database, tmp_path)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def test_make_run_serves_the_app(served, request):
    """One scenario per server (starting one costs seconds: migrations, key, workers)."""
    status, _, body = served.request("GET", "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = served.request("GET", "/readyz")
    assert status == 200, body
    # The signing key was made by `make run` where the environment said, not in the repo.
    assert Path(served.env["LEDGER_SIGNING_KEY"]).exists()
    # A fresh server signed a checkpoint of its empty ledger when it started.
    status, _, body = served.request("GET", "/api/v1/ledger/checkpoint")
    assert status == 200 and json.loads(body)["tree_size"] == 0, body

    author = served.token("alice", "author")
    headers = {"Content-Type": "application/json"}

    # Hostile bodies get the app's answers, not the server's or a crash, and record nothing.
    status, _, body = served.request("POST", "/api/v1/models", b'{"name": "x",', token=author, headers=headers)
    assert status == 400 and json.loads(body)["code"] == 400, body
    status, _, body = served.request("POST", "/api/v1/models", b"[" * 30_000 + b"]" * 30_000,
                                     token=author, headers=headers)
    assert status == 400, body
    big = json.dumps({"name": "big", "owner": "x" * (MAX_BODY + 1)}).encode()
    status, _, body = served.request("POST", "/api/v1/models", big, token=author, headers=headers)
    assert status == 413, body
    status, _, body = served.request("POST", "/api/v1/models", b"\xff\xfe\x00garbage", token=author,
                                     headers=headers)
    assert status == 400, body
    # A chunked body (no Content-Length to check up front) is held to the same limit.
    minimal = {"owner": "eve", "risk_tier": "minimal", "uses_personal_data": False}
    padded = json.dumps({"name": "padded", **minimal}).encode() + b" " * MAX_BODY
    status, _, body = served.request("POST", "/api/v1/models", chunks(padded), token=author, headers=headers)
    assert status == 413 and json.loads(body)["code"] == 413, body
    long = json.dumps({"name": "long", **minimal, "description": "x" * MAX_BODY}).encode()
    status, _, body = served.request("POST", "/api/v1/models", chunks(long), token=author, headers=headers)
    assert status == 413 and json.loads(body)["code"] == 413, body
    status, _, body = served.request("GET", "/api/v1/models", token=author)
    assert status == 200 and json.loads(body) == [], body
    # Within the limit a chunked body is read whole.
    spaced = json.dumps({"name": "chunked", **minimal}).encode()
    spaced = spaced[:-1] + b" " * (MAX_BODY // 2) + spaced[-1:]
    status, _, body = served.request("POST", "/api/v1/models", chunks(spaced), token=author, headers=headers)
    assert status == 201 and json.loads(body)["name"] == "chunked", body

    model = {"name": "credit-risk", "owner": "eve", "risk_tier": "high", "uses_personal_data": True,
             "protected_attributes": ["sex"]}
    status, _, body = served.request("POST", "/api/v1/models", model, token=author)
    assert status == 201, body
    status, _, body = served.request("GET", "/api/v1/models/credit-risk")
    assert status == 401, body

    # Keep-alive: granian serves several requests on one connection (gunicorn's
    # sync workers close it after each response).
    conn = served.connection()
    try:
        sockets = []
        for _ in range(3):
            status, _, body = served.request("GET", "/api/v1/models/credit-risk", token=author, conn=conn)
            assert status == 200 and json.loads(body)["name"] == "credit-risk"
            sockets.append(conn.sock)
        if request.node.callspec.params["served"] == "granian":
            assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
    finally:
        conn.close()

    # The requests reached the access log (the server's standard output).
    deadline = time.monotonic() + 10
    while "/api/v1/models/credit-risk" not in served.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "POST /api/v1/models" in served.log()
    assert "GET /api/v1/models/credit-risk" in served.log()

    # SIGTERM to the server stops it, its workers and make.
    served.stop()
    assert "Traceback" not in served.log()
    with pytest.raises(OSError):
        served.request("GET", "/healthz")
