"""Starting ``append_worker.py`` processes from tests (imported as ``workers.launch``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "append_worker.py"
ROOT = Path(__file__).resolve().parents[2]
CONFIG_KEYS = ("TESTING", "DATABASE_URL", "DATABASE_SCHEMA", "LEDGER_SIGNING_KEY", "LEDGER_SIGNER_STATE",
               "LEDGER_TRUSTED_KEYS", "LEDGER_CHECKPOINT_DIR", "LEDGER_VERIFY_STATE",
               "LEDGER_CHECKPOINT_EVERY", "LEDGER_CHECKPOINT_SECONDS", "LEDGER_BACKGROUND_CHECKPOINTS")


def worker_config(app) -> dict:
    """The app's own configuration (database, schema, instance files) as JSON-able values."""
    return {key: app.config[key] for key in CONFIG_KEYS}


def start_worker(spec: dict, log_path: Path) -> subprocess.Popen:
    """Start a worker with ``spec``; stdout is a pipe, stderr goes to ``log_path``."""
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=log)
