"""The kept writer connection: reused, rolled back cleanly, replaced when broken."""

from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy import text

from dba import DBA
from ledger.errors import LedgerUnavailableError
from ledger.verify import LedgerVerifier


class Boom(Exception):
    pass


def _writer(ledger):
    return ledger.store._writer


def _note(ledger, i):
    return ledger.append("test.note", "tester", f"thing:{i}", {"i": i})


def _entry_count(app) -> int:
    with DBA.connect(app.config["DATABASE_URL"], app.config["DATABASE_SCHEMA"]) as dba:
        with dba.engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM ledger_entry")).scalar_one()


def _verify_ok(ledger):
    report = LedgerVerifier(ledger).verify_full()
    assert report.ok, report.faults


def test_appends_share_one_kept_connection(ledger):
    for i in range(20):
        _note(ledger, i)
    assert _writer(ledger).opened == 1
    assert ledger.size() == 20
    _verify_ok(ledger)


def test_failed_transaction_rolls_back_and_keeps_the_connection(app, ledger):
    _note(ledger, 0)
    with pytest.raises(Boom):
        with ledger.transaction() as writer:
            writer.append("test.note", "tester", "thing:lost", {"lost": True})
            raise Boom
    assert _entry_count(app) == 1
    assert _note(ledger, 1).seq == 1
    assert _writer(ledger).opened == 1
    _verify_ok(ledger)


def _postgres_only(app, why: str) -> None:
    if not DBA.for_app(app).postgres:
        pytest.skip(why)


def _swallow_a_failed_statement(conn) -> None:
    try:
        conn.execute(text("SELECT 1 / 0"))
    except Exception:  # noqa: BLE001 - the point of these tests: a body that swallows it
        pass


def _failed_append(app, ledger, then) -> BaseException:
    """After entry 0, append one entry, run ``then(writer)``; expect nothing recorded.

    Returns the cause the commit failed with.
    """
    _note(ledger, 0)
    with pytest.raises(LedgerUnavailableError, match="nothing of this transaction was recorded") as raised:
        with ledger.transaction() as writer:
            writer.append("test.note", "tester", "thing:lost", {"lost": True})
            then(writer)
    assert _entry_count(app) == 1
    assert _note(ledger, 1).seq == 1
    return raised.value.__cause__


def test_a_swallowed_database_error_is_never_acknowledged(app, ledger):
    _postgres_only(app, "PostgreSQL only: SQLite keeps a transaction usable after a failed statement, "
                         "so there is no aborted transaction to commit")
    cause = _failed_append(app, ledger, lambda writer: _swallow_a_failed_statement(writer.connection))
    # the entry rows, written just before COMMIT, are refused by the failed transaction
    assert "current transaction is aborted" in str(cause)
    _verify_ok(ledger)


def test_a_swallowed_error_in_a_transaction_without_entries_is_never_acknowledged(app, ledger):
    """PostgreSQL answers COMMIT of a failed transaction with ROLLBACK and no error."""
    _postgres_only(app, "PostgreSQL only: SQLite keeps a transaction usable after a failed statement, "
                         "so there is no aborted transaction to commit")
    with pytest.raises(LedgerUnavailableError, match="answered COMMIT with ROLLBACK"):
        with ledger.store.write_transaction() as conn:
            _swallow_a_failed_statement(conn)
    assert _note(ledger, 0).seq == 0  # the connection was rolled back and is usable


def _terminate_writer(app, ledger) -> None:
    pid = _writer(ledger)._conn.connection.driver_connection.info.backend_pid
    url = app.config["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0] is True


def test_a_connection_dropped_while_idle_is_replaced_without_an_error(app, ledger):
    _postgres_only(app, "PostgreSQL only: the test drops the writer's connection with "
                         "pg_terminate_backend; an SQLite connection cannot be dropped from outside")
    _note(ledger, 0)
    _terminate_writer(app, ledger)
    assert _note(ledger, 1).seq == 1  # the begin is retried once on a new connection
    assert _writer(ledger).opened == 2
    assert _entry_count(app) == 2
    _verify_ok(ledger)


def test_a_connection_dropped_inside_a_transaction_fails_it_and_the_next_one_works(app, ledger):
    _postgres_only(app, "PostgreSQL only: the test drops the writer's connection with "
                         "pg_terminate_backend; an SQLite connection cannot be dropped from outside")
    cause = _failed_append(app, ledger, lambda _writer: _terminate_writer(app, ledger))
    assert "connection is lost" in str(cause)
    assert _writer(ledger).opened == 2
    _verify_ok(ledger)


def test_dispose_closes_the_kept_connection(app, ledger):
    _note(ledger, 0)
    assert _writer(ledger)._conn is not None
    app.extensions["db_engine"].dispose()
    assert _writer(ledger)._conn is None
    assert _note(ledger, 1).seq == 1  # and writing opens a new one
    _verify_ok(ledger)


def test_a_forked_child_writes_on_its_own_connection(app, ledger):
    _note(ledger, 0)
    parent_conn = _writer(ledger)._conn
    pid = os.fork()
    if pid == 0:  # the child: must not use the parent's connection (shared socket)
        code = 1
        try:
            for i in range(1, 6):
                _note(ledger, i)
            code = 0 if _writer(ledger)._conn is not parent_conn else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert _writer(ledger)._conn is parent_conn
    assert _note(ledger, 6).seq == 6  # the parent's connection still works
    assert _entry_count(app) == 7
    _verify_ok(ledger)
