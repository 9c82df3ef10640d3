"""A DBA drops the append-only triggers and edits rows: verification says where.

Every tampering is done with plain SQL (``tests/dba.py``) on the real
database. Each test checks the exact fault kind and the seq or checkpoint it
names, ``report.ok`` and ``report.first_bad_seq``, and that ``flask ledger
verify`` exits non-zero printing every fault and the one-line summary.
"""

from __future__ import annotations

import json

import pytest

from dba import DBA
from ledger.checkpoint import (
    CheckpointBody, NoteSignature, format_signed_note, note_key_hash, parse_signed_note,
)
from ledger.entry import utc_timestamp
from ledger.merkle import leaf_hash, root_of_leaves
from ledger.signing import generate_key_file
from ledger.report import (
    CHECKPOINT_FORGED, CHECKPOINT_INCONSISTENT, CHECKPOINT_UNTRUSTED_KEY, ENTRY_MISSING,
    EXTERNAL_MISMATCH, INDEX_CORRUPT, ORDER_CHANGED, PAYLOAD_CHANGED, ROLLED_BACK,
)
from ledger.verify import LedgerVerifier, VerifierStateFile

CHECKPOINT_SIZE = 40
SIZE = 48


@pytest.fixture
def dba(app):
    return DBA.for_app(app)


@pytest.fixture
def signed(ledger, fill):
    """48 entries; a checkpoint (database row, signer state, published note) at 40."""
    fill(CHECKPOINT_SIZE)
    checkpoint = ledger.create_checkpoint()
    fill(SIZE - CHECKPOINT_SIZE)
    assert checkpoint.tree_size == CHECKPOINT_SIZE and ledger.size() == SIZE
    return checkpoint


@pytest.fixture
def attacker(dba):
    """The DBA has dropped the triggers on every ledger table."""
    dba.drop_append_only_triggers()
    assert dba.triggers() == set()
    return dba


def verify(ledger, **options):
    return LedgerVerifier(ledger, **options).verify_full()


def seq_faults(report) -> list[tuple[int, str]]:
    return sorted((f.seq, f.kind) for f in report.faults if f.seq is not None)


def checkpoint_faults(report) -> list[tuple[int, str, str]]:
    return sorted((f.checkpoint_size, f.kind, f.source) for f in report.faults if f.seq is None)


def cli_verify(runner, *args) -> tuple[int, list[str]]:
    result = runner.invoke(args=["ledger", "verify", *args])
    return result.exit_code, result.output.splitlines()


def assert_cli_reports(runner, report, *args) -> list[str]:
    """The CLI fails, printing each fault of ``report`` and its summary last."""
    code, lines = cli_verify(runner, *args)
    assert code == 1, lines
    assert [line for line in lines if line.startswith("FAULT ")] == [f"FAULT {f}" for f in report.faults]
    assert lines[-1] == report.summary()
    assert lines[-1].startswith(f"FAILED ({report.mode}): {len(report.faults)} fault(s), ")
    return lines


# -- a clean ledger -------------------------------------------------------------------


def test_clean_ledger_verifies_in_full(ledger, signed, runner):
    report = verify(ledger)
    assert report.ok and report.faults == []
    assert (report.entries_checked, report.checkpoints_checked, report.external_checked) == (SIZE, 1, 2)
    assert report.verified_checkpoint == (CHECKPOINT_SIZE, signed.root_hash)
    assert report.tree_size == SIZE and report.root_hash == ledger.root()[1]
    assert report.first_bad_seq is None
    code, lines = cli_verify(runner)
    assert code == 0, lines
    assert lines[-1] == report.summary()
    assert lines[-1].startswith(f"OK (full): entries 0..{SIZE - 1}; checked {SIZE} entries, 1 checkpoints")


def test_incremental_checks_only_new_entries(app, ledger, fill, runner):
    state = VerifierStateFile(app.config["LEDGER_VERIFY_STATE"])
    verifier = LedgerVerifier(ledger, verifier_state=state)
    fill(40)
    first = ledger.create_checkpoint()
    report = verifier.verify_incremental()  # no state yet: a full run, remembered
    assert report.ok and report.mode == "full" and report.entries_checked == 40
    assert state.read() == (40, first.root_hash)

    fill(25)
    second = ledger.create_checkpoint()
    report = verifier.verify_incremental()
    assert report.ok, report.faults
    assert (report.mode, report.start, report.tree_size) == ("incremental", 40, 65)
    assert report.entries_checked == 25
    assert report.root_hash == second.root_hash
    assert state.read() == (65, second.root_hash)

    report = verifier.verify_incremental()
    assert report.ok and report.entries_checked == 0
    assert "no new entries" in report.summary()

    fill(5)
    code, lines = cli_verify(runner, "--incremental")
    assert code == 0, lines
    assert lines[-1].startswith("OK (incremental): entries 65..69; checked 5 entries, 1 checkpoints")


def test_incremental_detects_change_after_verified_checkpoint(app, ledger, fill, dba, runner):
    state = VerifierStateFile(app.config["LEDGER_VERIFY_STATE"])
    fill(40)
    ledger.create_checkpoint()
    assert LedgerVerifier(ledger, verifier_state=state).verify_full().ok
    fill(25)  # entries 40..64, not covered by any checkpoint yet
    dba.drop_append_only_triggers()
    dba.replace_in_canonical(52, b'{"i":12}', b'{"i":13}')  # fill's second batch restarts at i=0

    report = LedgerVerifier(ledger, verifier_state=state).verify_incremental()
    assert not report.ok
    assert (report.mode, report.start, report.entries_checked) == ("incremental", 40, 25)
    assert seq_faults(report) == [(52, PAYLOAD_CHANGED)]
    assert report.first_bad_seq == 52
    assert state.read()[0] == 40  # a failed run does not move the verified state
    lines = assert_cli_reports(runner, report, "--incremental")
    assert any(line.startswith("FAULT seq 52: payload_changed: ") for line in lines)
    assert "first bad seq 52" in lines[-1]


# -- (a), (b): one entry's bytes ------------------------------------------------------


def test_changed_payload_byte(ledger, signed, attacker, runner):
    original = attacker.entry_row(17)
    changed = attacker.replace_in_canonical(17, b'{"i":17}', b'{"i":18}')
    assert len(changed) == len(original["canonical"])
    assert sum(a != b for a, b in zip(changed, original["canonical"])) == 1

    report = verify(ledger)
    assert not report.ok
    assert seq_faults(report) == [(17, PAYLOAD_CHANGED)]
    assert report.first_bad_seq == 17
    # The rebuilt tree no longer meets the checkpoint at 40, wherever it is kept.
    assert checkpoint_faults(report) == [
        (CHECKPOINT_SIZE, CHECKPOINT_INCONSISTENT, "database"),
        (CHECKPOINT_SIZE, EXTERNAL_MISMATCH, "external"),
        (CHECKPOINT_SIZE, EXTERNAL_MISMATCH, "external"),
    ]
    lines = assert_cli_reports(runner, report)
    assert any(line.startswith("FAULT seq 17: payload_changed: stored bytes hash to ") for line in lines)
    assert "first bad seq 17" in lines[-1]


def test_changed_payload_with_recomputed_leaf_hash(ledger, signed, attacker, runner):
    original = attacker.entry_row(17)
    attacker.replace_in_canonical(17, b'{"i":17}', b'{"i":18}', fix_leaf_hash=True)
    row = attacker.entry_row(17)
    assert row["leaf_hash"] == leaf_hash(row["canonical"]) != original["leaf_hash"]

    report = verify(ledger)
    assert not report.ok
    faults = seq_faults(report)
    # Entry 18 still links to the original hash of 17; 17's stored level-1 node
    # (over 16 and 17) no longer matches either. Every seq fault names 17.
    assert (17, PAYLOAD_CHANGED) in faults
    assert {seq for seq, _ in faults} == {17}
    assert {kind for _, kind in faults} <= {PAYLOAD_CHANGED, INDEX_CORRUPT}
    link = next(f for f in report.faults if f.kind == PAYLOAD_CHANGED)
    assert "entry 18 recorded" in link.message
    assert report.first_bad_seq == 17
    assert CHECKPOINT_INCONSISTENT in report.kinds() and EXTERNAL_MISMATCH in report.kinds()
    lines = assert_cli_reports(runner, report)
    assert any(line.startswith("FAULT seq 17: payload_changed: entry 17 hashes to ") for line in lines)


def test_entry_fields_are_read_from_the_hashed_bytes_only(ledger, signed, attacker):
    """No column repeats ``ts``, ``kind``, ``actor`` or ``subject``: readers get
    them from the hashed bytes, so there is no second copy to edit unnoticed."""
    columns = set(attacker.entry_row(5))
    assert columns == {"seq", "canonical", "leaf_hash", "nodes"}
    entry = ledger.entry(5)
    envelope = json.loads(entry.canonical)
    assert (entry.ts, entry.kind, entry.actor, entry.subject) == (
        envelope["ts"], envelope["kind"], envelope["actor"], envelope["subject"])


def test_corrupted_proof_nodes(ledger, signed, attacker, runner):
    nodes = attacker.entry_row(31)["nodes"]
    assert len(nodes) == 5 * 32  # entry 31 completes the perfect subtrees of 2..32 leaves
    attacker.update_entry(31, nodes=bytes(32) + nodes[32:])

    report = verify(ledger)
    assert not report.ok
    assert seq_faults(report) == [(31, INDEX_CORRUPT)]
    assert report.first_bad_seq == 31
    lines = assert_cli_reports(runner, report)
    assert any(line.startswith("FAULT seq 31: index_corrupt: ") for line in lines)


# -- (c), (d): missing entries ----------------------------------------------------------


def test_deleted_tail_covered_by_checkpoint(ledger, signed, attacker, runner):
    assert attacker.delete_entries(25) == SIZE - 25
    assert ledger.size() == 25

    report = verify(ledger)
    assert not report.ok
    assert report.first_bad_seq == 25
    missing = [f for f in report.faults if f.kind == ENTRY_MISSING]
    assert len(missing) == 1
    assert (missing[0].seq, missing[0].checkpoint_size, missing[0].source) == (25, CHECKPOINT_SIZE, "database")
    assert f"checkpoint #{signed.id} covers {CHECKPOINT_SIZE} entries" in missing[0].message
    assert "entries 25..39 are missing" in missing[0].message
    # The signer's state and the published note say the same from outside.
    rolled = [f for f in report.faults if f.kind == ROLLED_BACK]
    assert sorted((f.seq, f.checkpoint_size, f.source) for f in rolled) == [
        (25, CHECKPOINT_SIZE, "external"), (25, CHECKPOINT_SIZE, "external")]
    assert report.kinds() == {ENTRY_MISSING, ROLLED_BACK}
    lines = assert_cli_reports(runner, report)
    assert f"FAULT seq 25: entry_missing: checkpoint #{signed.id} covers 40 entries but the ledger ends " \
           f"at 25: entries 25..39 are missing" in lines
    assert "first bad seq 25" in lines[-1]


def test_deleted_middle_entry(ledger, signed, attacker, runner):
    assert attacker.delete_entries(21, 21) == 1
    assert 21 not in attacker.seqs() and len(attacker.seqs()) == SIZE - 1

    report = verify(ledger)
    assert not report.ok
    assert seq_faults(report) == [(21, ENTRY_MISSING)]
    assert report.faults[0].message == "entry 21 is missing"
    assert report.first_bad_seq == 21
    lines = assert_cli_reports(runner, report)
    assert "FAULT seq 21: entry_missing: entry 21 is missing" in lines


# -- (e): order ---------------------------------------------------------------------------


def test_swapped_entries(ledger, signed, attacker, runner):
    before_12, before_30 = attacker.entry_row(12), attacker.entry_row(30)
    attacker.swap_entries(12, 30)
    after_12 = attacker.entry_row(12)
    assert after_12 == {**before_30, "seq": 12}
    assert attacker.entry_row(30) == {**before_12, "seq": 30}

    report = verify(ledger)
    assert not report.ok
    order = sorted(f.seq for f in report.faults if f.kind == ORDER_CHANGED)
    assert order == [12, 30]
    messages = {f.seq: f.message for f in report.faults if f.kind == ORDER_CHANGED}
    assert messages[12] == "position 12 holds the entry written as seq 30"
    assert messages[30] == "position 30 holds the entry written as seq 12"
    assert report.first_bad_seq == 12
    assert {seq for seq, _ in seq_faults(report)} == {12, 30}
    lines = assert_cli_reports(runner, report)
    assert "FAULT seq 12: order_changed: position 12 holds the entry written as seq 30" in lines
    assert "FAULT seq 30: order_changed: position 30 holds the entry written as seq 12" in lines


# -- (f), (g): checkpoints ------------------------------------------------------------------


def test_forged_checkpoint_signature(ledger, signed, attacker, runner):
    body, [signature] = parse_signed_note(signed.note)
    flipped = bytearray(signature.signature)
    flipped[10] ^= 0x01
    forged = format_signed_note(body, [NoteSignature(signature.name, signature.key_hash, bytes(flipped))])
    assert forged != signed.note and len(forged) == len(signed.note)
    attacker.update_checkpoint(signed.id, note=forged)

    report = verify(ledger)
    assert not report.ok
    assert checkpoint_faults(report) == [(CHECKPOINT_SIZE, CHECKPOINT_FORGED, "database")]
    assert report.first_bad_seq is None
    [fault] = report.faults
    assert f"checkpoint #{signed.id}" in fault.message and "does not verify (forged)" in fault.message
    lines = assert_cli_reports(runner, report)
    assert any(line.startswith(f"FAULT checkpoint size {CHECKPOINT_SIZE}: checkpoint_forged: ")
               for line in lines)
    assert f"checkpoint size {CHECKPOINT_SIZE}: checkpoint_forged" in lines[-1]


def test_checkpoint_resigned_with_attackers_key(ledger, signed, attacker, runner, tmp_path):
    origin = ledger.settings.origin
    key = generate_key_file(tmp_path / "attacker.key")
    body = CheckpointBody(origin, CHECKPOINT_SIZE, signed.root_hash).text()
    key_hash = note_key_hash(origin, key.public_key)
    note = format_signed_note(body, [NoteSignature(origin, key_hash, key.sign(body.encode()))])
    # The intruder makes the database consistent: their key in the key table too.
    attacker.insert_key(key.key_id, key.public_key, origin, utc_timestamp())
    attacker.update_checkpoint(signed.id, note=note, key_id=key.key_id)
    assert {row["key_id"] for row in attacker.key_rows()} == {signed.key_id, key.key_id}

    report = verify(ledger)
    assert not report.ok
    assert checkpoint_faults(report) == [(CHECKPOINT_SIZE, CHECKPOINT_UNTRUSTED_KEY, "database")]
    assert report.first_bad_seq is None
    [fault] = report.faults
    assert "not signed by any trusted key" in fault.message
    assert f"{origin}/{key_hash.hex()}" in fault.message
    lines = assert_cli_reports(runner, report)
    assert any(line.startswith(f"FAULT checkpoint size {CHECKPOINT_SIZE}: checkpoint_untrusted_key: ")
               for line in lines)


# -- (h): a consistent rewrite ----------------------------------------------------------------


def test_full_rewrite_passes_internal_checks_but_not_external_anchors(app, ledger, signed, attacker, runner):
    state = VerifierStateFile(app.config["LEDGER_VERIFY_STATE"])
    assert LedgerVerifier(ledger, verifier_state=state).verify_full().ok  # remembers (40, root)
    before = attacker.entry_rows()

    rewritten = attacker.rewrite_history(17, {"i": 17, "approved_by": "mallory"})
    assert rewritten == list(range(17, SIZE))
    assert attacker.delete_checkpoints() == 1
    after = attacker.entry_rows()
    assert after[:17] == before[:17]
    assert all(a["canonical"] != b["canonical"] for a, b in zip(after[17:], before[17:]))

    # The chain, the leaf hashes and the stored tree agree with each other.
    internal = verify(ledger, use_external=False)
    assert internal.ok, internal.faults
    assert (internal.entries_checked, internal.checkpoints_checked, internal.external_checked) == (SIZE, 0, 0)
    assert internal.root_hash == root_of_leaves([row["leaf_hash"] for row in after])
    assert internal.root_hash == ledger.root()[1] != signed.root_hash

    # What the signer and the published directory remember does not.
    report = verify(ledger)
    assert not report.ok
    assert report.kinds() == {EXTERNAL_MISMATCH}
    assert checkpoint_faults(report) == [(CHECKPOINT_SIZE, EXTERNAL_MISMATCH, "external")] * 2
    labels = sorted(f.message.split(" says ")[0] for f in report.faults)
    assert labels[0].startswith("published checkpoint checkpoint-000000000000040-")
    assert labels[1] == f"signer state {app.config['LEDGER_SIGNER_STATE']}"
    assert all(signed.root_hash.hex() in f.message for f in report.faults)
    assert report.first_bad_seq is None
    lines = assert_cli_reports(runner, report)
    assert any(line.startswith(f"FAULT checkpoint size {CHECKPOINT_SIZE}: external_checkpoint_mismatch: ")
               for line in lines)

    code, lines = cli_verify(runner, "--no-external")
    assert code == 0, lines
    assert lines[-1].startswith("OK (full)")

    # An incremental run from the verifier's own memory refuses to start.
    incremental = LedgerVerifier(ledger, verifier_state=state, use_external=False).verify_incremental()
    assert not incremental.ok
    assert checkpoint_faults(incremental) == [(CHECKPOINT_SIZE, EXTERNAL_MISMATCH, "verifier state")]
    assert "the database was rewritten" in incremental.faults[0].message
