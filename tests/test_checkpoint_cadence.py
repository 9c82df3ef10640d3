"""Automatic checkpoints under concurrent appends.

A checkpoint signed after a commit must never turn that committed append into
an error (it once did on SQLite: the checkpoint's deferred transaction could
not upgrade its read snapshot while other appends committed, and the
request answered 503 although its entry was in the ledger).
"""

from __future__ import annotations

import threading

from ledger.verify import LedgerVerifier


def test_concurrent_appends_with_frequent_checkpoints_all_succeed(make_app):
    app = make_app(LEDGER_CHECKPOINT_EVERY=7)
    ledger = app.extensions["ledger"]
    errors, done = [], []

    def worker(n):
        for i in range(40):
            try:
                done.append(ledger.append("test.note", f"worker-{n}", f"thing:{n}", {"i": i}).seq)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(done) == list(range(240))
    with ledger.store.read() as conn:
        checkpoints = ledger.store.checkpoints(conn)
    assert len(checkpoints) >= 240 // 7 - 1  # signed along the way, at most one pending
    assert max(c.tree_size for c in checkpoints) <= 240
    report = LedgerVerifier(ledger).verify_full()
    assert report.ok, report.faults
