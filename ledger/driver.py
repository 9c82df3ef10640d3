"""The fast path to the database driver, for the statements every request runs.

SQLAlchemy's statement execution and result objects cost more than the
statements on the hot paths (a request's token, a check's seven reads, the
stored nodes of a proof, an append's inserts). These helpers run prebuilt
SQLAlchemy statements, compiled once per dialect, on the connection's
driver, inside the connection's transaction, and re-raise driver errors as
SQLAlchemy's (so the application maps them the same way).
"""

from __future__ import annotations

from collections import namedtuple
from contextlib import contextmanager

import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import sqltypes


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
    with as_sqlalchemy_errors(conn, raw, params):
        return _driver_select_all(conn, raw, statements, params)


def driver_rows(conn, sql: str, params: tuple) -> list[tuple]:
    """Run one SQL text (in the driver's paramstyle) on the connection's driver; return plain tuples.

    Inside the connection's transaction, like :func:`select_all`, for
    statements built at run time (an ``IN`` list of any length) on a hot
    path: a proof's or a frontier's stored nodes. ~15 µs on SQLite against
    ~50 µs through ``exec_driver_sql``. Errors are SQLAlchemy's, as there.
    """
    raw = conn.connection.driver_connection
    with as_sqlalchemy_errors(conn, raw, params):
        cursor = raw.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            cursor.close()


@contextmanager
def as_sqlalchemy_errors(conn, raw, params):
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
        begin_read(conn)  # one snapshot for every query
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


def begin_read(conn) -> None:
    """``BEGIN`` (deferred) on the SQLite driver, unless its transaction is already open.

    On the driver rather than through ``exec_driver_sql`` (connect, begin and
    close 42 against 72 µs; every read request begins one). :func:`select_all`
    begins this way without SQLAlchemy's transaction object; a transaction
    SQLAlchemy then begins on the connection joins it, and the pool's rollback
    on return ends it.
    """
    raw = conn.connection.driver_connection
    if not raw.in_transaction:
        with as_sqlalchemy_errors(conn, raw, ()):
            raw.execute("BEGIN")


def driver_cursor(conn):
    """A cursor of the DBAPI connection under ``conn``, inside its transaction.

    Used for the statements run once per append or once per verified entry,
    where SQLAlchemy's statement and result handling costs more than the
    statement itself.
    """
    return conn.connection.driver_connection.cursor()


class CombinedInsert:
    """PostgreSQL: one statement inserting a row and one row per deferred insert.

    ``WITH d0 AS (INSERT ...), d1 AS (INSERT ...) INSERT INTO ledger_entry ...``:
    each data-modifying CTE runs exactly once, all within the statement. The
    usual append (one entry, a row or two of projections) then costs one
    statement instead of one each. Parameters are positional, in the order
    the text names them; the SQL is built once per combination of
    statements and columns.
    """

    def __init__(self, dialect, last_insert_sql: str):
        self._dialect = type(dialect)(paramstyle="format")
        self._last_insert_sql = last_insert_sql
        self._built: dict = {}

    def build(self, last_row: tuple, deferred: list) -> tuple[str, list]:
        """The SQL and arguments inserting ``deferred`` ``(insert, [row])`` pairs, then ``last_row``."""
        parts = tuple((statement, tuple(params[0])) for statement, params in deferred)
        found = self._built.get(parts)
        if found is None:
            ctes = []
            orders = []
            for i, (statement, columns) in enumerate(parts):
                compiled = statement.compile(dialect=self._dialect, column_keys=list(columns))
                ctes.append(f"d{i} AS ({compiled.string})")
                orders.append(tuple(compiled.positiontup))
            found = self._built[parts] = (f"WITH {', '.join(ctes)} {self._last_insert_sql}", tuple(orders))
        sql, orders = found
        args = []
        for (_statement, params), order in zip(deferred, orders):
            row = params[0]
            args.extend(row[key] for key in order)
        args.extend(last_row)
        return sql, args
