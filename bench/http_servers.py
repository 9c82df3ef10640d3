"""Servers started by ``bench.http_api``: granian or gunicorn (the app, a trivial WSGI app) and MLflow.

Every server binds 127.0.0.1 on a free port, is started as a process of its
own session (so the run can stop it and its workers by its own pid), and is
stopped by the run that started it: SIGTERM to the master, SIGKILL to the
process group only if it has not exited after a grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .http_load import Connection, children_of, encode

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"


@dataclass(frozen=True)
class WorkerConfig:
    """One server configuration: gunicorn (sync or gthread workers) or granian (WSGI)."""

    worker_class: str  # "gthread", "sync" or "granian"
    workers: int
    threads: int = 1  # gthread: threads per process; granian: blocking threads per process

    @property
    def label(self) -> str:
        if self.worker_class == "granian":
            return f"granian {self.workers}x{self.threads}"
        return (f"gthread {self.workers}x{self.threads}" if self.worker_class == "gthread"
                else f"sync {self.workers}")

    @property
    def key(self) -> str:
        return self.label.replace(" ", "-")

    @property
    def title(self) -> str:
        """The label with the server's name: ``granian 2x1``, ``gunicorn sync 2``."""
        return self.label if self.worker_class == "granian" else f"gunicorn {self.label}"

    @property
    def server(self) -> str:
        return "granian" if self.worker_class == "granian" else "gunicorn"

    def args(self) -> list[str]:
        if self.worker_class == "granian":
            return ["--interface", "wsgi", "--workers", str(self.workers),
                    "--blocking-threads", str(self.threads)]
        out = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class == "gthread":
            out += ["--threads", str(self.threads)]
        return out


# What `make run` starts (granian, 2 processes of 1 thread).
DEFAULT_CONFIG = WorkerConfig("granian", 2, 1)


def parse_config(text: str) -> WorkerConfig:
    """``gthread-2x4``, ``sync-3`` or ``granian-2x1`` (processes x blocking threads)."""
    kind, _, shape = text.partition("-")
    if kind in ("gthread", "granian"):
        workers, _, threads = shape.partition("x")
        return WorkerConfig(kind, int(workers), int(threads or (4 if kind == "gthread" else 1)))
    if kind == "sync":
        return WorkerConfig("sync", int(shape))
    raise ValueError(f"server configuration {text!r}: use gthread-<workers>x<threads>, sync-<workers> "
                     "or granian-<workers>x<threads>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A started server process (a gunicorn master, or MLflow's launcher)."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict, log_path: Path,
                 ready_path: str, cwd: Path = ROOT):
        self.name = name
        self.port = port
        self.log_path = log_path
        self.ready_path = ready_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        raw = encode("GET", self.ready_path)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n"
                                   + self.tail())
            conn = Connection(self.port)
            try:
                status, _ = conn.request(raw)
                if status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log_path}:\n" + self.tail())

    def pids(self) -> list[int]:
        """The master/launcher and every descendant (gunicorn or uvicorn workers)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children_of(pid))
        return found

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # our own session only
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self._log.close()


def start_server(app_spec: str, config: WorkerConfig, env: dict, log_dir: Path, tag: str,
                 ready_path: str = "/healthz") -> Server:
    """Start ``app_spec`` as ``make run`` does (bind 127.0.0.1, access log), with ``config``'s server.

    gunicorn writes its access log to a file; granian's access log goes
    through Python logging to its standard output (the server log here).
    """
    port = free_port()
    access = log_dir / f"{tag}-access.log"
    if config.server == "granian":
        cmd = [str(VENV_BIN / "granian"), "--host", "127.0.0.1", "--port", str(port), *config.args(),
               "--access-log"]
        if app_spec.endswith("()"):
            cmd += ["--factory"]
            app_spec = app_spec[:-2]
    else:
        cmd = [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", *config.args(),
               "--access-logfile", str(access)]
    cmd.append(app_spec)
    server = Server(f"{config.title} ({app_spec})", cmd, port, env,
                    log_dir / f"{tag}-{config.server}.log", ready_path)
    server.wait_ready()
    return server
