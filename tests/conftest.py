"""Shared fixtures: a real database per test (SQLite file or PostgreSQL schema).

The backend follows ``DATABASE_URL``: unset or ``sqlite:`` gives each test its
own SQLite file; a ``postgresql+psycopg://`` URL makes the session create its
own database on that server (dropped at the end) and gives each test its own
schema in it, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app, upgrade_database

BACKEND_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = BACKEND_URL.startswith("postgresql")


@pytest.fixture(scope="session")
def postgres_database():
    """Create a database for this test session on the PostgreSQL server; drop it after."""
    if not ON_POSTGRES:
        yield None
        return
    admin_url = make_url(BACKEND_URL)
    name = f"ledgertest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _reserved_database(postgres_database, directory: Path, prefix: str):
    """(url, schema) of an empty database: a SQLite file in ``directory``, or a PostgreSQL schema."""
    if postgres_database is None:
        yield f"sqlite:///{directory / 'ledger.db'}", None
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_database, schema
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def database(postgres_database, tmp_path):
    """Return (url, schema) of an empty database reserved for this test."""
    with _reserved_database(postgres_database, tmp_path, "t") as reserved:
        yield reserved


@pytest.fixture(scope="module")
def module_database(postgres_database, tmp_path_factory):
    """Return (url, schema) of an empty database reserved for this test module."""
    with _reserved_database(postgres_database, tmp_path_factory.mktemp("module-db"), "m") as reserved:
        yield reserved


def app_config(database, instance: Path, **overrides) -> dict:
    """Return an app config that keeps every file of the ledger under ``instance``."""
    url, schema = database
    config = {
        "TESTING": True,
        "DATABASE_URL": url,
        "DATABASE_SCHEMA": schema,
        "LEDGER_SIGNING_KEY": str(instance / "signing.key"),
        "LEDGER_SIGNER_STATE": str(instance / "signing.key.state.json"),
        "LEDGER_TRUSTED_KEYS": str(instance / "signing.key.trusted.json"),
        "LEDGER_CHECKPOINT_DIR": str(instance / "checkpoints"),
        "LEDGER_VERIFY_STATE": str(instance / "verify-state.json"),
        "LEDGER_CHECKPOINT_EVERY": 0,
        "LEDGER_CHECKPOINT_SECONDS": 0,
        "LEDGER_BACKGROUND_CHECKPOINTS": False,
        "WEB_SESSION_KEY_FILE": str(instance / "web-session.key"),
    }
    config.update(overrides)
    return config


@pytest.fixture
def instance(tmp_path) -> Path:
    """A private instance directory (keys, signer state, published checkpoints)."""
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def make_app(database, instance):
    """Factory: build an app on this test's database, migrated, with overrides."""
    apps = []

    def build(migrate: bool = True, **overrides):
        app = create_app(app_config(database, instance, **overrides))
        if migrate:
            upgrade_database(app.extensions["db_engine"])
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["db_engine"].dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def ledger(app):
    return app.extensions["ledger"]


@pytest.fixture
def fill(ledger):
    """Factory: append ``n`` simple entries in batches; return the ledger."""

    def append(n: int, batch: int = 500, kind: str = "test.note"):
        for start in range(0, n, batch):
            ledger.append_many([
                {"kind": kind, "actor": "tester", "subject": f"thing:{i}", "payload": {"i": i}}
                for i in range(start, min(n, start + batch))
            ])
        return ledger

    return append


@pytest.fixture
def world(app):
    """A :class:`factories.World` on this test's app."""
    from factories import World

    return World(app)


@pytest.fixture(scope="session", autouse=True)
def only_declared_statuses():
    """Every status an API operation answers in the whole suite is declared in /api/openapi.json."""
    from observed_statuses import StatusRecorder

    with StatusRecorder() as recorder:
        yield recorder
    assert recorder.undeclared() == {}, "answered, but not declared by the operation in /api/openapi.json"
