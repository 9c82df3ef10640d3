"""Database engines for the ledger: SQLite (WAL, FULL sync) and PostgreSQL.

SQLite transactions are begun explicitly so that ledger writes can take the
write lock up front with ``BEGIN IMMEDIATE`` (two writers can then never both
read the same head; the writer connection of ``store.py``, marked with
``WRITE_OPTION``, issues it itself) while readers use a plain deferred
``BEGIN``; the driver's
own transaction handling is switched off, as the SQLAlchemy documentation
recommends for pysqlite. ``synchronous=FULL`` makes every acknowledged commit
survive power loss. PostgreSQL keeps its defaults (``synchronous_commit=on``);
an optional schema isolates one ledger (or one test) inside a database.
"""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

WRITE_OPTION = "ledger_write"
SQLITE_BUSY_TIMEOUT_S = 60


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
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # The ledger's writer connection begins its own transactions
        # (BEGIN IMMEDIATE, see ledger/store.py); every other one reads.
        if not conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN")


def select_all(conn, statements: dict, params: dict) -> dict[str, list]:
    """Run several SELECTs that take the same parameters; return each one's rows by name.

    On PostgreSQL (psycopg) they travel to the server together in one pipeline,
    on the connection's own transaction: one round trip instead of one per
    query. Elsewhere they run one after another through SQLAlchemy. Rows allow
    attribute access (``row.seq``) either way.
    """
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return {name: conn.execute(statement, params).all() for name, statement in statements.items()}
    from psycopg.rows import namedtuple_row  # only PostgreSQL deployments have it imported

    raw = conn.connection.driver_connection
    cursors = {}
    with raw.pipeline():
        for name, statement in statements.items():
            cursor = raw.cursor(row_factory=namedtuple_row)
            cursor.execute(_compiled_sql(conn.dialect, statement), params)
            cursors[name] = cursor
    return {name: cursor.fetchall() for name, cursor in cursors.items()}


_COMPILED: dict = {}


def _compiled_sql(dialect, statement) -> str:
    key = (dialect.name, dialect.driver, statement)  # a Select hashes by identity
    sql = _COMPILED.get(key)
    if sql is None:
        sql = _COMPILED[key] = statement.compile(dialect=dialect).string
    return sql
