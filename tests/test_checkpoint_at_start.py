"""A server signs a checkpoint of its tree when it starts, never over a rolled-back database.

Each process of a server (``LEDGER_BACKGROUND_CHECKPOINTS``, on unless a test
turns it off) signs, before it answers its first request, a checkpoint of the
tree unless the newest one covers it: a fresh server answers
``GET /api/v1/ledger/checkpoint`` at once, with a checkpoint of size 0 (valid
C2SP). The signer's rollback protection applies as to any signature, and a
server whose ledger refuses writes, or whose database or key is unusable,
still starts and says why in ``/readyz``. Here through the Flask test client
(the first request plays the start); the last test starts granian itself, as
a deployment does, without ``make``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
from pathlib import Path

import pytest

from app import create_app, upgrade_database
from conftest import app_config
from dba import DBA
from guides.live import LiveServer, guide_environment
from ledger.signer import SignerStateFile

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()  # RFC 6962: the root of the empty tree


@pytest.fixture
def start(make_app):
    """Factory: an app that signs at start, as a server process does."""

    def build(**overrides):
        return make_app(LEDGER_BACKGROUND_CHECKPOINTS=True, **overrides)

    return build


def signed_size(app) -> int | None:
    state = SignerStateFile(app.config["LEDGER_SIGNER_STATE"]).read()
    return state.tree_size if state else None


def notes(app) -> list[str]:
    return sorted(p.name for p in Path(app.config["LEDGER_CHECKPOINT_DIR"]).glob("checkpoint-*.note"))


def test_a_fresh_server_answers_its_first_request_with_a_checkpoint_of_size_0(start):
    app = start()
    response = app.test_client().get("/api/v1/ledger/checkpoint")
    assert response.status_code == 200, response.get_json()
    checkpoint = response.get_json()
    assert checkpoint["tree_size"] == 0 and checkpoint["root_hash"] == EMPTY_ROOT
    origin = app.config["LEDGER_ORIGIN"]
    body = f"{origin}\n0\n{base64.b64encode(bytes.fromhex(EMPTY_ROOT)).decode()}\n"
    assert checkpoint["note"].startswith(body + "\n\u2014 " + origin + " ")  # C2SP: body, blank line, signature
    assert signed_size(app) == 0
    assert notes(app) == [f"checkpoint-{0:015d}-{checkpoint['key_id'][:16]}.note"]
    # The ledger verifies, and the first write extends the signed empty tree.
    assert app.test_cli_runner().invoke(args=["ledger", "verify"]).exit_code == 0
    app.extensions["ledger"].append("test.note", "tester", "s", {})
    assert app.extensions["ledger"].create_checkpoint().tree_size == 1


def test_entries_beyond_the_newest_checkpoint_are_signed_at_start(start, make_app):
    quiet = make_app()  # a process that signs nothing by itself (the CLI, a test)
    ledger = quiet.extensions["ledger"]
    for i in range(3):
        ledger.append("test.note", "tester", f"s:{i}", {"i": i})
    ledger.create_checkpoint()
    ledger.append("test.note", "tester", "s:3", {})
    app = start()
    assert app.test_client().get("/healthz").status_code == 200
    assert app.extensions["ledger"].latest_checkpoint().tree_size == 4
    assert signed_size(app) == 4


def test_a_tree_its_newest_checkpoint_covers_gets_no_second_one(start):
    first = start()
    first.test_client().get("/healthz")
    second = start()  # another worker, or the server restarted
    second.test_client().get("/healthz")
    assert [row["tree_size"] for row in DBA.for_app(second).checkpoint_rows()] == [0]


@pytest.mark.parametrize("damage", ["rolled back", "rewritten"])
def test_a_database_the_signer_did_not_sign_is_never_signed_at_start(start, make_app, fill, damage):
    ledger = fill(4)
    ledger.create_checkpoint()
    before = SignerStateFile(ledger.settings.signer_state_path).read()
    dba = DBA.for_app(make_app())
    dba.drop_append_only_triggers()
    if damage == "rolled back":
        dba.delete_entries(2)
    else:
        dba.rewrite_history(1, {"i": "changed"})
    checkpoints = dba.checkpoint_rows()
    app = start()
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["ledger"].startswith("ledger refuses writes: ")
    assert dba.checkpoint_rows() == checkpoints  # nothing signed
    assert SignerStateFile(ledger.settings.signer_state_path).read() == before


def test_a_server_on_an_unmigrated_database_starts_and_signs_nothing(start, instance):
    app = start(migrate=False)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    assert not (instance / "signing.key").exists()
    upgrade_database(app.extensions["db_engine"])  # migrated later: the next process signs
    assert start().test_client().get("/api/v1/ledger/checkpoint").get_json()["tree_size"] == 0


def test_a_server_with_an_unusable_key_starts_and_says_why(start, instance, caplog):
    (instance / "signing.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    app = start()
    client = app.test_client()
    assert client.get("/api/v1/ledger/checkpoint").status_code == 404
    assert "no checkpoint signed at start: cannot load signing key" in caplog.text
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["signing_key"] == "unusable (details in the server log)"


def test_the_cli_signs_nothing(make_app, instance):
    app = make_app(LEDGER_BACKGROUND_CHECKPOINTS=True)
    assert app.test_cli_runner().invoke(args=["ledger", "status"]).exit_code == 0
    assert DBA.for_app(app).checkpoint_rows() == []


def test_granian_without_make_starts_on_a_rolled_back_ledger_and_says_why(database, tmp_path):
    """As a deployment starts the server: migrations, key, then granian; writes refused, /readyz says why."""
    env = guide_environment(database, tmp_path)
    app = create_app(app_config(database, tmp_path / "instance"))
    upgrade_database(app.extensions["db_engine"])
    ledger = app.extensions["ledger"]
    for i in range(3):
        ledger.append("test.note", "tester", f"s:{i}", {"i": i})
    ledger.create_checkpoint()
    dba = DBA.for_app(app)
    dba.drop_append_only_triggers()
    dba.delete_entries(1)  # an old backup of one entry restored over it
    app.extensions["db_engine"].dispose()

    server = LiveServer(env, tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.proc.poll() is None, server.log()
            try:
                if server.get("/healthz")[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        status, body = server.get("/readyz")
        assert status == 503, body
        assert "was rolled back" in json.loads(body)["checks"]["ledger"]
        status, body = server.get("/api/v1/ledger/checkpoint")
        assert status == 200 and json.loads(body)["tree_size"] == 3  # the one signed before, no other
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()
    assert SignerStateFile(app.config["LEDGER_SIGNER_STATE"]).read().tree_size == 3
