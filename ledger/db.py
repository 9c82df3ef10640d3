"""Database engines for the ledger: SQLite (WAL, FULL sync) and PostgreSQL.

SQLite transactions are begun explicitly so that ledger writes can take the
write lock up front with ``BEGIN IMMEDIATE`` (two writers can then never both
read the same head; the writer connection of ``store.py``, marked with
``WRITE_OPTION``, issues it itself) while readers use a plain deferred
``BEGIN``; the driver's
own transaction handling is switched off, as the SQLAlchemy documentation
recommends for pysqlite. ``synchronous=FULL`` makes every acknowledged commit
survive power loss; the file is read with ``pread``, not through a memory map.
PostgreSQL keeps its defaults (``synchronous_commit=on``); an optional schema
isolates one ledger (or one test) inside a database.
"""

from __future__ import annotations

from collections import namedtuple
from contextlib import contextmanager

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql import sqltypes

WRITE_OPTION = "ledger_write"
SQLITE_BUSY_TIMEOUT_S = 60
# No memory map (set explicitly: a build may default to one). In WAL mode a
# connection that begins a transaction after another connection has
# committed drops its page cache, and a mapped file is also unmapped whole
# (pager_reset, then sqlite3OsUnfetch(fd, 0, 0)), to be mapped and faulted in
# again. With two workers that is before nearly every read: a read
# transaction of 7 lookups cost 153 us after another connection's commit with
# a 1 GiB map, 75 us without (34 / 49 us when nothing else wrote;
# bench/sqlite_reads.py), and over HTTP under granian registrations and
# checks went +17 % and +7 % with the map off (docs/performance-http.md,
# stop 11). It once helped (stop 9, gunicorn) and is left off now.
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
            _begin_read(conn)


def _begin_read(conn) -> None:
    """``BEGIN`` (deferred) on the SQLite driver, unless its transaction is already open.

    On the driver rather than through ``exec_driver_sql`` (connect, begin and
    close 42 against 72 µs; every read request begins one). :func:`select_all`
    begins this way without SQLAlchemy's transaction object; a transaction
    SQLAlchemy then begins on the connection joins it, and the pool's rollback
    on return ends it.
    """
    raw = conn.connection.driver_connection
    if not raw.in_transaction:
        with _as_sqlalchemy_errors(conn, raw, ()):
            raw.execute("BEGIN")


def select_all(conn, statements: dict, params: dict) -> dict[str, list]:
    """Run several SELECTs that take the same parameters; return each one's rows by name.

    For the hot read paths (every request's token, a check's seven tables). The
    statements are compiled once per dialect and run on the connection's
    driver, inside the connection's transaction if one is open:

    - PostgreSQL (psycopg): they go to the server as one statement
      (:class:`_PgCombined`), one round trip and one snapshot; outside a
      transaction they run in autocommit (no ``BEGIN``/``ROLLBACK`` round
      trips: at READ COMMITTED each statement has its own snapshot anyway);
    - SQLite: one after another on the sqlite3 connection, which costs a
      third of going through SQLAlchemy's execution path (~15 against ~45 µs
      per query), with SQLAlchemy's result processing applied (``Boolean``);
      several statements outside a transaction get one begun for them, so
      that they see one snapshot.

    Rows are named tuples (``row.seq``), like SQLAlchemy rows.
    """
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql") or (name == "postgresql" and conn.dialect.driver != "psycopg"):
        return {key: conn.execute(statement, params).all() for key, statement in statements.items()}
    raw = conn.connection.driver_connection
    with _as_sqlalchemy_errors(conn, raw, params):
        return _driver_select_all(conn, raw, statements, params)


def driver_rows(conn, sql: str, params: tuple) -> list[tuple]:
    """Run one SQL text (in the driver's paramstyle) on the connection's driver; return plain tuples.

    Inside the connection's transaction, like :func:`select_all`, for
    statements built at run time (an ``IN`` list of any length) on a hot
    path: a proof's or a frontier's stored nodes. ~15 µs on SQLite against
    ~50 µs through ``exec_driver_sql``. Errors are SQLAlchemy's, as there.
    """
    raw = conn.connection.driver_connection
    with _as_sqlalchemy_errors(conn, raw, params):
        cursor = raw.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            cursor.close()


@contextmanager
def _as_sqlalchemy_errors(conn, raw, params):
    """Re-raise driver errors as SQLAlchemy would have raised them.

    Its exception classes (the app answers OperationalError with 503, a raw
    driver error would be a 500), and a dropped connection invalidated so that
    the pool does not hand it out again.
    """
    try:
        yield
    except conn.dialect.loaded_dbapi.Error as e:
        disconnect = conn.dialect.is_disconnect(e, raw, None)
        if disconnect:
            conn.invalidate(e)
        raise sa_exc.DBAPIError.instance(
            None, params, e, conn.dialect.loaded_dbapi.Error, hide_parameters=True,
            connection_invalidated=disconnect, dialect=conn.dialect) from e


def _driver_select_all(conn, raw, statements: dict, params: dict) -> dict[str, list]:
    if conn.dialect.name == "postgresql":
        if raw.autocommit or raw.info.transaction_status != _PG_IDLE:
            return _pg_select_all(conn.dialect, raw, statements, params)
        # Outside a transaction, read in autocommit: at READ COMMITTED every
        # statement takes its own snapshot anyway, and this saves the driver's
        # BEGIN (a round trip of its own, also in a pipeline) and the pool's
        # ROLLBACK when the connection goes back (another one).
        raw.autocommit = True
        try:
            return _pg_select_all(conn.dialect, raw, statements, params)
        finally:
            if raw.info.transaction_status == _PG_IDLE:  # not on a broken connection: it would raise
                raw.autocommit = False
    if len(statements) > 1:
        _begin_read(conn)  # one snapshot for every query
    rows = {}
    for key, statement in statements.items():
        compiled = _compiled(conn.dialect, statement)
        cursor = raw.execute(compiled.sql, [params[p] for p in compiled.order])
        rows[key] = [compiled.make_row(row) for row in cursor.fetchall()]
    return rows


def _pg_select_all(dialect, raw, statements: dict, params: dict) -> dict[str, list]:
    from psycopg.rows import namedtuple_row  # imported only where PostgreSQL is used

    if len(statements) == 1:
        (key, statement), = statements.items()
        cursor = raw.cursor(row_factory=namedtuple_row)
        return {key: cursor.execute(_compiled(dialect, statement).sql, params).fetchall()}
    combined = _pg_combined(dialect, statements)
    arrays = raw.execute(combined.sql, params).fetchone()
    return {key: [make_row([row[name] for name in names]) for row in map(orjson.loads, texts)]
            for (key, names, make_row), texts in zip(combined.parts, arrays)}


class _PgCombined:
    """Several SELECTs as one statement: each one's rows as an array of ``row_to_json`` texts.

    One statement, not a pipeline of several: psycopg's pipeline costs ~28 µs
    of the client's CPU per statement (0.20 ms for a check's seven reads; this
    costs 0.03 ms, the rows decoded by orjson), and one statement reads one
    snapshot. ``ARRAY(subquery)`` keeps the subquery's order. Rows come back
    with SQLAlchemy's values and types for the column types JSON carries
    exactly (integers, booleans, text, NULL), which is all :func:`select_all`
    is given on PostgreSQL; a statement with any other type, or with two
    columns of one name, is refused when first compiled.
    """

    __slots__ = ("sql", "parts")

    def __init__(self, dialect, statements: dict):
        columns, self.parts = [], []
        for key, statement in statements.items():
            names = tuple(c.name for c in statement.selected_columns)
            kinds = {c.type._type_affinity for c in statement.selected_columns}
            if len(set(names)) != len(names) or not kinds <= _JSON_EXACT:
                raise ValueError(f"select_all({key!r}): columns {names} do not all come back "
                                 "exactly through JSON")
            compiled = _compiled(dialect, statement)
            columns.append(f'ARRAY(SELECT row_to_json(s)::text FROM ({compiled.sql}) AS s) AS "{key}"')
            self.parts.append((key, names, compiled.make_row))
        self.sql = "SELECT " + ", ".join(columns)


_JSON_EXACT = {sqltypes.Integer, sqltypes.Boolean, sqltypes.String}  # BigInteger, Text: their affinities
_PG_COMBINED: dict = {}


def _pg_combined(dialect, statements: dict) -> _PgCombined:
    key = tuple(statements.items())  # names and statements, which hash by identity
    found = _PG_COMBINED.get(key)
    if found is None:
        found = _PG_COMBINED[key] = _PgCombined(dialect, statements)
    return found


_PG_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE, without importing psycopg where it is not used


class _Compiled:
    """A statement's SQL for one dialect, its parameter order and how to build its rows."""

    __slots__ = ("sql", "order", "make_row")

    def __init__(self, dialect, statement):
        self.sql, self.order = driver_sql(dialect, statement)
        columns = list(statement.selected_columns)
        row_type = namedtuple("Row", [c.key for c in columns], rename=True)
        processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        if any(processors):
            def make_row(values, processors=tuple(processors), row_type=row_type):
                return row_type._make([p(v) if p else v for p, v in zip(processors, values)])
        else:
            make_row = row_type._make
        self.make_row = make_row


_COMPILED: dict = {}
_DRIVER_SQL: dict = {}


def _compiled(dialect, statement) -> _Compiled:
    key = (dialect.name, dialect.driver, statement)  # a Select hashes by identity
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = _Compiled(dialect, statement)
    return found


def driver_sql(dialect, statement, columns: tuple = ()) -> tuple[str, tuple]:
    """The driver's SQL of a prebuilt statement and the order of its parameters (cached).

    ``columns``: for an ``insert()``, the columns its rows give. The order is
    empty for drivers that take named parameters (psycopg).
    """
    key = (dialect.name, dialect.driver, statement, columns)  # statements hash by identity
    found = _DRIVER_SQL.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns else None)
        found = _DRIVER_SQL[key] = (compiled.string, tuple(compiled.positiontup or ()))
    return found
