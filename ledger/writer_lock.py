"""The writer's side of the append lock: who may write now, and on which connection.

:class:`WriterGate` serialises the writers of a process (a thread lock) and,
on SQLite, of every process (an ``flock`` on a file beside the database).
:class:`WriterConnection` is the one connection a process writes the ledger
on, kept between transactions. The store (``store.py``) uses both; the
database's own lock (``BEGIN IMMEDIATE`` or the advisory lock) still runs
inside and is what correctness rests on.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from .db import WRITE_OPTION
from .driver import driver_cursor
from .errors import LedgerUnavailableError


class WriterGate:
    """Serialises writers: a thread lock, then (SQLite) an ``flock`` shared by processes.

    The thread lock also guards the process's kept writer connection. The
    ``flock`` is only an optimisation of waiting: correctness rests on
    ``BEGIN IMMEDIATE`` (SQLite) or the advisory lock (PostgreSQL), which
    still run inside. Without a path (PostgreSQL, in-memory SQLite) there is
    only the thread lock.
    """

    def __init__(self, path: str | None):
        self._path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    def __enter__(self):
        self._thread_lock.acquire()
        if self._path is None:
            return self
        try:
            if self._fd is None or self._pid != os.getpid():  # reopen after a fork
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc):
        if self._path is None:
            self._thread_lock.release()
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()
        return False

def is_locked_error(error: BaseException) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text


LOCKED_MESSAGE = "the database stayed locked by other writers beyond the busy timeout; retry"

class WriterConnection:
    """The one connection a process writes the ledger on, kept between transactions.

    Checking a connection out of the pool and back in, with the SQLAlchemy
    transaction set-up around it, cost about a third of a durable single
    append on SQLite (docs/performance.md). Writes are serialised in the
    process anyway (the caller holds the writer gate's thread lock), so one
    kept connection serves them all. Transactions are begun and ended by
    explicit statements on it (``isolation_level`` is AUTOCOMMIT for the
    driver, so neither psycopg nor pysqlite begins one on its own); the
    SQLAlchemy ``Connection`` around it is what projectors write through.

    A transaction that fails is rolled back and the connection kept if it is
    healthy; if the rollback fails, or the connection broke, it is dropped and
    the next transaction opens a new one. A connection found broken by the
    statement that begins a transaction (the server restarted or dropped it
    while idle) is replaced and the statement tried once more, since nothing
    was written yet. After a fork the child never touches the parent's
    connection (it shares its socket): it leaves it alone and opens its own.
    """

    _orphans: list = []  # connections inherited through fork: kept referenced, never used

    def __init__(self, engine: Engine):
        self._engine = engine
        self._conn: Connection | None = None
        self._pid: int | None = None
        self._dbapi_error = engine.dialect.loaded_dbapi.Error
        self.opened = 0  # connections opened (for tests and metrics)
        event.listen(engine, "engine_disposed", lambda _engine: self.drop())

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            self._orphans.append(conn)
            conn = self._conn = None
        if conn is None or conn.closed or conn.invalidated:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT",
                                                            **{WRITE_OPTION: True})
            self._conn, self._pid = conn, os.getpid()
            self.opened += 1
        return conn

    def begin(self, begin: Callable[[object], tuple | None]) -> tuple[Connection, tuple | None]:
        """Run ``begin(driver_cursor)`` (BEGIN, lock, head) on the kept connection.

        Returns the connection and what ``begin`` returned. Raises the
        driver's error if it fails on a healthy (or a new) connection.
        """
        try:
            return self._try_begin(begin)
        except self._dbapi_error:
            if self._conn is not None:  # a healthy connection: the error is the answer
                raise
            return self._try_begin(begin)  # it was broken and dropped: once more, on a new one

    def _try_begin(self, begin) -> tuple[Connection, tuple | None]:
        conn = self._connection()
        cursor = driver_cursor(conn)
        try:
            return conn, begin(cursor)
        except self._dbapi_error:
            if _broken(conn.connection.driver_connection):
                self.drop()
            else:
                self._roll_back(conn)
            raise
        finally:
            cursor.close()

    @contextmanager
    def transaction(self, conn: Connection, commit: Callable[[object], str]) -> Iterator[Connection]:
        """Commit what the caller writes on ``conn`` (begun by :meth:`begin`), or roll it back.

        ``commit(driver_cursor)`` ends the transaction and returns the
        server's answer to ``COMMIT``.

        Raises:
            LedgerUnavailableError: the commit failed (its cause attached), or
                the server answered it with anything but ``COMMIT``.
        """
        committing = False
        try:
            with conn.begin():  # SQLAlchemy's bookkeeping (savepoints); no statement here
                yield conn
                committing = True
                cursor = driver_cursor(conn)
                try:
                    status = commit(cursor)
                finally:
                    cursor.close()
                # PostgreSQL answers COMMIT of a failed transaction with
                # ROLLBACK, and no error: never acknowledge that as a write.
                if status != "COMMIT":
                    raise LedgerUnavailableError(f"the database answered COMMIT with {status}: "
                                                 "the transaction had failed; nothing was recorded")
        except BaseException as e:
            self._roll_back(conn)
            if committing and isinstance(e, Exception) and not isinstance(e, LedgerUnavailableError):
                # The caller's work was done; the database refused or lost the commit.
                raise LedgerUnavailableError("the commit failed; nothing of this transaction "
                                             f"was recorded ({type(e).__name__})") from e
            raise

    def _roll_back(self, conn: Connection) -> None:
        """End a failed transaction; keep the connection only if that worked cleanly."""
        try:
            if conn.invalidated:  # SQLAlchemy saw a disconnect (touching it would reconnect)
                raise LedgerUnavailableError("connection lost")
            driver = conn.connection.driver_connection
            if _in_transaction(driver):
                cursor = driver.cursor()
                try:
                    cursor.execute("ROLLBACK")
                finally:
                    cursor.close()
            if not conn.invalidated and not _in_transaction(driver) and not _broken(driver):
                return
        except Exception:  # noqa: BLE001 - already failing; the connection is dropped below
            pass
        self.drop()

    def drop(self) -> None:
        """Close the kept connection; the next transaction opens a new one.

        Also called by ``engine.dispose()`` (after the pool was replaced:
        returned to the old pool the connection would stay open, and keep an
        SQLite file's WAL index mapped), so it is invalidated, which closes it.
        """
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - closing a connection that may be broken
                pass


def _broken(driver) -> bool:
    """True if the driver connection is closed (psycopg: the server dropped it)."""
    return bool(getattr(driver, "closed", False))


def _in_transaction(driver) -> bool:
    status = getattr(driver, "in_transaction", None)  # sqlite3
    if status is not None:
        return bool(status)
    return driver.info.transaction_status != 0  # psycopg: 0 is IDLE
