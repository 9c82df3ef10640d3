"""The database itself refuses to change ledger rows (migration 0001's triggers).

Statements are plain SQL from a separate connection, as a DBA would type
them: entries and checkpoints accept INSERT only (UPDATE, DELETE and, on
PostgreSQL, TRUNCATE are rejected with an IntegrityError saying the table is
append-only); keys accept one change, setting ``retired`` once.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from dba import DBA, POSTGRES_TRIGGERS, SQLITE_TRIGGERS


@pytest.fixture
def dba(app):
    admin = DBA.connect(app.config["DATABASE_URL"], app.config["DATABASE_SCHEMA"])
    yield admin
    admin.close()


@pytest.fixture
def populated(ledger, fill):
    """Entries, a checkpoint and its key row, so every table has rows to attack."""
    fill(12)
    ledger.create_checkpoint()
    fill(3)
    return ledger


def test_every_trigger_is_installed(app, dba):
    expected = POSTGRES_TRIGGERS if dba.postgres else SQLITE_TRIGGERS
    assert dba.triggers() == {name for names in expected.values() for name in names}


REJECTED = [
    ("ledger_entry", "UPDATE", "UPDATE ledger_entry SET nodes = NULL WHERE seq = 3"),
    ("ledger_entry", "UPDATE", "UPDATE ledger_entry SET canonical = canonical WHERE seq = 0"),
    ("ledger_entry", "UPDATE", "UPDATE ledger_entry SET seq = seq + 100 WHERE seq = 14"),
    ("ledger_entry", "UPDATE", "UPDATE ledger_entry SET nodes = NULL"),
    ("ledger_entry", "DELETE", "DELETE FROM ledger_entry WHERE seq = 14"),
    ("ledger_entry", "DELETE", "DELETE FROM ledger_entry WHERE seq >= 5"),
    ("ledger_checkpoint", "UPDATE", "UPDATE ledger_checkpoint SET note = 'forged'"),
    ("ledger_checkpoint", "UPDATE", "UPDATE ledger_checkpoint SET tree_size = 15"),
    ("ledger_checkpoint", "DELETE", "DELETE FROM ledger_checkpoint WHERE tree_size = 12"),
]


@pytest.mark.parametrize(("table", "action", "sql"), REJECTED,
                         ids=[f"{t}-{a}-{i}" for i, (t, a, _) in enumerate(REJECTED)])
def test_update_and_delete_are_rejected(populated, dba, table, action, sql):
    before = dba.snapshot()
    with pytest.raises(IntegrityError, match=f"table {table} is append-only: {action} rejected"):
        dba.execute(sql)
    assert dba.snapshot() == before


@pytest.mark.parametrize("table", ["ledger_entry", "ledger_checkpoint", "ledger_key"])
def test_emptying_a_table_is_rejected(populated, dba, table):
    """TRUNCATE on PostgreSQL; on SQLite a DELETE without WHERE (its truncate
    optimisation is off when the table has triggers, so they fire)."""
    before = dba.snapshot()
    if dba.postgres:
        sql = f"TRUNCATE {table} CASCADE" if table == "ledger_key" else f"TRUNCATE {table}"
        expected = r"is append-only: TRUNCATE rejected"
    else:
        sql = f"DELETE FROM {table}"
        expected = f"table {table} is append-only: DELETE rejected"
    with pytest.raises(IntegrityError, match=expected):
        dba.execute(sql)
    assert dba.snapshot() == before


def test_rejection_rolls_back_the_whole_transaction(populated, dba):
    """A rejected UPDATE takes the transaction's earlier INSERT down with it."""
    before = dba.snapshot()
    with pytest.raises(IntegrityError, match="append-only"):
        with dba.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO ledger_entry (seq, canonical, leaf_hash) "
                "SELECT seq + 1000, canonical, leaf_hash FROM ledger_entry WHERE seq = 0")
            conn.exec_driver_sql("UPDATE ledger_entry SET nodes = NULL WHERE seq = 1")
    assert dba.snapshot() == before


def test_the_ledgers_own_engine_is_refused_too(populated, app):
    """The application's connection has no more rights than anyone else's."""
    store = populated.store
    with pytest.raises(IntegrityError, match="table ledger_entry is append-only: DELETE rejected"):
        with store.write_transaction() as conn:
            conn.exec_driver_sql("DELETE FROM ledger_entry WHERE seq = 0")
    assert populated.size() == 15
    assert populated.entry(0).seq == 0


def test_key_can_be_retired_exactly_once(populated, dba):
    [key] = dba.key_rows()
    assert key["retired"] is None
    params = {"key_id": key["key_id"]}

    # Changing anything but `retired` is rejected, even together with retiring.
    for sql in ("UPDATE ledger_key SET name = 'someone-else' WHERE key_id = :key_id",
                "UPDATE ledger_key SET public_key = :pk, retired = '2030-01-01T00:00:00.000000Z' "
                "WHERE key_id = :key_id",
                "UPDATE ledger_key SET retired = NULL WHERE key_id = :key_id"):
        before = dba.snapshot()
        with pytest.raises(IntegrityError, match="ledger_key rows can only be retired once: UPDATE rejected"):
            dba.execute(sql, {**params, "pk": bytes(32)})
        assert dba.snapshot() == before

    # The one allowed change.
    assert dba.execute("UPDATE ledger_key SET retired = :when WHERE key_id = :key_id",
                       {**params, "when": "2030-01-01T00:00:00.000000Z"}) == 1
    [retired] = dba.key_rows()
    assert retired == {**key, "retired": "2030-01-01T00:00:00.000000Z"}

    # A second change of `retired`, in either direction, is rejected.
    before = dba.snapshot()
    for value in ("2031-01-01T00:00:00.000000Z", None):
        with pytest.raises(IntegrityError, match="ledger_key rows can only be retired once: UPDATE rejected"):
            dba.execute("UPDATE ledger_key SET retired = :when WHERE key_id = :key_id",
                        {**params, "when": value})
    assert dba.snapshot() == before


def test_key_cannot_be_deleted(populated, dba):
    before = dba.snapshot()
    # SQLite's trigger says "append-only", PostgreSQL's key guard "retired once".
    with pytest.raises(IntegrityError, match=r"ledger_key (is append-only|rows can only be retired once): "
                                             r"DELETE rejected"):
        dba.execute("DELETE FROM ledger_key")
    assert dba.snapshot() == before
    assert len(before["ledger_key"]) == 1


def test_inserts_still_work(populated):
    """The triggers leave the ledger's own appends alone."""
    populated.append("test.note", "tester", "thing:x", {"after": "trigger tests"})
    assert populated.size() == 16
