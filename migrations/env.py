"""Alembic environment: one database URL, from the caller or DATABASE_URL.

``create_app`` and the tests pass an open connection in
``config.attributes["connection"]``; the ``alembic`` command line reads
``DATABASE_URL`` (and ``DATABASE_SCHEMA`` for a PostgreSQL schema) exactly as
the app does, so both always migrate the same database.
"""

from logging.config import fileConfig

from alembic import context

from app import database_settings
from ledger.db import make_engine

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations(connection) -> None:
    # SQLite DDL is transactional too once the driver's own transaction handling
    # is off (ledger/db.py): a failed migration leaves nothing half-done.
    context.configure(connection=connection, target_metadata=None,
                      transaction_per_migration=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url, schema = database_settings()
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as conn:
            if schema and conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                conn.commit()
            run_migrations(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: triggers differ by database")
run_online()
