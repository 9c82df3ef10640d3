"""A live server of ``app:create_app`` for the guides, and the shell they run in.

The server is granian, as ``make run`` starts it, on a free port of
127.0.0.1, with every file of the ledger (database, signing key, signer state,
published checkpoints, web session key) under a temporary directory given
through environment variables. The guides' commands get the same environment,
so ``.venv/bin/flask --app app ...`` sees the server's database and keys.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from pathlib import Path

from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
WORKERS = 2
# Settings of the developer's shell that would point the guides elsewhere.
FOREIGN = ("MAKE", "MFLAGS", "LEDGER_", "DATABASE_", "GRANIAN_", "GOVERNANCE_", "OIDC_", "POLICY_DIR",
           "SECRET_KEY", "WEB_SESSION_", "SESSION_COOKIE_", "GATE_", "GOV_", "MAX_CONTENT_LENGTH")


def guide_environment(database: tuple[str, str | None], home: Path) -> dict:
    """The environment of the server and of the guides: every ledger file under ``home``."""
    url, schema = database
    instance = home / "instance"
    scratch = home / "tmp"  # mktemp in the guides writes here, removed with home
    instance.mkdir()
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update({
        "DATABASE_URL": url,
        "DATABASE_SCHEMA": schema or "",
        "LEDGER_SIGNING_KEY": str(instance / "signing.key"),
        "LEDGER_CHECKPOINT_DIR": str(instance / "checkpoints"),
        "LEDGER_VERIFY_STATE": str(instance / "verify-state.json"),
        "WEB_SESSION_KEY_FILE": str(instance / "web-session.key"),
        "TMPDIR": str(scratch),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


class LiveServer:
    """granian serving ``app:create_app`` (migrated, with a signing key) until :meth:`stop`."""

    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        for command in (["db", "upgrade"], ["ledger", "init-key"]):  # what `make run` does first
            done = subprocess.run([str(VENV_BIN / "flask"), "--app", "app", *command], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"flask {' '.join(command)}:\n{done.stdout}{done.stderr}"
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(WORKERS), "--blocking-threads", "1", "--access-log", "--factory",
             "app:create_app"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"granian exited with {self.proc.returncode}:\n{self.log()}"
            try:
                # every worker, not just the one that answered: a worker still
                # loading the app when told to stop lingers until its kill timeout
                if self.get("/readyz")[0] == 200 and self.log().count("Started worker-") >= WORKERS:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 45.0) -> None:
        """SIGTERM to granian's main process, as a process manager stops it; SIGKILL if it lingers."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            deadline = time.monotonic() + 10  # the workers are in its process group
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)
            os.killpg(self.proc.pid, signal.SIGKILL)
        finally:
            self._log.close()
