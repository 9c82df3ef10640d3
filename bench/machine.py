"""What a benchmark ran on: machine, versions, database settings, code (shared by bench/*)."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import sqlalchemy
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PG_SETTINGS = ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers", "max_wal_size",
               "full_page_writes", "commit_delay")


def machine_info(pg_url: str | None, **extra) -> dict:
    """Machine, versions and code of this run; PostgreSQL's version and settings if ``pg_url``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "tempdir": f"{tempfile.gettempdir()} ({filesystem_of(tempfile.gettempdir())})",
        "postgresql": None,
        "load": load_average(),
        "code": code_version(),
        **extra,
    }
    if pg_url:
        try:
            with psycopg.connect(conninfo(pg_url), connect_timeout=5) as conn:
                info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
                info["postgresql_settings"] = {
                    name: conn.execute(f"SHOW {name}").fetchone()[0] for name in PG_SETTINGS}
        except psycopg.Error as e:
            info["postgresql"] = f"unreachable ({e.__class__.__name__})"
    return info


def filesystem_of(path: str) -> str:
    """``<fstype> on <device>`` of the mount holding ``path``."""
    best, kind, device = "", "?", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mount, fstype = line.split()[:3]
            if (path + "/").startswith(mount.rstrip("/") + "/") and len(mount) >= len(best):
                best, kind, device = mount, fstype, dev
    except OSError:
        pass
    return f"{kind} on {device}"


def load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def code_version() -> str:
    """The commit measured, and whether the code it runs differs from it.

    In an exported tree (``git archive``) without ``.git``, the commit comes
    from a ``COMMIT`` file at the root.
    """
    if not (ROOT / ".git").exists():
        marker = ROOT / "COMMIT"
        return (marker.read_text().strip() + " (exported tree)") if marker.exists() else "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ledger", "governance", "app.py",
                                "migrations"], cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + (" + uncommitted changes to ledger/governance/app/migrations" if dirty else "")


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (driver part ignored)."""
    u = make_url(url)
    parts = {"host": u.host or "127.0.0.1", "port": u.port or 5432, "user": u.username or "postgres",
             "dbname": u.database or "postgres", "password": u.password}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)
