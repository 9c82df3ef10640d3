"""SIGKILL in the middle of an append: what was acknowledged survives, intact.

A worker process appends batches of 50 entries, one transaction each, and
prints a line for each batch only after its commit returned (so a line means
"acknowledged to the client"). The test kills it with SIGKILL after a few
hundred acknowledged entries, while it is inside the next batch's
transaction, then checks: the ledger verifies; every acknowledged entry is
there with the payload and leaf hash the worker logged; nothing of a batch is
half there; and the ledger takes new entries and checkpoints afterwards.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

import pytest

from dba import DBA
from ledger.verify import LedgerVerifier
from workers.launch import start_worker, worker_config

BATCH = 50
KILL_AFTER = 300  # acknowledged entries


class LineReader:
    """Read a child's stdout line by line with a deadline (never blocks forever)."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buffer = b""

    def lines(self, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                yield line
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out reading the worker's output"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            self.buffer += chunk


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_acknowledged(app, ledger, tmp_path, runner):
    ledger.size()  # migrated before the worker starts
    spec = {"mode": "batches", "config": worker_config(app), "batch": BATCH, "pause": 0.02}
    log = tmp_path / "worker.log"
    proc = start_worker(spec, log)
    acked = []
    try:
        reader = LineReader(proc.stdout)
        for line in reader.lines(timeout=60):
            acked.append(json.loads(line))
            if acked[-1]["last"] + 1 >= KILL_AFTER:
                # The worker went straight into the next batch's transaction
                # (and pauses 20 ms in it before committing): kill it there.
                time.sleep(0.005)
                os.kill(proc.pid, signal.SIGKILL)
                break
        assert acked, log.read_text()[-3000:]
        assert acked[-1]["last"] + 1 >= KILL_AFTER, log.read_text()[-3000:]
        # Lines written before the kill are acknowledged too: read them all.
        acked.extend(json.loads(line) for line in reader.lines(timeout=30))
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    # Acknowledged batches are consecutive and dense from seq 0.
    assert [a["batch"] for a in acked] == list(range(len(acked)))
    assert [(a["first"], a["last"]) for a in acked] == [(b * BATCH, b * BATCH + BATCH - 1)
                                                        for b in range(len(acked))]
    acknowledged = acked[-1]["last"] + 1

    # The database holds every acknowledged entry and, at most, one whole
    # batch more (committed, killed before it could print); never half a batch.
    size = ledger.size()
    assert size in (acknowledged, acknowledged + BATCH), (size, acknowledged)
    assert DBA.for_app(app).seqs() == list(range(size))

    # Every acknowledged entry has the payload and leaf hash the worker logged.
    stored = {e.seq: e for e in ledger.entries(0, acknowledged)}
    for batch in acked:
        for offset, (leaf, payload) in enumerate(zip(batch["leaves"], batch["payloads"])):
            entry = stored[batch["first"] + offset]
            assert entry.leaf_hash.hex() == leaf
            assert json.loads(entry.canonical)["payload"] == payload
            assert (entry.kind, entry.subject) == ("test.crash", f"batch:{batch['batch']}")

    # The chain left behind verifies.
    report = LedgerVerifier(ledger).verify_full()
    assert report.ok, report.faults
    assert report.entries_checked == size

    # And the ledger goes on: appends, a checkpoint, a clean verification.
    more = ledger.append_many([{"kind": "test.after_crash", "actor": "tester", "subject": f"thing:{i}",
                                "payload": {"i": i}} for i in range(BATCH)])
    assert [e.seq for e in more] == list(range(size, size + BATCH))
    checkpoint = ledger.create_checkpoint()
    assert checkpoint.tree_size == size + BATCH
    report = LedgerVerifier(ledger).verify_full()
    assert report.ok, report.faults
    assert report.verified_checkpoint == (size + BATCH, checkpoint.root_hash)
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith(f"OK (full): entries 0..{size + BATCH - 1}; ")
