"""Operator commands: ``flask ledger ...``, ``flask tokens ...``, ``flask governance rebuild``.

Each command runs through ``app.test_cli_runner()`` on the test's real
database and instance directory; its effect is checked in the ledger, in the
files beside the key and through the HTTP API.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import re
from pathlib import Path

import pytest

from ledger.verify import check_note

HEX64 = r"[0-9a-f]{64}"


def invoke(runner, *args, **kwargs):
    return runner.invoke(args=list(args), **kwargs)


def ok(runner, *args, **kwargs) -> str:
    """Run a command that must succeed; return its output."""
    result = invoke(runner, *args, **kwargs)
    assert result.exit_code == 0, (args, result.exit_code, result.output, result.exception)
    return result.output


def entry_json(ledger, seq: int) -> dict:
    return json.loads(ledger.entry(seq).canonical)


def trusted_file(app) -> dict:
    with open(app.config["LEDGER_TRUSTED_KEYS"], encoding="utf-8") as f:
        return {k["key_id"]: k for k in json.load(f)["keys"]}


# -- ledger init-key ------------------------------------------------------------------------

def test_init_key_is_idempotent(app, runner):
    first = ok(runner, "ledger", "init-key")
    match = re.fullmatch(rf"signing key ({HEX64}) \((.+)\)\n", first)
    assert match, first
    assert match.group(2) == app.config["LEDGER_SIGNING_KEY"]
    key_pem = Path(app.config["LEDGER_SIGNING_KEY"]).read_bytes()
    assert ok(runner, "ledger", "init-key") == first
    assert Path(app.config["LEDGER_SIGNING_KEY"]).read_bytes() == key_pem  # not replaced
    trusted = trusted_file(app)
    assert list(trusted) == [match.group(1)]
    public = base64.b64decode(trusted[match.group(1)]["public_key_b64"])
    assert hashlib.sha256(public).hexdigest() == match.group(1)
    assert trusted[match.group(1)]["retired"] is None
    # published at once: the public-keys endpoint lists it before any checkpoint
    listed = app.test_client().get("/api/v1/ledger/public-keys").get_json()["keys"]
    assert [(k["key_id"], k["retired"]) for k in listed] == [(match.group(1), None)]


def test_init_key_refuses_a_corrupt_key_file(app, runner):
    path = app.config["LEDGER_SIGNING_KEY"]
    with open(path, "wb") as f:
        f.write(b"not a key\n")
    result = invoke(runner, "ledger", "init-key")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot load signing key {path}")
    assert Path(path).read_bytes() == b"not a key\n"  # never overwritten


# -- ledger annotate ------------------------------------------------------------------------

def test_annotate_appends_an_operator_note(app, runner, fill):
    ledger = app.extensions["ledger"]
    fill(2)
    text = "restored backup of 2026-11-01 \u2713 \u00fcber"
    output = ok(runner, "ledger", "annotate", "--subject", "ledger:ops", "--kind", "operator.incident",
                "--text", text, "--actor", "oscar")
    match = re.fullmatch(rf"seq (\d+) leaf ({HEX64})\n", output)
    assert match, output
    seq = int(match.group(1))
    assert seq == 2 and ledger.size() == 3
    stored = ledger.entry(seq)
    assert stored.leaf_hash.hex() == match.group(2)
    assert hashlib.sha256(b"\x00" + stored.canonical).hexdigest() == match.group(2)
    envelope = entry_json(ledger, seq)
    assert envelope["kind"] == "operator.incident"
    assert envelope["actor"] == "operator:oscar"
    assert envelope["subject"] == "ledger:ops"
    assert envelope["payload"] == {"text": text}


def test_annotate_defaults_the_actor_to_the_os_user(app, runner):
    ok(runner, "ledger", "annotate", "--subject", "s", "--kind", "operator.review", "--text", "t")
    assert entry_json(app.extensions["ledger"], 0)["actor"] == f"operator:{getpass.getuser()}"


NOTE = ["--subject", "ledger:ops", "--text", "note"]


@pytest.mark.parametrize("args, code, message", [
    (NOTE + ["--kind", "Bad Kind"], 1, "error: kind 'Bad Kind' must be a dotted lowercase name"),
    (NOTE + ["--kind", "nodot"], 1, "error: kind 'nodot' must be a dotted lowercase name"),
    (["--subject", " ", "--text", "t", "--kind", "operator.note"], 1, "error: subject must not be empty"),
    (["--subject", "a\tb", "--text", "t", "--kind", "operator.note"], 1,
     "error: subject must not contain control characters"),
    (NOTE + ["--kind", "operator.note", "--actor", "x" * 300], 1, "error: actor is longer than 256 characters"),
    (["--subject", "s", "--kind", "operator.note"], 2, "Missing option '--text'"),
])
def test_annotate_refuses_bad_input(app, runner, args, code, message):
    result = invoke(runner, "ledger", "annotate", *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert app.extensions["ledger"].size() == 0


# -- ledger checkpoint / status -------------------------------------------------------------

def test_checkpoint_prints_a_signed_note(app, runner, client, fill):
    ledger = app.extensions["ledger"]
    fill(7)
    note = ok(runner, "ledger", "checkpoint")
    size, root, key_id = check_note(note, ledger.settings.origin, ledger.trusted_keys.read())
    assert size == 7
    assert root == ledger.root(7)[1]
    assert note.startswith(f"{ledger.settings.origin}\n7\n{base64.b64encode(root).decode()}\n\n\u2014 ")
    api = client.get("/api/v1/ledger/checkpoint").get_json()
    assert (api["note"], api["tree_size"], api["key_id"]) == (note, 7, key_id)
    assert ok(runner, "ledger", "checkpoint") == note  # same size: same checkpoint


def test_status(app, runner, fill):
    ledger = app.extensions["ledger"]
    fill(4)
    before = ok(runner, "ledger", "status").splitlines()
    assert before == [f"origin: {ledger.settings.origin}", "entries: 4", "latest checkpoint: none",
                      "signer state: none yet"]
    ok(runner, "ledger", "checkpoint")
    fill(2)
    after = ok(runner, "ledger", "status").splitlines()
    latest = ledger.latest_checkpoint()
    assert after == [f"origin: {ledger.settings.origin}", "entries: 6",
                     f"latest checkpoint: size 4 at {latest.timestamp}",
                     "signer state: size 4, consistent with the database"]


def test_status_exits_1_when_the_signer_state_is_corrupt(app, runner, fill):
    fill(2)
    ok(runner, "ledger", "checkpoint")
    with open(app.config["LEDGER_SIGNER_STATE"], "w", encoding="utf-8") as f:
        f.write("{not json")
    result = invoke(runner, "ledger", "status")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("signer state: REFUSING WRITES: signer state ")
    assert "is corrupt" in result.output


# -- ledger verify --------------------------------------------------------------------------

def test_verify_full_then_incremental(app, runner, fill):
    ledger = app.extensions["ledger"]
    fill(12)
    ok(runner, "ledger", "checkpoint")
    lines = ok(runner, "ledger", "verify").splitlines()
    assert lines[0] == f"trust: trusted keys file {app.config['LEDGER_TRUSTED_KEYS']}"
    assert not [line for line in lines if line.startswith("FAULT")]
    root = ledger.root()[1].hex()
    assert lines[-1] == (f"OK (full): entries 0..11; checked 12 entries, 1 checkpoints, 2 external anchors; "
                         f"root {root}")
    fill(9)
    ok(runner, "ledger", "checkpoint")
    lines = ok(runner, "ledger", "verify", "--incremental").splitlines()
    assert lines[-1].startswith("OK (incremental): entries 12..20; checked 9 entries, ")
    assert lines[-1].endswith(f"root {ledger.root()[1].hex()}")
    fill(3)  # newer than any checkpoint
    lines = ok(runner, "ledger", "verify", "--incremental").splitlines()
    assert lines[-1].startswith("OK (incremental): entries 21..23; checked 3 entries, ")
    lines = ok(runner, "ledger", "verify", "--no-external").splitlines()
    assert lines[-1].startswith("OK (full): entries 0..23; checked 24 entries, 2 checkpoints, 0 external anchors")


def test_verify_exits_1_when_an_external_anchor_disagrees(app, runner, fill):
    fill(6)
    ok(runner, "ledger", "checkpoint")
    path = app.config["LEDGER_SIGNER_STATE"]
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    state["root_hash"] = "ab" * 32
    with open(path, "w", encoding="utf-8") as f:
        json.dump(state, f)
    result = invoke(runner, "ledger", "verify")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("FAULT checkpoint size 6: external_checkpoint_mismatch") for line in lines), lines
    assert lines[-1].startswith("FAILED (full): 1 fault(s)")


# -- ledger rotate-key ----------------------------------------------------------------------

def test_rotate_key(app, runner, client, fill):
    ledger = app.extensions["ledger"]
    fill(5)
    old_note = ok(runner, "ledger", "checkpoint")
    old_id = ledger.signing_key().key_id
    output = ok(runner, "ledger", "rotate-key", "--actor", "kim")
    match = re.fullmatch(rf"retired ({HEX64})\nnew     ({HEX64})\nrecorded at seq (\d+), checkpoint size (\d+)\n",
                         output)
    assert match, output
    retired, new, seq, checkpoint_size = match.group(1), match.group(2), int(match.group(3)), int(match.group(4))
    assert retired == old_id and new != old_id
    assert (seq, checkpoint_size) == (5, 6) and ledger.size() == 6
    assert re.fullmatch(rf"signing key {new} \(.+\)\n", ok(runner, "ledger", "init-key"))

    trusted = trusted_file(app)
    assert set(trusted) == {old_id, new}
    assert trusted[old_id]["retired"] and trusted[new]["retired"] is None
    api_keys = {k["key_id"]: k for k in client.get("/api/v1/ledger/public-keys").get_json()["keys"]}
    assert set(api_keys) == {old_id, new}
    assert api_keys[old_id]["retired"] == trusted[old_id]["retired"] and api_keys[new]["retired"] is None

    entry = entry_json(ledger, seq)
    assert (entry["kind"], entry["actor"]) == ("ledger.key.rotated", "operator:kim")
    assert entry["payload"]["retired_key_id"] == old_id and entry["payload"]["new_key_id"] == new
    assert hashlib.sha256(base64.b64decode(entry["payload"]["new_public_key_b64"])).hexdigest() == new
    assert ledger.latest_checkpoint().key_id == new and ledger.latest_checkpoint().tree_size == 6

    size, _, key_id = check_note(old_note, ledger.settings.origin, ledger.trusted_keys.read())
    assert (size, key_id) == (5, old_id)
    lines = ok(runner, "ledger", "verify").splitlines()
    assert lines[-1].startswith("OK (full): entries 0..5; checked 6 entries, 2 checkpoints")


# -- ledger accept-restore ------------------------------------------------------------------

def _pretend_a_newer_checkpoint_was_signed(state_path) -> str:
    """Make the signer remember a larger tree: the database now looks rolled back."""
    state = json.loads(Path(state_path).read_text(encoding="utf-8"))
    state["tree_size"] += 10
    Path(state_path).write_text(json.dumps(state), encoding="utf-8")
    return Path(state_path).read_text(encoding="utf-8")


def test_accept_restore_needs_a_reason_and_a_confirmation(app, runner, instance, fill):
    ledger = app.extensions["ledger"]
    fill(3)
    ok(runner, "ledger", "checkpoint")
    state_path = app.config["LEDGER_SIGNER_STATE"]
    state_before = _pretend_a_newer_checkpoint_was_signed(state_path)

    missing = invoke(runner, "ledger", "accept-restore")
    assert missing.exit_code == 2 and "Missing option '--reason'" in missing.stderr
    declined = invoke(runner, "ledger", "accept-restore", "--reason", "restored", input="n\n")
    assert declined.exit_code == 1 and "Aborted!" in declined.stderr
    blank = invoke(runner, "ledger", "accept-restore", "--reason", "   ", "--yes")
    assert blank.exit_code == 1 and "error: a reason is required" in blank.stderr
    assert ledger.size() == 3 and Path(state_path).read_text(encoding="utf-8") == state_before

    output = ok(runner, "ledger", "accept-restore", "--reason", "restored the 1 May backup", "--actor", "ann",
                input="y\n")
    match = re.search(r"recorded at seq (\d+); old signer state kept at (\S+);", output)
    assert match, output
    assert int(match.group(1)) == 3
    assert Path(match.group(2)).read_text(encoding="utf-8") == state_before
    entry = entry_json(ledger, 3)
    assert (entry["kind"], entry["actor"]) == ("ledger.restore.accepted", "operator:ann")
    assert entry["payload"]["reason"] == "restored the 1 May backup"
    assert entry["payload"]["superseded_checkpoint"]["tree_size"] == 13
    assert ledger.latest_checkpoint().tree_size == 4

    refused = invoke(runner, "ledger", "accept-restore", "--reason", "nothing to accept", "--yes")
    assert refused.exit_code == 1 and "no rollback was detected" in refused.stderr
    _pretend_a_newer_checkpoint_was_signed(state_path)
    ok(runner, "ledger", "accept-restore", "--reason", "second time", "--yes")
    assert entry_json(ledger, 4)["payload"]["reason"] == "second time"
    assert len(list(instance.glob("signing.key.state.json.superseded-*"))) == 2


def test_accept_restore_without_a_detected_rollback_fails(app, runner, fill):
    fill(1)
    result = invoke(runner, "ledger", "accept-restore", "--reason", "x", "--yes")
    assert result.exit_code == 1
    assert "error: no rollback was detected" in result.stderr
    assert app.extensions["ledger"].size() == 1


# -- tokens ---------------------------------------------------------------------------------

def create_token(runner, name: str, *roles: str) -> dict:
    args = ["tokens", "create", "--name", name, "--json"]
    for role in roles:
        args += ["--role", role]
    return json.loads(ok(runner, *args))


def test_tokens_create_prints_a_working_token(app, runner, client):
    token = create_token(runner, "alice", "author")
    assert token["principal"] == "alice" and token["roles"] == ["author"]
    assert re.fullmatch(rf"mlg_{token['token_id']}_[A-Za-z0-9_-]{{43}}", token["token"])
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    refused = client.get("/api/v1/ledger/entries", headers=headers)
    assert refused.status_code == 403 and refused.get_json()["message"].startswith("alice lacks the role")
    entry = entry_json(app.extensions["ledger"], token["seq"])
    assert entry["kind"] == "identity.token.created"
    assert token["token"].split("_", 2)[2] not in app.extensions["ledger"].entry(token["seq"]).canonical.decode()

    both = create_token(runner, "audrey", "auditor", "approver:privacy", "auditor")
    assert both["roles"] == ["approver:privacy", "auditor"]
    assert client.get("/api/v1/ledger/entries",
                      headers={"Authorization": f"Bearer {both['token']}"}).status_code == 200

    human = ok(runner, "tokens", "create", "--name", "bob", "--role", "deployer")
    assert re.search(r"^mlg_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$", human, re.M)
    assert "Store it now: it cannot be shown again." in human


def test_tokens_list_never_prints_the_secret(runner):
    tokens = [create_token(runner, "alice", "author"), create_token(runner, "audrey", "auditor")]
    output = ok(runner, "tokens", "list")
    lines = output.splitlines()
    assert len(lines) == 2
    for token, line in zip(tokens, lines):
        assert line.startswith(f"{token['token_id']}  {token['principal']}")
        assert "active" in line
        assert token["token"] not in output and token["token"].split("_", 2)[2] not in output
    assert "mlg_" not in output


def test_tokens_revoke_makes_the_token_fail(app, runner, client):
    token = create_token(runner, "alice", "author")
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    output = ok(runner, "tokens", "revoke", token["token_id"], "--reason", "left the team")
    assert re.fullmatch(rf"revoked {token['token_id']} at seq \d+\n", output)
    response = client.get("/api/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["message"] == "this API token was revoked"
    assert ok(runner, "tokens", "list") == ""
    assert "revoked " in ok(runner, "tokens", "list", "--all")
    again = invoke(runner, "tokens", "revoke", token["token_id"])
    assert again.exit_code == 1 and "already revoked" in again.stderr
    unknown = invoke(runner, "tokens", "revoke", "0123456789abcdef")
    assert unknown.exit_code == 1 and "error: no token 0123456789abcdef" in unknown.stderr


@pytest.mark.parametrize("args, message", [
    (["--name", "bob", "--role", "king"], "error: unknown role 'king': use admin, author, deployer, auditor"),
    (["--name", "bob", "--role", "approver:"], "error: unknown role 'approver:'"),
    (["--name", "bob", "--role", "Admin"], "error: unknown role 'Admin'"),
    (["--name", "bad name", "--role", "author"], "error: principal name 'bad name' must be 1-128 characters"),
    (["--name", "bob", "--role", "author", "--expires-in-days", "0"], "error: expires_in_days must be between"),
])
def test_tokens_create_refuses_bad_input(app, runner, args, message):
    result = invoke(runner, "tokens", "create", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert app.extensions["ledger"].size() == 0


def test_tokens_create_needs_a_role(runner):
    result = invoke(runner, "tokens", "create", "--name", "bob")
    assert result.exit_code == 2 and "Missing option '--role'" in result.stderr


# -- governance rebuild ---------------------------------------------------------------------

def test_governance_rebuild_prints_the_count_and_keeps_projections(app, runner, client, world):
    world.registered_version()
    kept = create_token(runner, "alice", "author")
    gone = create_token(runner, "bob", "author")
    ok(runner, "tokens", "revoke", gone["token_id"])
    size = app.extensions["ledger"].size()
    assert ok(runner, "governance", "rebuild") == f"rebuilt projections from {size} ledger entries\n"
    assert app.extensions["ledger"].size() == size  # rebuilding appends nothing
    alice = {"Authorization": f"Bearer {kept['token']}"}
    assert client.get("/api/v1/models/credit-risk/versions/1", headers=alice).status_code == 200
    assert client.get("/api/v1/models", headers={"Authorization": f"Bearer {gone['token']}"}).status_code == 401
    listed = ok(runner, "tokens", "list")
    assert kept["token_id"] in listed and gone["token_id"] not in listed
    assert gone["token_id"] in ok(runner, "tokens", "list", "--all")
