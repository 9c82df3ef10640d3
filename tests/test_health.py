"""``/healthz`` (the process is up) and ``/readyz`` (it can serve and write).

``/readyz`` answers 200 only when the database is reachable, migrated to the
head revision, the signing key loads and the ledger accepts writes; otherwise
503 naming the check that failed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command

from app import alembic_config, migration_head
from conftest import ON_POSTGRES
from factories import World

READY_CHECKS = {"database", "migrations", "signing_key", "ledger", "policies"}


def readyz(app) -> tuple[int, dict]:
    response = app.test_client().get("/readyz")
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_is_up_even_when_not_ready(make_app):
    app = make_app(migrate=False)
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}
    assert readyz(app)[0] == 503


def test_readyz_on_a_migrated_app(app):
    status, body = readyz(app)
    assert status == 200, body
    assert body["status"] == "ready"
    checks = body["checks"]
    assert set(checks) == READY_CHECKS
    assert checks["database"] == checks["migrations"] == checks["ledger"] == checks["policies"] == "ok"
    key_id = app.extensions["ledger"].signing_key().key_id
    assert checks["signing_key"] == f"ok ({key_id[:16]})"


def test_readyz_names_missing_migrations(make_app, instance):
    app = make_app(migrate=False)
    status, body = readyz(app)
    assert status == 503
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == f"at None, head is {migration_head()}"
    assert not (instance / "signing.key").exists()  # no key is made for an app that cannot serve


def test_readyz_names_an_old_migration(make_app):
    app = make_app(migrate=False)
    with app.extensions["db_engine"].connect() as conn:
        command.upgrade(alembic_config(conn), "0001_ledger")
        conn.commit()
    status, body = readyz(app)
    assert status == 503
    assert body["checks"]["migrations"] == f"at 0001_ledger, head is {migration_head()}"


def test_readyz_is_503_when_the_database_is_unreachable(make_app, tmp_path):
    url = ("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2" if ON_POSTGRES
           else f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'ledger.db'}")
    app = make_app(migrate=False, DATABASE_URL=url)
    status, body = readyz(app)
    assert status == 503
    assert body == {"status": "not ready",
                    "checks": {"database": "unreachable: OperationalError", "migrations": "unknown",
                               "policies": "ok"}}


def test_readyz_is_503_when_the_signing_key_is_corrupt(make_app, instance):
    key = instance / "signing.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n\x00\xffgarbage\n-----END PRIVATE KEY-----\n")
    app = make_app()
    status, body = readyz(app)
    assert status == 503
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == body["checks"]["migrations"] == "ok"
    assert body["checks"]["signing_key"] == "unusable (details in the server log)"  # no path, no library text
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n\x00\xffgarbage")  # never replaced
    # Signing is refused the same way over HTTP (503 JSON, not 500).
    response = app.test_client().post("/api/v1/ledger/checkpoints", headers=World(app).headers("root", "admin"))
    assert response.status_code == 503
    assert response.get_json()["message"].startswith("cannot load signing key")
    assert app.test_client().get("/api/v1/ledger/checkpoint").status_code == 404


def test_readyz_is_503_when_the_signing_key_path_is_unreadable(make_app, instance):
    (instance / "signing.key").mkdir()  # a directory where the key file should be
    status, body = readyz(make_app())
    assert status == 503
    assert body["checks"]["signing_key"] == "unusable (details in the server log)"


def test_readyz_is_503_when_the_signer_state_is_corrupt(make_app, instance):
    app = make_app()
    app.extensions["ledger"].append("test.note", "tester", "s", {})
    app.extensions["ledger"].create_checkpoint()
    Path(app.config["LEDGER_SIGNER_STATE"]).write_text("{garbage", encoding="utf-8")
    fresh = make_app()  # a new process reads the state afresh
    status, body = readyz(fresh)
    assert status == 503
    assert body["checks"]["signing_key"].startswith("ok (")
    assert body["checks"]["ledger"].startswith("ledger refuses writes: signer state ")
    assert "is corrupt" in body["checks"]["ledger"]
