"""Database engines for the ledger: SQLite (WAL, FULL sync) and PostgreSQL.

SQLite transactions are begun explicitly so that ledger writes can take the
write lock up front with ``BEGIN IMMEDIATE`` (two writers can then never both
read the same head; the writer connection of ``writer_lock.py``, marked with
``WRITE_OPTION``, issues it itself) while readers use a plain deferred
``BEGIN``; the driver's
own transaction handling is switched off, as the SQLAlchemy documentation
recommends for pysqlite. ``synchronous=FULL`` makes every acknowledged commit
survive power loss; the file is read with ``pread``, not through a memory map.
PostgreSQL keeps its defaults (``synchronous_commit=on``); an optional schema
isolates one ledger (or one test) inside a database.
"""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from .driver import begin_read

WRITE_OPTION = "ledger_write"
SQLITE_BUSY_TIMEOUT_S = 60
# No memory map (set explicitly: a build may default to one). In WAL mode a
# connection that begins a transaction after another connection has
# committed drops its page cache, and a mapped file is also unmapped whole
# (pager_reset, then sqlite3OsUnfetch(fd, 0, 0)), to be mapped and faulted in
# again. With two workers that is before nearly every read: a read
# transaction of 7 lookups cost 153 us after another connection's commit with
# a 1 GiB map, 75 us without (34 / 49 us when nothing else wrote), and over
# HTTP under granian registrations and checks were 17 % and 7 % faster with
# the map off.
SQLITE_MMAP_BYTES = 0


def is_sqlite(engine_or_url) -> bool:
    """True if the engine or URL is SQLite."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str, schema: str | None = None, **kwargs) -> Engine:
    """Create an engine configured for durable, serialisable ledger appends."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": None,
                        "check_same_thread": False}
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    connect_args = {}
    if schema:
        if not schema.replace("_", "").isalnum():
            raise ValueError(f"schema name {schema!r} must be alphanumeric")
        connect_args["options"] = f"-c search_path={schema}"
    # No pre-ping: it is one more round trip per checkout (~0.1 ms, a tenth of
    # a durable append). A connection the server dropped fails its request
    # once (503) and is replaced; recycling bounds how stale one can get.
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(parsed, connect_args=connect_args, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # The ledger's writer connection begins its own transactions
        # (BEGIN IMMEDIATE, see ledger/store.py); every other one reads.
        if not conn.get_execution_options().get(WRITE_OPTION):
            begin_read(conn)
