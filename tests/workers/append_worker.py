"""A separate OS process appending to a test's ledger through its own app.

Run as ``python tests/workers/append_worker.py SPEC_JSON``; the spec holds the
app ``config`` (the test's database URL/schema and instance files) and:

- ``mode: "single"``: after creating ``ready`` and waiting for ``go`` to
  exist, append ``count`` entries, each in its own transaction (sleeping
  ``pause`` seconds between two, outside any transaction); print one JSON
  line ``{"worker", "started", "finished", "seqs"}`` at the end.
- ``mode: "batches"``: append batches of ``batch`` entries, one transaction
  each (pausing ``pause`` seconds inside it, before commit), and after each
  commit print ``{"batch", "first", "last", "leaves", "payloads"}`` and
  flush: a line on stdout means the batch is durable. Runs until killed (or
  ``max_batches``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app import create_app  # noqa: E402


def batch_payload(batch: int, j: int) -> dict:
    """The payload of entry ``j`` of batch ``batch``."""
    return {"batch": batch, "j": j, "note": f"entry {j} of batch {batch}"}


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.002)


def run_single(ledger, spec: dict) -> None:
    worker = spec["worker"]
    ledger.size()  # connect before the start signal
    Path(spec["ready"]).touch()
    wait_for(Path(spec["go"]))
    started = time.time()
    pause = spec.get("pause", 0.0)
    seqs = []
    for n in range(spec["count"]):
        seqs.append(ledger.append("test.concurrent", f"worker-{worker}", f"worker:{worker}",
                                  {"worker": worker, "n": n}).seq)
        if pause:
            time.sleep(pause)  # a request's worth of work between two appends
    finished = time.time()
    print(json.dumps({"worker": worker, "started": started, "finished": finished, "seqs": seqs}),
          flush=True)


def run_batches(ledger, spec: dict) -> None:
    size, pause = spec["batch"], spec.get("pause", 0.0)
    for batch in range(spec.get("max_batches", 1_000_000)):
        payloads = [batch_payload(batch, j) for j in range(size)]
        with ledger.transaction() as writer:
            appended = [writer.append("test.crash", "crash-worker", f"batch:{batch}", payload)
                        for payload in payloads]
            if pause:
                time.sleep(pause)
        # Only now, after commit, is the batch acknowledged.
        sys.stdout.write(json.dumps({"batch": batch, "first": appended[0].seq, "last": appended[-1].seq,
                                     "leaves": [e.leaf_hash.hex() for e in appended],
                                     "payloads": payloads}) + "\n")
        sys.stdout.flush()


def main() -> None:
    spec = json.loads(sys.argv[1])
    app = create_app(spec["config"])
    ledger = app.extensions["ledger"]
    try:
        {"single": run_single, "batches": run_batches}[spec["mode"]](ledger, spec)
    finally:
        app.extensions["db_engine"].dispose()


if __name__ == "__main__":
    main()
