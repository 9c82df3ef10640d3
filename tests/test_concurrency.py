"""Four OS processes append to one ledger at once: no seq is lost or taken twice.

Each worker (``tests/workers/append_worker.py``) builds its own app on the
test's database (SQLite file or PostgreSQL schema) and instance directory,
signals it is ready, waits for a common start signal, then appends 500
entries, one transaction each. The append lock (``BEGIN IMMEDIATE`` /
advisory lock) must serialise them into one dense, verifiable chain.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from dba import DBA
from ledger.verify import LedgerVerifier
from workers.launch import start_worker, worker_config

WORKERS = 4
PER_WORKER = 500


def wait_until(predicate, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, f"worker exited early ({dead[0].returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("pause", [0.001, 0.0], ids=["paced", "flat-out"])
def test_four_processes_append_concurrently(app, ledger, tmp_path, pause):
    """``paced``: a millisecond between a worker's appends, as between requests;
    ``flat-out``: no pause at all, the lock is contended on every append."""
    ledger.size()  # the schema is migrated before any worker starts
    go = tmp_path / "go"
    procs = []
    try:
        for worker in range(WORKERS):
            spec = {"mode": "single", "config": worker_config(app), "worker": worker, "count": PER_WORKER,
                    "pause": pause, "ready": str(tmp_path / f"ready-{worker}"), "go": str(go)}
            procs.append(start_worker(spec, tmp_path / f"worker-{worker}.log"))
        wait_until(lambda: all((tmp_path / f"ready-{w}").exists() for w in range(WORKERS)), 60,
                   "workers to be ready", procs)
        go.touch()
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    for worker, proc in enumerate(procs):
        assert proc.returncode == 0, (tmp_path / f"worker-{worker}.log").read_text()[-3000:]
    results = {r["worker"]: r for r in (json.loads(out.strip().splitlines()[-1]) for out in outputs)}
    assert sorted(results) == list(range(WORKERS))

    # Exactly 2,000 entries, seq 0..1999, none taken twice.
    total = WORKERS * PER_WORKER
    dba = DBA.for_app(app)
    assert dba.seqs() == list(range(total))
    assert ledger.size() == total
    reported = [seq for r in results.values() for seq in r["seqs"]]
    assert sorted(reported) == list(range(total))

    # Every worker's entries are there, in the order it appended them.
    rows = [{"seq": e.seq, "actor": e.actor} for e in ledger.entries(0, total)]
    assert Counter(row["actor"] for row in rows) == {f"worker-{w}": PER_WORKER for w in range(WORKERS)}
    for worker, result in results.items():
        assert result["seqs"] == sorted(result["seqs"])
        payloads = [json.loads(ledger.entry(seq).canonical)["payload"] for seq in result["seqs"][::50]]
        assert payloads == [{"worker": worker, "n": n} for n in range(0, PER_WORKER, 50)]

    # They really ran at once: every worker started before any finished.
    assert max(r["started"] for r in results.values()) < min(r["finished"] for r in results.values())
    # Paced, the chain alternates between workers far more often than the
    # WORKERS - 1 switches of a serial run. (Flat-out, which writer wins the
    # lock next is up to the scheduler, so the number of switches there says
    # little and is not asserted.)
    switches = sum(1 for a, b in zip(rows, rows[1:]) if a["actor"] != b["actor"])
    if pause:
        assert switches > PER_WORKER, f"only {switches} switches between workers"

    # One chain, one tree: it verifies and can be signed.
    checkpoint = ledger.create_checkpoint()
    assert checkpoint.tree_size == total
    report = LedgerVerifier(ledger).verify_full()
    assert report.ok, report.faults
    assert report.entries_checked == total
