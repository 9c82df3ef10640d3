"""An old or rewritten database under a newer signer state is refused.

The signer keeps the last (size, root) it signed outside the database (the
instance directory). A database restored from an old backup is shorter than
that; a rewritten one has another root at that size. Either way the service
refuses writes (``LedgerUnavailableError``, ``/readyz`` 503) and the signer
refuses to sign, until an operator runs ``accept_restore``.

SQLite: the backup is a copy of the database file (WAL folded in first).
PostgreSQL: the restore is a fresh schema holding the first N rows of the
original one (``INSERT ... SELECT``). Either way the new app shares the
original's instance directory: same key, signer state and published notes.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from dba import DBA
from ledger.errors import LedgerUnavailableError, RollbackError
from ledger.operations import accept_restore
from ledger.signer import SignerStateFile
from ledger.report import CHECKPOINT_INCONSISTENT, EXTERNAL_MISMATCH, ROLLED_BACK
from ledger.verify import LedgerVerifier


class Backup:
    """Take a backup of the test's database at some size; restore it under a new app."""

    def __init__(self, app, make_app, tmp_path: Path):
        self.app = app
        self.make_app = make_app
        self.dba = DBA.for_app(app)
        self.file = tmp_path / "backup.db"
        self.size: int | None = None
        self.schemas: list[str] = []
        self.restored_apps = []

    def take(self) -> None:
        self.size = self.app.extensions["ledger"].size()
        if not self.dba.postgres:
            self.dba.sqlite_backup(self.file)

    def restore(self):
        """Return a new app (same instance directory) on the restored database."""
        assert self.size is not None
        if self.dba.postgres:
            schema = f"r_{uuid.uuid4().hex[:12]}"
            self.dba.execute(f'CREATE SCHEMA "{schema}"')
            self.schemas.append(schema)
            app = self.make_app(DATABASE_SCHEMA=schema)
            self.dba.copy_prefix_to_schema(schema, self.size)
        else:
            self.dba.sqlite_restore(self.file)
            app = self.make_app()
        self.restored_apps.append(app)
        return app

    def cleanup(self) -> None:
        for app in self.restored_apps:
            app.extensions["db_engine"].dispose()
        for schema in self.schemas:
            self.dba.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def backup(app, make_app, tmp_path):
    keeper = Backup(app, make_app, tmp_path)
    yield keeper
    keeper.cleanup()


@pytest.fixture
def rolled_back(app, ledger, fill, backup):
    """Backup at 30 entries (checkpoint 30), then 50 entries (checkpoint 50), then restore."""
    fill(30)
    first = ledger.create_checkpoint()
    backup.take()
    fill(20)
    second = ledger.create_checkpoint()
    assert (first.tree_size, second.tree_size) == (30, 50)
    restored_app = backup.restore()
    return restored_app, first, second


def published(app) -> list[str]:
    return sorted(p.name for p in Path(app.config["LEDGER_CHECKPOINT_DIR"]).glob("*.note"))


def readyz(app):
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json()


def test_restored_backup_is_refused(rolled_back):
    app, first, second = rolled_back
    restored = app.extensions["ledger"]
    assert restored.size() == 30
    assert restored.latest_checkpoint().tree_size == 30
    state_before = SignerStateFile(app.config["LEDGER_SIGNER_STATE"]).read()
    notes_before = published(app)
    assert state_before.tree_size == 50 and len(notes_before) == 2

    with pytest.raises(RollbackError, match=r"holds 30 entries but a checkpoint of size 50 was signed "
                                            r"at .*: it was rolled back"):
        restored.check_against_signer()
    with pytest.raises(LedgerUnavailableError,
                       match=r"^ledger refuses writes: the database holds 30 entries but a checkpoint of "
                             r"size 50 was signed at .*: it was rolled back \(an old backup restored\?\)$"):
        restored.append("test.note", "tester", "thing:late", {"late": True})
    assert "rolled back" in restored.write_block
    with pytest.raises(LedgerUnavailableError, match="rolled back"):  # and it stays refused
        restored.append_many([{"kind": "test.note", "actor": "a", "subject": "s", "payload": {}}])

    status, body = readyz(app)
    assert status == 503
    assert body["status"] == "not ready"
    assert "rolled back" in body["checks"]["ledger"]
    assert body["checks"]["ledger"].startswith("ledger refuses writes: the database holds 30 entries")

    with pytest.raises(RollbackError, match="refusing to sign size 30: a checkpoint of size 50 was already signed"):
        restored.create_checkpoint()

    result = app.test_cli_runner().invoke(args=["ledger", "status"])
    assert result.exit_code == 1
    assert "signer state: REFUSING WRITES: " in result.output and "rolled back" in result.output

    # Nothing was written anywhere.
    assert restored.size() == 30 and restored.latest_checkpoint().tree_size == 30
    assert SignerStateFile(app.config["LEDGER_SIGNER_STATE"]).read() == state_before
    assert published(app) == notes_before

    # Verification says the same: the external anchors of size 50 are out of reach.
    report = LedgerVerifier(restored).verify_full()
    assert not report.ok
    assert report.kinds() == {ROLLED_BACK}
    assert sorted((f.seq, f.checkpoint_size) for f in report.faults) == [(30, 50), (30, 50)]
    assert report.first_bad_seq == 30


def test_accept_restore_reenables_writes(rolled_back):
    app, first, second = rolled_back
    restored = app.extensions["ledger"]
    state_path = Path(app.config["LEDGER_SIGNER_STATE"])
    checkpoint_dir = Path(app.config["LEDGER_CHECKPOINT_DIR"])
    with pytest.raises(LedgerUnavailableError, match="rolled back"):
        restored.append("test.note", "tester", "thing:late", {"late": True})
    [note_30, note_50] = published(app)
    assert note_30.startswith("checkpoint-000000000000030-") and note_50.startswith("checkpoint-000000000000050-")

    result = accept_restore(restored, "operator:alice", "disk lost; restored the 02:00 backup")

    # The decision is a ledger entry, the first one after the restored entries.
    assert result["seq"] == 30
    entry = restored.entry(30)
    assert (entry.kind, entry.actor, entry.subject) == (
        "ledger.restore.accepted", "operator:alice", f"ledger:{restored.settings.origin}")
    payload = json.loads(entry.canonical)["payload"]
    assert payload["reason"] == "disk lost; restored the 02:00 backup"
    assert payload["superseded_checkpoint"]["tree_size"] == 50
    assert payload["superseded_checkpoint"]["root_hash"] == second.root_hash.hex()
    assert payload["superseded_published_notes"] == [note_50]
    assert payload["database_size_at_restore"] == 30

    # The contradicted note is kept as evidence, out of the published set.
    assert result["superseded_notes"] == [note_50]
    assert (checkpoint_dir / "superseded" / note_50).is_file()
    assert not (checkpoint_dir / note_50).exists()
    assert (checkpoint_dir / note_30).is_file()
    # The old signer state is kept, renamed.
    kept = Path(result["state_kept_at"])
    assert kept.is_file() and kept.name.startswith(state_path.name + ".superseded-")
    assert json.loads(kept.read_text())["tree_size"] == 50

    # A new checkpoint is signed over the restored entries plus the decision.
    assert result["checkpoint_size"] == 31
    latest = restored.latest_checkpoint()
    assert latest.tree_size == 31 and latest.root_hash == restored.root()[1]
    state = SignerStateFile(state_path).read()
    assert (state.tree_size, state.root) == (31, latest.root_hash)
    assert any(name.startswith("checkpoint-000000000000031-") for name in published(app))

    # Writes work again, the service is ready, and the whole ledger verifies.
    assert restored.write_block is None
    assert restored.append("test.note", "tester", "thing:after", {"after": "restore"}).seq == 31
    status, body = readyz(app)
    assert status == 200, body
    assert body["checks"]["ledger"] == "ok"
    assert restored.create_checkpoint().tree_size == 32
    report = LedgerVerifier(restored).verify_full()
    assert report.ok, report.faults
    assert report.entries_checked == 32


def test_rewritten_database_is_refused(app, ledger, fill, make_app):
    fill(30)
    signed = ledger.create_checkpoint()
    dba = DBA.for_app(app)
    dba.drop_append_only_triggers(["ledger_entry"])
    dba.rewrite_history(12, {"i": 12, "rewritten": True})

    # A fresh process (here: a new app on the same database and instance).
    fresh_app = make_app()
    fresh = fresh_app.extensions["ledger"]
    assert fresh.size() == 30
    assert fresh.root()[1] != signed.root_hash
    with pytest.raises(RollbackError, match=rf"the database was rewritten: its tree of size 30 has root "
                                            rf"[0-9a-f]{{64}}, but the signed checkpoint says "
                                            rf"{signed.root_hash.hex()}"):
        fresh.check_against_signer()
    with pytest.raises(LedgerUnavailableError, match="^ledger refuses writes: the database was rewritten: "):
        fresh.append("test.note", "tester", "thing:late", {"late": True})
    status, body = readyz(fresh_app)
    assert status == 503 and "the database was rewritten" in body["checks"]["ledger"]
    with pytest.raises(RollbackError, match="refusing to sign size 30: it is not an extension of the "
                                            "signed checkpoint of size 30"):
        fresh.create_checkpoint()
    assert fresh.size() == 30
    assert [cp["tree_size"] for cp in dba.checkpoint_rows()] == [30]
    assert SignerStateFile(app.config["LEDGER_SIGNER_STATE"]).read().root == signed.root_hash


def test_signer_refuses_a_diverging_extension(app, ledger, fill):
    """A longer tree whose prefix is not the signed tree gets no signature."""
    fill(30)
    signed = ledger.create_checkpoint()
    dba = DBA.for_app(app)
    dba.drop_append_only_triggers(["ledger_entry"])
    dba.rewrite_history(7, {"i": 7, "rewritten": True})
    # This process checked the database before the rewrite and keeps
    # appending; the appends extend the rewritten tree.
    fill(10)
    assert ledger.size() == 40
    state_path = app.config["LEDGER_SIGNER_STATE"]
    notes = published(app)

    with pytest.raises(RollbackError, match=r"refusing to sign size 40: it is not an extension of the signed "
                                            r"checkpoint of size 30 \(.*\)"):
        ledger.create_checkpoint()
    assert [cp["tree_size"] for cp in dba.checkpoint_rows()] == [30]
    assert SignerStateFile(state_path).read().root == signed.root_hash
    assert published(app) == notes

    # Verification shows where the extension leaves the signed tree.
    report = LedgerVerifier(ledger).verify_full()
    assert not report.ok
    assert report.kinds() == {CHECKPOINT_INCONSISTENT, EXTERNAL_MISMATCH}
    assert {f.checkpoint_size for f in report.faults} == {30}


def test_signer_accepts_a_proven_extension(app, ledger, fill):
    """The refusals above are not spurious: a genuine extension is signed."""
    fill(30)
    ledger.create_checkpoint()
    fill(17)
    checkpoint = ledger.create_checkpoint()
    assert checkpoint.tree_size == 47
    state = SignerStateFile(app.config["LEDGER_SIGNER_STATE"]).read()
    assert (state.tree_size, state.root) == (47, checkpoint.root_hash)
