"""The migrations and ``governance/tables.py`` describe the same ``gov_*`` schema,
and the migrations run down to nothing and back up again.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from app import alembic_config, migration_head
from factories import World
from governance.projections import tables

LEDGER_TABLES = {"ledger_entry", "ledger_checkpoint", "ledger_key"}
GOV_TABLES = set(tables.metadata.tables)


def _gov_only(name, type_, parent_names) -> bool:
    if type_ == "schema":
        return True
    if type_ == "table":
        return name.startswith("gov_")
    return parent_names.get("table_name", "").startswith("gov_")


def schema_diff(conn) -> list:
    """Differences between the database's gov_* tables and the metadata."""
    context = MigrationContext.configure(conn, opts={
        "include_name": _gov_only, "compare_type": True, "compare_server_default": True})
    return compare_metadata(context, tables.metadata)


def table_names(conn) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def migrate(engine, action: str, target: str) -> None:
    with engine.connect() as conn:
        getattr(command, action)(alembic_config(conn), target)
        conn.commit()


def revision(engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrated_database_matches_the_metadata(app):
    engine = app.extensions["db_engine"]
    with engine.connect() as conn:
        assert schema_diff(conn) == []
        assert {t for t in table_names(conn) if t.startswith("gov_")} == GOV_TABLES
        assert LEDGER_TABLES <= table_names(conn)
    assert GOV_TABLES >= {"gov_token", "gov_token_secret", "gov_model", "gov_audit_event"}
    assert revision(engine) == migration_head()


def test_the_comparison_notices_drift(app):
    """Proof that the check above can fail: change the database, see the diff."""
    engine = app.extensions["db_engine"]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE gov_model ADD COLUMN colour VARCHAR(16)"))
        conn.execute(sa.text("DROP INDEX ix_gov_token_principal"))
        conn.execute(sa.text("CREATE TABLE gov_stray (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("CREATE TABLE unrelated_table (id INTEGER PRIMARY KEY)"))
        if postgres:  # SQLite cannot change a column's type or nullability in place
            conn.execute(sa.text("ALTER TABLE gov_dataset ALTER COLUMN owner TYPE VARCHAR(100)"))
            conn.execute(sa.text("ALTER TABLE gov_token ALTER COLUMN expires_at SET NOT NULL"))
    with engine.connect() as conn:
        diff = schema_diff(conn)
    found = set()
    for item in diff:
        for change in item if isinstance(item, list) else [item]:
            if change[0] in ("modify_type", "modify_nullable"):
                found.add((change[0], f"{change[2]}.{change[3]}"))
            else:
                found.add((change[0], change[-1].name))
    expected = {("add_index", "ix_gov_token_principal"), ("remove_column", "colour"),
                ("remove_table", "gov_stray")}
    if postgres:
        expected |= {("modify_type", "gov_dataset.owner"), ("modify_nullable", "gov_token.expires_at")}
    assert found == expected


def test_downgrade_to_base_and_upgrade_again(make_app):
    """On a scratch database: up, populate, down to nothing, up again; it all works."""
    app = make_app()
    engine = app.extensions["db_engine"]
    world = World(app)
    world.registered_version()
    assert world.ledger_size() > 0

    migrate(engine, "downgrade", "0001_ledger")
    with engine.connect() as conn:
        names = table_names(conn)
    assert not {t for t in names if t.startswith("gov_")}
    assert LEDGER_TABLES <= names
    assert revision(engine) == "0001_ledger"

    migrate(engine, "downgrade", "base")
    with engine.connect() as conn:
        assert table_names(conn) <= {"alembic_version"}
        if conn.dialect.name == "postgresql":
            functions = conn.execute(sa.text(
                "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace")).scalars()
            assert not set(functions)
    assert revision(engine) is None

    migrate(engine, "upgrade", "head")
    assert revision(engine) == migration_head()
    with engine.connect() as conn:
        assert schema_diff(conn) == []
        assert LEDGER_TABLES | GOV_TABLES <= table_names(conn)

    # A fresh app on the re-created schema works end to end ...
    again = World(make_app(migrate=False))
    again.registered_version()
    assert again.ledger_size() == 5  # token, dataset, its version, model, version
    assert again.ledger.entry(0).kind == "identity.token.created"
    # ... and the append-only triggers are back.
    with pytest.raises(IntegrityError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE ledger_entry SET nodes = NULL WHERE seq = 0"))


def test_upgrade_is_idempotent_at_head(app):
    engine = app.extensions["db_engine"]
    with engine.connect() as conn:
        before = table_names(conn)
    migrate(engine, "upgrade", "head")
    with engine.connect() as conn:
        assert table_names(conn) == before
        assert schema_diff(conn) == []
    assert revision(engine) == migration_head()
