"""Threads of one process appending at once: each transaction is durable when it
returns, a failing one rolls back alone, and the ledger stays dense and valid."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from ledger.verify import LedgerVerifier


class Boom(Exception):
    pass


def _run_threads(count, target):
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _committed(app, sql: str) -> list[tuple]:
    """Rows visible to a brand-new connection, i.e. committed."""
    url, schema = app.config["DATABASE_URL"], app.config["DATABASE_SCHEMA"]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if schema:
                conn.execute(text(f'SET search_path TO "{schema}"'))
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _committed_seqs(app) -> set[int]:
    return {row[0] for row in _committed(app, "SELECT seq FROM ledger_entry")}


def test_concurrent_transactions_each_return_durable(app):
    ledger = app.extensions["ledger"]
    returned, errors, not_yet_durable = [], [], []
    barrier = threading.Barrier(8)

    def worker(n):
        barrier.wait()
        for i in range(25):
            try:
                with ledger.transaction() as writer:
                    entry = writer.append("test.note", f"worker-{n}", f"thing:{n}", {"i": i})
                # when the transaction returns, the entry is committed for everyone
                if entry.seq not in _committed_seqs(app):
                    not_yet_durable.append(entry.seq)
                returned.append(entry.seq)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

    _run_threads(8, worker)
    assert errors == [] and not_yet_durable == []
    assert sorted(returned) == list(range(200))
    assert LedgerVerifier(ledger).verify_full().ok


def test_a_failing_transaction_rolls_back_alone(app):
    ledger = app.extensions["ledger"]
    kept, failed = [], []
    barrier = threading.Barrier(6)

    def worker(n):
        barrier.wait()
        for i in range(20):
            fail = (n + i) % 3 == 0
            try:
                with ledger.transaction() as writer:
                    entry = writer.append("test.note", f"worker-{n}", f"thing:{n}:{i}", {"n": n, "i": i})
                    if fail:
                        raise Boom(f"{n}:{i}")
                kept.append((n, i, entry.seq))
            except Boom:
                failed.append((n, i))

    _run_threads(6, worker)
    assert len(failed) == sum(1 for n in range(6) for i in range(20) if (n + i) % 3 == 0)
    size = ledger.size()
    assert size == len(kept) == 120 - len(failed)
    assert sorted(seq for _, _, seq in kept) == list(range(size))  # dense: failures left no gap
    for n, i, seq in kept:
        assert ledger.entry(seq).subject == f"thing:{n}:{i}"
    subjects = {ledger.entry(s).subject for s in range(size)}
    assert not any(f"thing:{n}:{i}" in subjects for n, i in failed)
    # the audit rows, inserted with the entries just before COMMIT, were
    # rolled back with them: one per kept entry, none for a failed one
    audit = dict(_committed(app, "SELECT seq, subject FROM gov_audit_event"))
    assert audit == {seq: f"thing:{n}:{i}" for n, i, seq in kept}
    assert LedgerVerifier(ledger).verify_full().ok


def test_a_lone_transaction_commits_at_once(app):
    ledger = app.extensions["ledger"]
    with ledger.transaction() as writer:
        writer.append("test.note", "solo", "thing:1", {})
        assert _committed_seqs(app) == set()  # not before the commit
    assert _committed_seqs(app) == {0}
    with pytest.raises(Boom):
        with ledger.transaction() as writer:
            writer.append("test.note", "solo", "thing:2", {})
            raise Boom("no")
    assert ledger.size() == 1 and _committed_seqs(app) == {0}
