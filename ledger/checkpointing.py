"""Signing checkpoints: the key, the signer's memory, and the proof before each signature.

:class:`CheckpointSigner` signs a C2SP checkpoint of the ledger's current
tree. Before it signs, the tree must be a proven extension (a consistency
proof) of the last checkpoint the signer state file remembers, so that no
restored backup or rewritten database is ever signed over. The signing key
is loaded on first use and reloaded when its file changes (another process
may have rotated it).
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import nullcontext

from sqlalchemy.engine import Connection

from .checkpoint import CheckpointBody, NoteSignature, format_signed_note, note_key_hash
from .entry import utc_timestamp
from .errors import IndexCorruptError, ProofVerificationError, RollbackError, SignerStateError, SigningKeyError
from .keys import ensure_signing_key
from .proofs import verify_consistency
from .signer import SignedState
from .signing import ALGORITHM, SigningKey
from .records import PublicKeyRecord, StoredCheckpoint

log = logging.getLogger(__name__)


class CheckpointSigner:
    """Signs checkpoints of one ledger (see :meth:`ledger.log.Ledger.create_checkpoint`)."""

    def __init__(self, ledger):
        self._ledger = ledger
        self._key: SigningKey | None = None
        self._key_identity: tuple | None = None
        self._lock = threading.Lock()

    def signing_key(self) -> SigningKey:
        """Load (creating on first use) the signing key.

        Raises:
            SigningKeyError: no key path configured, or the key is unusable.
        """
        settings = self._ledger.settings
        path = settings.signing_key_path
        if not path or self._ledger.trusted_keys is None:
            raise SigningKeyError("no signing key configured (LEDGER_SIGNING_KEY)")
        # Another process may have rotated the key: reload when the file changed.
        try:
            stat = os.stat(path)
            identity = (stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            identity = None
        if self._key is None or identity != self._key_identity:
            self._key, _ = ensure_signing_key(
                path, self._ledger.trusted_keys, settings.origin, settings.signing_key_passphrase)
            stat = os.stat(path)
            self._key_identity = (stat.st_ino, stat.st_mtime_ns)
        return self._key

    def forget_key(self) -> None:
        """Drop the cached key so the next signature reloads it from disk."""
        self._key = None

    def publish_public_key(self) -> SigningKey:
        """Load (or create) the signing key and list its public key in the database."""
        key = self.signing_key()
        store = self._ledger.store
        with store.write_transaction() as conn:
            store.insert_public_key(conn, PublicKeyRecord(
                key.key_id, key.public_key, ALGORITHM, self._ledger.settings.origin, utc_timestamp(), None))
        return key

    def sign(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree (or return the one that exists).

        Raises:
            RollbackError: the database is behind or diverges from the signer.
            SignerStateError: the signer state belongs to another log.
            SigningKeyError: no usable key.
        """
        ledger = self._ledger
        store = ledger.store
        key = self.signing_key()
        origin = ledger.settings.origin
        state_file = ledger.signer_state
        with self._lock, (state_file.locked() if state_file else nullcontext()):
            state = state_file.read() if state_file else None
            if state and state.origin != origin:
                raise SignerStateError(
                    f"signer state belongs to log {state.origin!r}, not {origin!r}")
            with store.read() as conn:
                size = store.size(conn)
                root = ledger.root_at(conn, size)
                if state:
                    self._prove_extension(conn, state, size, root)
                existing = store.checkpoint_by_size(conn, size)
            if existing and existing.key_id == key.key_id:
                ledger.cadence.signed(size)
                return existing
            body = CheckpointBody(origin, size, root).text()
            signature = NoteSignature(origin, note_key_hash(origin, key.public_key), key.sign(body.encode()))
            note = format_signed_note(body, [signature])
            timestamp = utc_timestamp()
            # Through the writer gate like any append: a deferred transaction
            # would have to upgrade its read snapshot and SQLite refuses that
            # at once (SQLITE_BUSY, no busy timeout) while appends commit.
            with store.write_transaction() as conn:
                store.insert_public_key(conn, PublicKeyRecord(
                    key.key_id, key.public_key, ALGORITHM, origin, timestamp, None))
                store.insert_checkpoint(conn, size, root, timestamp, key.key_id, note)
                stored = store.checkpoint_by_size(conn, size)
            if ledger.mirror:
                ledger.mirror.publish(size, key.key_id, note)
            if state_file:
                state_file.write(SignedState(origin, size, root.hex(), key.key_id, timestamp))
        ledger.cadence.signed(size)
        log.info("signed checkpoint size=%d root=%s", size, root.hex())
        return stored

    def _prove_extension(self, conn: Connection, state: SignedState, size: int, root: bytes) -> None:
        if size < state.tree_size:
            raise RollbackError(
                f"refusing to sign size {size}: a checkpoint of size {state.tree_size} was already signed")
        if state.tree_size == 0:
            return
        try:
            proof = self._ledger.consistency_at(conn, state.tree_size, size)
            verify_consistency(state.tree_size, size, proof.hashes, state.root, root)
        except (ProofVerificationError, IndexCorruptError) as e:
            raise RollbackError(
                f"refusing to sign size {size}: it is not an extension of the signed "
                f"checkpoint of size {state.tree_size} ({e})") from e
