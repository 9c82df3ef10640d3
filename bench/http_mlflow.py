"""MLflow's model registry as a side-by-side peer (benchmark only, never a dependency).

MLflow lives in its own virtual environment, ``bench/.mlflow-venv``, created
on first use with ``pip install mlflow`` from the package registry. Its
server runs on 127.0.0.1 over a SQLite file in the run's temporary directory
(the same filesystem as our SQLite ledger), and model-version creation is
driven exactly like our registrations: the same client, 16 keep-alive
connections, the same bounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .http_load import call, encode, run_phase
from .http_servers import ROOT, Server, free_port

MLFLOW_VENV = ROOT / "bench" / ".mlflow-venv"
MLFLOW_BIN = MLFLOW_VENV / "bin" / "mlflow"


def ensure_mlflow(log) -> tuple[str | None, str | None]:
    """Return (version, None), installing MLflow if needed, or (None, why it is unavailable)."""
    python = MLFLOW_VENV / "bin" / "python"
    if not MLFLOW_BIN.exists():
        log(f"installing MLflow into {MLFLOW_VENV.relative_to(ROOT)} (pip install mlflow) ...")
        try:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True,
                               capture_output=True, timeout=300)
            done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                                   "-q", "mlflow"], capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"could not create the MLflow environment: {e}"
        if done.returncode != 0 or not MLFLOW_BIN.exists():
            return None, "pip install mlflow failed: " + (done.stderr or done.stdout)[-800:]
    try:
        out = subprocess.run([str(python), "-c", "import mlflow, sqlalchemy; "
                              "print(mlflow.__version__, sqlalchemy.__version__)"],
                             capture_output=True, text=True, timeout=120, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"MLflow is installed but does not import: {e}"
    return f"MLflow {out[0]} (SQLAlchemy {out[1]})", None


def start_mlflow(workdir: Path, workers: int, tag: str) -> Server:
    """``mlflow server`` (uvicorn, its default) with a SQLite backend store, on 127.0.0.1."""
    port = free_port()
    db = workdir / f"mlflow-{tag}.db"
    artifacts = workdir / f"mlflow-{tag}-artifacts"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}"}
    cmd = [str(MLFLOW_BIN), "server", "--backend-store-uri", f"sqlite:///{db}",
           "--default-artifact-root", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    server = Server(f"mlflow server --workers {workers}", cmd, port, env,
                    workdir / f"mlflow-{tag}.log", "/health")
    server.wait_ready(timeout=180)
    return server


def sqlite_journal_mode(path: Path) -> str:
    import sqlite3

    with sqlite3.connect(path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    return f"journal_mode={mode}, synchronous={sync} (per-connection default)"


def measure_mlflow(workdir: Path, workers: int, clients: int, max_requests: int, max_seconds: float,
                   log) -> dict:
    """Model versions created/s over HTTP against ``mlflow server --workers N``."""
    tag = f"w{workers}"
    server = start_mlflow(workdir, workers, tag)
    try:
        models = [f"bench-model-{i:02d}" for i in range(clients)]
        for name in models:
            call(server.port, "POST", "/api/2.0/mlflow/registered-models/create", {"name": name})
        # warm every worker and connection path once
        for i in range(clients):
            call(server.port, "GET", f"/api/2.0/mlflow/registered-models/get?name={models[i]}")
        health = run_phase("mlflow /health", server.port, lambda i, n: encode("GET", "/health"),
                           clients, max_requests, min(max_seconds, 10),
                           cpu_groups={"server": server.pids})

        def create(i: int, n: int) -> bytes:
            return encode("POST", "/api/2.0/mlflow/model-versions/create", {
                "name": models[i], "source": f"s3://bench-artifacts/{models[i]}/{n}/model",
                "description": "benchmark version", "tags": [{"key": "framework", "value": "sklearn"}]})

        created = run_phase("mlflow model-versions/create", server.port, create, clients,
                            max_requests, max_seconds, expect=(200,),
                            cpu_groups={"server": server.pids})
        journal = sqlite_journal_mode(workdir / f"mlflow-{tag}.db")
    finally:
        server.stop()
    log(f"  mlflow --workers {workers}: {created.as_json()['per_s']:.0f} versions/s, "
        f"/health {health.as_json()['per_s']:.0f}/s")
    return {"workers": workers, "health": health.as_json(), "create": created.as_json(),
            "sqlite": journal}
