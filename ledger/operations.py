"""Operator procedures on the ledger's keys and signer state.

- :func:`rotate_key`: a new signing key replaces the current one; the old
  private key is overwritten, its public key stays trusted (retired) so old
  checkpoints still verify; the rotation is itself a ledger entry and a fresh
  checkpoint is signed with the new key.
- :func:`accept_restore`: after an old backup was deliberately restored, the
  operator sets the signer state aside (kept, renamed), moves published notes
  the restored database contradicts into ``superseded/`` (kept, as evidence),
  records why as a ledger entry, and signs a new checkpoint. Nothing is
  deleted: the fork stays visible to anyone holding an earlier checkpoint.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from .entry import utc_timestamp
from .errors import RollbackError, SigningKeyError
from .keys import TrustedKey
from .signing import ALGORITHM, generate_key_file
from .records import PublicKeyRecord


def rotate_key(ledger, actor: str) -> dict:
    """Replace the signing key; return the old and new key ids and the entry seq."""
    path = ledger.settings.signing_key_path
    if not path or ledger.signer_state is None or ledger.trusted_keys is None:
        raise SigningKeyError("key rotation needs LEDGER_SIGNING_KEY and its state files")
    old = ledger.signing_key()
    now = utc_timestamp()
    with ledger.signer_state.locked():
        tmp = Path(f"{path}.new")
        if tmp.exists():
            tmp.unlink()
        new = generate_key_file(tmp, ledger.settings.signing_key_passphrase)
        ledger.trusted_keys.add(TrustedKey(new.key_id, ledger.settings.origin, new.public_key, now))
        ledger.trusted_keys.retire(old.key_id, now)
        os.replace(tmp, path)  # the old private key is gone from disk
        with ledger.store.write_transaction() as conn:
            ledger.store.insert_public_key(conn, PublicKeyRecord(
                old.key_id, old.public_key, ALGORITHM, ledger.settings.origin, now, None))
            ledger.store.insert_public_key(conn, PublicKeyRecord(
                new.key_id, new.public_key, ALGORITHM, ledger.settings.origin, now, None))
            ledger.store.retire_public_key(conn, old.key_id, now)
        ledger.forget_signing_key()
    entry = ledger.append("ledger.key.rotated", actor, f"ledger:{ledger.settings.origin}", {
        "retired_key_id": old.key_id,
        "new_key_id": new.key_id,
        "new_public_key_b64": base64.b64encode(new.public_key).decode(),
        "algorithm": ALGORITHM,
    })
    checkpoint = ledger.create_checkpoint()
    return {"retired_key_id": old.key_id, "new_key_id": new.key_id, "seq": entry.seq,
            "checkpoint_size": checkpoint.tree_size}


def accept_restore(ledger, actor: str, reason: str) -> dict:
    """Accept a restored database after a rollback was detected; see module doc."""
    if not reason or not reason.strip():
        raise ValueError("a reason is required")
    state_file = ledger.signer_state
    try:
        ledger.check_against_signer()
    except RollbackError:
        pass
    else:
        raise ValueError("no rollback was detected: the database extends the signed checkpoint, "
                         "so there is nothing to accept")
    with state_file.locked():
        state = state_file.read()
        if state is None:
            raise ValueError("there is no signer state to set aside")
        stamp = utc_timestamp().replace(":", "").replace(".", "")
        kept = state_file.set_aside(f"superseded-{stamp}")
        superseded = []
        if ledger.mirror is not None:
            size = ledger.size()
            target = ledger.mirror.directory / "superseded"
            for note_path, _ in ledger.mirror.notes():
                if int(note_path.name.split("-")[1]) > size or _contradicts(ledger, note_path, size):
                    target.mkdir(exist_ok=True)
                    os.replace(note_path, target / note_path.name)
                    superseded.append(note_path.name)
    ledger.reset_write_gate()
    entry = ledger.append("ledger.restore.accepted", actor, f"ledger:{ledger.settings.origin}", {
        "reason": reason,
        "superseded_checkpoint": {"tree_size": state.tree_size, "root_hash": state.root_hash,
                                  "signed_at": state.signed_at, "key_id": state.key_id},
        "superseded_published_notes": superseded,
        "database_size_at_restore": ledger.size(),
    })
    checkpoint = ledger.create_checkpoint()
    return {"seq": entry.seq, "state_kept_at": str(kept), "superseded_notes": superseded,
            "checkpoint_size": checkpoint.tree_size}


def _contradicts(ledger, note_path: Path, size: int) -> bool:
    tree_size = int(note_path.name.split("-")[1])
    if tree_size > size:
        return True
    from .checkpoint import parse_checkpoint_body, parse_signed_note

    body, _ = parse_signed_note(note_path.read_text(encoding="utf-8"))
    return parse_checkpoint_body(body).root_hash != ledger.root(tree_size)[1]
