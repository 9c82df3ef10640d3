"""The ledger: appends, reads and proofs over a store, with signed checkpoints.

Append path (one transaction, any number of entries):

1. outside the lock, each entry is validated and its payload canonicalised
   (:func:`ledger.entry.prepare_entry`), the expensive part;
2. the store takes the append lock (``BEGIN IMMEDIATE`` / advisory lock) and
   reads the head; the Merkle frontier comes from the process's
   :class:`ledger.writer.FrontierCache`;
3. a :class:`ledger.writer.LedgerWriter` gives each entry its ``seq``,
   ``prev``, timestamp, canonical bytes, leaf hash and completed nodes; the
   projectors write their rows on the same connection;
4. the store inserts the rows and commits; then a checkpoint is signed if
   one is due (``cadence.py``; the signing itself is ``checkpointing.py``).

Before the first write of a process the database is compared with the
signer's last signed checkpoint; a database that was rolled back or
rewritten refuses writes until an operator acts (``operations.py``).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy.engine import Connection

from .cadence import CheckpointCadence
from .checkpoint import validate_origin
from .checkpointing import CheckpointSigner
from .entry import DEFAULT_MAX_PAYLOAD, PreparedEntry, prepare_entry
from .errors import (EntryNotFoundError, IndexCorruptError, LedgerUnavailableError, ProofRangeError, RollbackError,
                     SignerStateError, SigningKeyError)
from .keys import TrustedKeysFile
from .merkle import EMPTY_ROOT, Frontier, consistency_plan, fold_range, inclusion_plan, perfect_nodes_of_range
from .signer import CheckpointMirror, SignedState, SignerStateFile
from .signing import SigningKey
from .records import PublicKeyRecord, StoredCheckpoint, StoredEntry
from .store import LedgerStore
from .writer import AppendedEntry, FrontierCache, LedgerWriter

log = logging.getLogger(__name__)
MAX_SEQ = 2**53 - 1  # what the API accepts; larger numbers cannot name an entry

__all__ = ["AppendedEntry", "ConsistencyProof", "InclusionProof", "Ledger", "LedgerSettings", "LedgerWriter"]


@dataclass(frozen=True)
class LedgerSettings:
    """Everything the ledger needs to know besides its database."""

    origin: str
    signing_key_path: str | None = None
    signing_key_passphrase: bytes | None = None
    signer_state_path: str | None = None
    trusted_keys_path: str | None = None
    mirror_dir: str | None = None
    checkpoint_every: int = 10_000
    checkpoint_interval: float = 60.0
    max_payload: int = DEFAULT_MAX_PAYLOAD


@dataclass(frozen=True)
class InclusionProof:
    """RFC 9162 inclusion proof of one entry in the tree of ``tree_size``."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    hashes: list[bytes]
    checkpoint: StoredCheckpoint | None


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 9162 consistency proof between two tree sizes."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    hashes: list[bytes]


class Ledger:
    """An append-only, hash-chained, Merkle-tree ledger with signed checkpoints."""

    def __init__(self, store: LedgerStore, settings: LedgerSettings):
        validate_origin(settings.origin)
        self.store = store
        self.settings = settings
        self.signer_state = SignerStateFile(settings.signer_state_path) if settings.signer_state_path else None
        self.trusted_keys = TrustedKeysFile(settings.trusted_keys_path) if settings.trusted_keys_path else None
        self.mirror = CheckpointMirror(settings.mirror_dir) if settings.mirror_dir else None
        self.frontiers = FrontierCache()
        self.signer = CheckpointSigner(self)
        self.cadence = CheckpointCadence(self)
        self._writable_checked = False
        self._write_block: str | None = None
        self.projectors: list = []

    def add_projector(self, projector) -> None:
        """Call ``projector(connection, appended_entries, writer)`` inside every append transaction.

        Projections written there commit or roll back with the entries; an
        exception aborts the append. Rows nothing reads inside the transaction
        can go through ``writer.defer_insert`` (inserted with the entries).
        """
        self.projectors.append(projector)

    # -- writing ----------------------------------------------------------------

    def prepare(self, kind: str, actor: str, subject: str, payload: dict) -> PreparedEntry:
        """Validate and encode an entry before taking the append lock.

        Raises:
            EntryValidationError: a field is not acceptable.
        """
        return prepare_entry(kind, actor, subject, payload, self.settings.max_payload)

    @contextmanager
    def transaction(self) -> Iterator[LedgerWriter]:
        """Hold the append lock for one transaction and yield a writer.

        Projections written on ``writer.connection`` commit or roll back with
        the entries; this returns once the commit is durable. A checkpoint
        may be signed after the commit.

        Raises:
            LedgerUnavailableError: writes are refused (database rolled back).
        """
        self.ensure_writable()
        with self.store.append_transaction() as (conn, head, pending):
            writer = LedgerWriter(self, conn, head, self.frontiers.frontier_for(self.store, conn, head), pending)
            yield writer
        if writer.appended:
            self.frontiers.remember(writer.frontier, writer.last_leaf)
            self.cadence.after_commit(writer.size)

    def append(self, kind: str, actor: str, subject: str, payload: dict) -> AppendedEntry:
        """Append one entry in its own durable transaction.

        Args:
            kind: dotted lowercase name, e.g. ``model.version.registered``.
            actor: the authenticated principal responsible.
            subject: what the entry is about, e.g. ``model:credit-risk@3``.
            payload: a JSON object with canonical form (see ``canonical.py``).
        Raises:
            EntryValidationError, LedgerUnavailableError.
        """
        prepared = [self.prepare(kind, actor, subject, payload)]
        with self.transaction() as writer:
            return writer.append_prepared(prepared)[0]

    def append_many(self, items: list[dict]) -> list[AppendedEntry]:
        """Append several entries (dicts of kind/actor/subject/payload) in one transaction."""
        prepared = [self.prepare(**item) for item in items]
        with self.transaction() as writer:
            return writer.append_prepared(prepared)

    # -- integrity gate ---------------------------------------------------------

    def ensure_writable(self) -> None:
        """Check once per process that the database has not been rolled back.

        Raises:
            LedgerUnavailableError: with the reason, until an operator acts.
        """
        if not self._writable_checked:
            try:
                self.check_against_signer()
            except (RollbackError, SignerStateError) as e:
                self.refuse_writes(str(e))
            self._writable_checked = True
        if self._write_block:
            raise LedgerUnavailableError(f"ledger refuses writes: {self._write_block}")

    def refuse_writes(self, reason: str) -> None:
        """Refuse every write of this process from now on, for ``reason``."""
        self._write_block = reason
        log.error("ledger writes refused: %s", reason)

    @property
    def write_block(self) -> str | None:
        """Why writes are refused, or None."""
        return self._write_block

    def reset_write_gate(self) -> None:
        """Re-run the rollback check at the next write (after operator action)."""
        self._write_block = None
        self._writable_checked = False

    def check_against_signer(self) -> SignedState | None:
        """Compare the database with the signer's last signed checkpoint.

        Raises:
            RollbackError: the database is shorter than, or diverges from, it.
        """
        if self.signer_state is None:
            return None
        state = self.signer_state.read()
        if state is None:
            return None
        with self.store.read() as conn:
            size = self.store.size(conn)
            if size < state.tree_size:
                raise RollbackError(
                    f"the database holds {size} entries but a checkpoint of size {state.tree_size} "
                    f"was signed at {state.signed_at}: it was rolled back (an old backup restored?)"
                )
            try:
                root = self.root_at(conn, state.tree_size)
            except IndexCorruptError as e:
                raise RollbackError(f"the database was rewritten: {e}") from e
        if root != state.root:
            raise RollbackError(
                f"the database was rewritten: its tree of size {state.tree_size} has root "
                f"{root.hex()}, but the signed checkpoint says {state.root_hash}"
            )
        return state

    # -- reading ----------------------------------------------------------------

    def size(self) -> int:
        """Return the number of entries."""
        with self.store.read() as conn:
            return self.store.size(conn)

    def entry(self, seq: int) -> StoredEntry:
        """Return one entry.

        Raises:
            EntryNotFoundError: no entry has that seq.
        """
        with self.store.read() as conn:
            found = self.store.entry(conn, seq) if 0 <= seq <= MAX_SEQ else None
            if found is None:
                size = self.store.size(conn)
                raise EntryNotFoundError(f"no entry {seq}: the ledger has entries 0..{size - 1}"
                                         if size else f"no entry {seq}: the ledger is empty")
            return found

    def entries(self, start: int, limit: int) -> list[StoredEntry]:
        """Return up to ``limit`` entries from ``start``."""
        with self.store.read() as conn:
            return self.store.entries(conn, start, limit)

    # -- roots and proofs -------------------------------------------------------

    def root(self, size: int | None = None) -> tuple[int, bytes]:
        """Return (size, root hash) of the tree at ``size`` (default: now)."""
        with self.store.read() as conn:
            current = self.store.size(conn)
            size = current if size is None else size
            if not 0 <= size <= current:
                raise ProofRangeError(f"tree size {size} is outside 0..{current}")
            return size, self.root_at(conn, size)

    def root_at(self, conn: Connection, size: int) -> bytes:
        """The root of the tree of ``size`` (at most the current size), read on ``conn``."""
        if size == 0:
            return EMPTY_ROOT
        return fold_range(self.store.fetch_nodes(conn, Frontier.nodes_for_size(size)))

    def range_hashes(self, conn: Connection, ranges: list[tuple[int, int]]) -> list[bytes]:
        """The hash of each leaf range ``[lo, hi)``, read on ``conn`` from stored perfect nodes."""
        plans = [perfect_nodes_of_range(lo, hi) for lo, hi in ranges]
        flat = [node for plan in plans for node in plan]
        hashes = iter(self.store.fetch_nodes(conn, flat))
        return [fold_range([next(hashes) for _ in plan]) for plan in plans]

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Return the inclusion proof of entry ``seq`` in the tree of ``tree_size``.

        Without ``tree_size`` the proof is against a signed checkpoint that
        covers ``seq`` (:meth:`checkpoint_covering`), and names it; only where
        none can be had (no signing key, writes refused) against the current
        tree, naming none.

        Raises:
            ProofRangeError: ``seq`` or ``tree_size`` outside the ledger.
        """
        checkpoint = self.checkpoint_covering(seq) if tree_size is None else None
        with self.store.read() as conn:
            current = self.store.size(conn)
            if tree_size is None:
                tree_size = checkpoint.tree_size if checkpoint else current
            if tree_size > current:
                raise ProofRangeError(f"tree_size {tree_size} is larger than the ledger ({current} entries)")
            if tree_size < 1:
                raise ProofRangeError("tree_size must be at least 1")
            if not 0 <= seq < tree_size:
                raise ProofRangeError(f"seq {seq} is not in a tree of size {tree_size} (0..{tree_size - 1})")
            if checkpoint is None:
                checkpoint = self.store.checkpoint_by_size(conn, tree_size)
            leaf = self.store.fetch_nodes(conn, perfect_nodes_of_range(seq, seq + 1))[0]
            hashes = self.range_hashes(conn, inclusion_plan(seq, tree_size))
            root = self.root_at(conn, tree_size)
        return InclusionProof(seq, tree_size, leaf, root, hashes, checkpoint)

    def checkpoint_covering(self, seq: int) -> StoredCheckpoint | None:
        """A signed checkpoint whose tree holds entry ``seq``: the latest, or one signed now.

        Signing on demand is bounded by the writes: a tree size is signed
        once (:meth:`create_checkpoint` returns the checkpoint that exists),
        so readers can cause at most one signature per appended entry. None
        when ``seq`` is not in the ledger, or no checkpoint can be signed (no
        signing key, or the signer refuses this database).
        """
        latest = self.latest_checkpoint()
        if latest is not None and latest.tree_size > seq:
            return latest
        if not 0 <= seq < self.size():
            return None
        try:
            return self.create_checkpoint()
        except (SigningKeyError, RollbackError, SignerStateError) as e:
            log.warning("no checkpoint covers entry %d and none can be signed: %s", seq, e)
            return None

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """Return the proof that the tree of size ``first`` is a prefix of ``second``.

        Raises:
            ProofRangeError: sizes out of order or beyond the ledger.
        """
        with self.store.read() as conn:
            current = self.store.size(conn)
            second = current if second is None else second
            if first < 1:
                raise ProofRangeError("first must be at least 1 (the empty tree is a prefix of every tree)")
            if first > second:
                raise ProofRangeError(f"first ({first}) must not be larger than second ({second})")
            if second > current:
                raise ProofRangeError(f"second ({second}) is larger than the ledger ({current} entries)")
            return self.consistency_at(conn, first, second)

    def consistency_at(self, conn: Connection, first: int, second: int) -> ConsistencyProof:
        """The consistency proof between two valid sizes, read on ``conn``."""
        hashes = self.range_hashes(conn, consistency_plan(first, second)) if first != second else []
        return ConsistencyProof(first, second, self.root_at(conn, first), self.root_at(conn, second), hashes)

    # -- checkpoints and keys -----------------------------------------------------

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the checkpoint of the largest tree, or None."""
        with self.store.read() as conn:
            return self.store.latest_checkpoint(conn)

    def public_keys(self) -> list[PublicKeyRecord]:
        """Return every public key the ledger has signed with."""
        with self.store.read() as conn:
            return self.store.public_keys(conn)

    def create_checkpoint(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree (or return the one that exists).

        The signer refuses unless the tree is a proven extension (consistency
        proof) of the last checkpoint it signed.

        Raises:
            RollbackError: the database is behind or diverges from the signer.
            SigningKeyError: no usable key.
        """
        return self.signer.sign()

    def signing_key(self) -> SigningKey:
        """Load (creating on first use) the signing key; see :class:`CheckpointSigner`."""
        return self.signer.signing_key()

    def publish_public_key(self) -> SigningKey:
        """Load (or create) the signing key and list its public key in the database."""
        return self.signer.publish_public_key()

    def forget_signing_key(self) -> None:
        """Drop the cached key so the next signature reloads it from disk."""
        self.signer.forget_key()

    def sign_checkpoint_at_start(self) -> None:
        """Sign a checkpoint of the tree unless one covers it, as a server starts; never raises."""
        self.cadence.sign_at_start()

    def start_checkpoint_timer(self) -> None:
        """Sign checkpoints every ``checkpoint_interval`` seconds in a daemon thread."""
        self.cadence.start_timer()

    def stop_checkpoint_timer(self) -> None:
        """Stop the background checkpoint thread, if running."""
        self.cadence.stop_timer()
