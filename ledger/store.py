"""Persistence of entries, checkpoints and public keys, behind one class.

SQL lives here and only here. Rows become plain values (``records.py``) in
this module. The hot statements go to the driver directly (``driver.py``)
because SQLAlchemy's per-row parameter processing would cost more than the
insert itself. The schema is created by Alembic
(``migrations/``), including the triggers that make entries and checkpoints
append-only; this module never issues UPDATE or DELETE on them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import orjson
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from .db import is_sqlite
from .driver import CombinedInsert, driver_cursor, driver_rows, driver_sql
from .entry import hashed_timestamp
from .errors import IndexCorruptError, LedgerError, LedgerUnavailableError
from .merkle import HASH_SIZE, Node
from .records import Head, PendingWrites, PublicKeyRecord, StoredCheckpoint, StoredEntry
from .writer_lock import LOCKED_MESSAGE, WriterConnection, WriterGate, is_locked_error

ENTRY_TABLE = "ledger_entry"
CHECKPOINT_TABLE = "ledger_checkpoint"
KEY_TABLE = "ledger_key"
ENTRY_COLUMNS = "seq, canonical, leaf_hash, nodes"


class LedgerStore:
    """SQL storage of one ledger in one database (or PostgreSQL schema)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        p = "?" if self.sqlite else "%s"
        self._p = p
        self._insert_entry = (
            f"INSERT INTO {ENTRY_TABLE} ({ENTRY_COLUMNS}) VALUES ({', '.join([p] * 4)})"
        )
        self._lock_sql = (
            None if self.sqlite
            # Advisory lock scoped to the schema, so two ledgers in two schemas
            # of one database never wait on each other.
            else "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '.ledger', 0))"
        )
        # The head, and the leaf before it (a primary-key lookup): a process
        # whose cached frontier is one entry behind (another process appended
        # once, the usual case with two workers) extends it with the head's
        # leaf instead of reading O(log n) stored nodes under the lock.
        self._head_sql = (f"SELECT h.seq, h.leaf_hash, h.canonical, p.leaf_hash FROM {ENTRY_TABLE} h "
                          f"LEFT JOIN {ENTRY_TABLE} p ON p.seq = h.seq - 1 ORDER BY h.seq DESC LIMIT 1")
        database = engine.url.database if self.sqlite else None
        self._writer_gate = WriterGate(f"{database}.append-lock" if database and database != ":memory:"
                                        else None)
        self._writer = WriterConnection(engine)
        self._dbapi_error = engine.dialect.loaded_dbapi.Error
        # PostgreSQL: an entry and its deferred rows in one statement
        self._combined_insert = None if self.sqlite else CombinedInsert(engine.dialect, self._insert_entry)

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """Open a transaction holding the ledger's append lock; commit on success.

        SQLite: writers first queue on a lock file beside the database (the
        kernel wakes the next one the moment the lock is released, where
        SQLite's own busy handler polls with sleeps of up to 100 ms and is not
        fair), then ``BEGIN IMMEDIATE``. PostgreSQL: a transaction-level
        advisory lock, released by commit or rollback.
        """
        with self.append_transaction() as (conn, _head, _pending):
            yield conn

    @contextmanager
    def append_transaction(self) -> Iterator[tuple[Connection, Head | None, list]]:
        """:meth:`write_transaction`, also yielding the head read under the lock
        and a list for entry rows ``(seq, canonical, leaf_hash, nodes)``.

        The rows put in the list are inserted just before ``COMMIT``. Nothing
        reads the entry table inside a write transaction (other connections
        could not see the rows before the commit anyway), and on PostgreSQL
        this lets the inserts and the ``COMMIT`` travel together.

        The process's writes are serialised (the thread lock of the writer
        gate, then the database lock), so they share one kept connection
        instead of taking one from the pool per transaction (see
        ``writer_lock.py``). On PostgreSQL, ``BEGIN``, the advisory lock and
        the head go to the server in one pipeline (one round trip instead of
        three, prepared statements); each statement still takes its own
        snapshot (READ COMMITTED), so the head is read after the lock is
        held. The entry inserts and ``COMMIT`` are a second pipeline: a
        durable single append costs two round trips, like a plain
        ``INSERT`` and ``COMMIT``.
        """
        try:
            with self._writer_gate:
                try:
                    conn, row = self._writer.begin(self._begin_and_read_head)
                except self._dbapi_error as e:
                    if is_locked_error(e):
                        raise LedgerUnavailableError(LOCKED_MESSAGE) from e
                    first_line = (str(e).splitlines() or [""])[0]
                    raise LedgerUnavailableError("could not begin a ledger transaction: "
                                                 f"{type(e).__name__}: {first_line}") from e
                pending = PendingWrites()
                with self._writer.transaction(conn, lambda cursor: self._insert_and_commit(cursor, pending)):
                    yield conn, _head(row), pending
        except OperationalError as e:
            if is_locked_error(e.orig):
                raise LedgerUnavailableError(LOCKED_MESSAGE) from e
            raise

    def _begin_and_read_head(self, cursor) -> tuple | None:
        if self.sqlite:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute(self._head_sql)
        else:
            with cursor.connection.pipeline():
                cursor.execute("BEGIN")
                cursor.execute(self._lock_sql)
                cursor.execute(self._head_sql)  # the cursor keeps the last result
        return cursor.fetchone()

    def _insert_and_commit(self, cursor, pending: "PendingWrites") -> str:
        """Insert the pending rows and commit; return the server's answer to COMMIT."""
        rows = pending.entries
        if self.sqlite:
            if rows:
                cursor.executemany(self._insert_entry, rows)
            for statement, params in pending.deferred:
                sql, order = driver_sql(self.engine.dialect, statement, tuple(params[0]))
                cursor.executemany(sql, [tuple(p[key] for key in order) for p in params])
            cursor.execute("COMMIT")
            return "COMMIT"
        deferred = pending.deferred
        if len(rows) == 1 and deferred and all(len(params) == 1 for _, params in deferred):
            # The usual append (one entry, a row or two of projections): one
            # INSERT statement with the others as data-modifying CTEs, then
            # COMMIT, instead of a statement each in the pipeline.
            sql, args = self._combined_insert.build(rows[0], deferred)
            with cursor.connection.pipeline():
                cursor.execute(sql, args)
                cursor.execute("COMMIT")
            return cursor.statusmessage
        with cursor.connection.pipeline():
            if len(rows) == 1:
                cursor.execute(self._insert_entry, rows[0])
            elif rows:
                cursor.executemany(self._insert_entry, rows)
            for statement, params in pending.deferred:
                sql, _order = driver_sql(self.engine.dialect, statement, tuple(params[0]))
                if len(params) == 1:
                    cursor.execute(sql, params[0])
                else:
                    cursor.executemany(sql, params)
            cursor.execute("COMMIT")
        return cursor.statusmessage

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read-only connection (one consistent snapshot per transaction)."""
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    # -- entries --------------------------------------------------------------

    def size(self, conn: Connection) -> int:
        """Return the number of entries (head seq + 1, or 0)."""
        row = conn.exec_driver_sql(f"SELECT MAX(seq) FROM {ENTRY_TABLE}").first()
        return 0 if row is None or row[0] is None else row[0] + 1

    def entry(self, conn: Connection, seq: int) -> StoredEntry | None:
        """Return the entry with ``seq``, or None."""
        row = conn.exec_driver_sql(
            f"SELECT seq, canonical, leaf_hash FROM {ENTRY_TABLE} WHERE seq = {self._p}", (seq,)
        ).first()
        return _entry(row) if row else None

    def entries(self, conn: Connection, start: int, limit: int) -> list[StoredEntry]:
        """Return up to ``limit`` entries from ``start`` in seq order."""
        rows = conn.exec_driver_sql(
            f"SELECT seq, canonical, leaf_hash FROM {ENTRY_TABLE} "
            f"WHERE seq >= {self._p} ORDER BY seq LIMIT {self._p}", (start, limit)
        ).all()
        return [_entry(row) for row in rows]

    def stream_for_verify(self, conn: Connection, start: int = 0, batch: int = 20000
                          ) -> Iterator[tuple]:
        """Yield ``(seq, canonical, leaf_hash, nodes)`` from ``start``, in seq order."""
        for rows in self.pages_for_verify(conn, start, batch):
            yield from rows

    def pages_for_verify(self, conn: Connection, start: int = 0, batch: int = 20000
                         ) -> Iterator[list[tuple]]:
        """Yield lists of ``(seq, canonical, leaf_hash, nodes)`` rows from ``start``.

        In seq order, paged by primary key so memory stays flat on any size.
        A page at a time, so that a caller's per-row loop (verification, over
        every entry) runs over a list, not through a generator per row.
        """
        sql = (f"SELECT seq, canonical, leaf_hash, nodes FROM {ENTRY_TABLE} "
               f"WHERE seq >= {self._p} ORDER BY seq LIMIT {batch}")
        # The driver's own cursor, on this transaction's connection: SQLAlchemy's
        # per-row result objects would cost more than hashing the row.
        cursor = driver_cursor(conn)
        try:
            position = start
            while True:
                cursor.execute(sql, (position,))
                rows = cursor.fetchall()
                if not rows:
                    return
                yield rows
                position = rows[-1][0] + 1
                if len(rows) < batch:
                    return
        finally:
            cursor.close()

    def fetch_nodes(self, conn: Connection, nodes: list[Node]) -> list[bytes]:
        """Return the stored hashes of perfect nodes, in the order asked.

        A node of level L lives in the row of its last leaf: level 0 is that
        row's leaf hash, level L >= 1 is bytes ``32*(L-1):32*L`` of its nodes.

        Raises:
            IndexCorruptError: a row is missing or its node column too short.
        """
        if not nodes:
            return []
        seqs = sorted({node.last_leaf for node in nodes})
        placeholders = ", ".join([self._p] * len(seqs))
        rows = driver_rows(
            conn, f"SELECT seq, leaf_hash, nodes FROM {ENTRY_TABLE} WHERE seq IN ({placeholders})",
            tuple(seqs))
        by_seq = {row[0]: row for row in rows}
        hashes = []
        for node in nodes:
            row = by_seq.get(node.last_leaf)
            if row is None:
                raise IndexCorruptError(f"entry {node.last_leaf} is missing (needed for a proof)")
            if node.level == 0:
                value = bytes(row[1])
            else:
                stored = bytes(row[2] or b"")
                value = stored[(node.level - 1) * HASH_SIZE: node.level * HASH_SIZE]
            if len(value) != HASH_SIZE:
                raise IndexCorruptError(
                    f"entry {node.last_leaf} lacks the level-{node.level} node hash"
                )
            hashes.append(value)
        return hashes

    # -- checkpoints ----------------------------------------------------------

    def insert_checkpoint(self, conn: Connection, tree_size: int, root_hash: bytes,
                          timestamp: str, key_id: str, note: str) -> None:
        """Store a signed checkpoint."""
        p = self._p
        conn.exec_driver_sql(
            f"INSERT INTO {CHECKPOINT_TABLE} (tree_size, root_hash, ts, key_id, note) "
            f"VALUES ({p}, {p}, {p}, {p}, {p})",
            (tree_size, root_hash, timestamp, key_id, note),
        )

    def latest_checkpoint(self, conn: Connection) -> StoredCheckpoint | None:
        """Return the checkpoint with the largest tree size (newest on ties)."""
        row = conn.exec_driver_sql(
            f"SELECT id, tree_size, root_hash, ts, key_id, note FROM {CHECKPOINT_TABLE} "
            "ORDER BY tree_size DESC, id DESC LIMIT 1"
        ).first()
        return _checkpoint(row) if row else None

    def checkpoints(self, conn: Connection, min_size: int = 0) -> list[StoredCheckpoint]:
        """Return every checkpoint with ``tree_size >= min_size``, smallest first."""
        rows = conn.exec_driver_sql(
            f"SELECT id, tree_size, root_hash, ts, key_id, note FROM {CHECKPOINT_TABLE} "
            f"WHERE tree_size >= {self._p} ORDER BY tree_size, id", (min_size,)
        ).all()
        return [_checkpoint(row) for row in rows]

    def checkpoint_by_size(self, conn: Connection, tree_size: int) -> StoredCheckpoint | None:
        """Return the newest checkpoint of exactly ``tree_size``, or None."""
        row = conn.exec_driver_sql(
            f"SELECT id, tree_size, root_hash, ts, key_id, note FROM {CHECKPOINT_TABLE} "
            f"WHERE tree_size = {self._p} ORDER BY id DESC LIMIT 1", (tree_size,)
        ).first()
        return _checkpoint(row) if row else None

    # -- keys -----------------------------------------------------------------

    def public_keys(self, conn: Connection) -> list[PublicKeyRecord]:
        """Return every public key, oldest first."""
        rows = conn.exec_driver_sql(
            f"SELECT key_id, public_key, algorithm, name, created, retired FROM {KEY_TABLE} "
            "ORDER BY created, key_id"
        ).all()
        return [PublicKeyRecord(r[0], bytes(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def insert_public_key(self, conn: Connection, record: PublicKeyRecord) -> bool:
        """Store a public key unless its key id is already there; True if inserted."""
        p = self._p
        exists = conn.exec_driver_sql(
            f"SELECT 1 FROM {KEY_TABLE} WHERE key_id = {p}", (record.key_id,)
        ).first()
        if exists:
            return False
        conn.exec_driver_sql(
            f"INSERT INTO {KEY_TABLE} (key_id, public_key, algorithm, name, created, retired) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
            (record.key_id, record.public_key, record.algorithm, record.name,
             record.created, record.retired),
        )
        return True

    def retire_public_key(self, conn: Connection, key_id: str, when: str) -> None:
        """Mark a key retired (the only change the key table's trigger allows)."""
        p = self._p
        conn.exec_driver_sql(
            f"UPDATE {KEY_TABLE} SET retired = {p} WHERE key_id = {p} AND retired IS NULL",
            (when, key_id),
        )

    # -- health ---------------------------------------------------------------

    def ping(self) -> None:
        """Run a trivial query; raises on an unreachable database."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except DBAPIError as e:
            raise LedgerError(f"database unreachable: {e.orig.__class__.__name__}") from e


def _head(row) -> Head | None:
    if row is None:
        return None
    return Head(row[0], bytes(row[1]), hashed_timestamp(bytes(row[2])) or "",
                None if row[3] is None else bytes(row[3]))


def _entry(row) -> StoredEntry:
    canonical = bytes(row[1])
    try:
        fields = orjson.loads(canonical)
        labels = (fields["ts"], fields["kind"], fields["actor"], fields["subject"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        labels = ("", "", "", "")  # unreadable bytes: verify reports them
    return StoredEntry(row[0], *labels, canonical, bytes(row[2]))


def _checkpoint(row) -> StoredCheckpoint:
    return StoredCheckpoint(row[0], row[1], bytes(row[2]), row[3], row[4], row[5])
