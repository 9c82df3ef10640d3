"""The ledger service: appends, proofs and signed checkpoints over a store.

Append path (one transaction, any number of entries):

1. outside the lock, each entry is validated and its payload canonicalised
   (:func:`ledger.entry.prepare_entry`), the expensive part;
2. the store takes the append lock (``BEGIN IMMEDIATE`` / advisory lock) and
   reads the head; the Merkle frontier comes from a per-process cache when the
   head matches it (or extends it by the head's leaf when another process
   appended one entry since), else from ``O(log n)`` stored nodes;
3. each entry gets ``seq``, ``prev`` and a timestamp never earlier than the
   head's, its canonical bytes, its leaf hash and the perfect nodes it
   completes; rows go in with one ``executemany``;
4. the caller may write projections on the same connection; commit.

After commit a checkpoint is signed when ``checkpoint_every`` entries or
``checkpoint_interval`` seconds have passed since the last one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy.engine import Connection

from .checkpoint import CheckpointBody, NoteSignature, format_signed_note, note_key_hash, validate_origin
from .entry import DEFAULT_MAX_PAYLOAD, ZERO_HASH, PreparedEntry, encode_entry, prepare_entry, utc_timestamp
from .errors import (
    EntryNotFoundError, LedgerUnavailableError, ProofRangeError,
    ProofVerificationError, RollbackError, SignerStateError, SigningKeyError,
)
from .group_commit import GroupCommitter
from .keys import TrustedKeysFile, ensure_signing_key
from .merkle import (EMPTY_ROOT, Frontier, consistency_plan, fold_range, inclusion_plan, new_leaf_hasher,
                     perfect_nodes_of_range)
from .proofs import verify_consistency
from .signer import CheckpointMirror, SignedState, SignerStateFile
from .signing import ALGORITHM, SigningKey
from .store import (Head, IndexCorruptError, LedgerStore, PendingWrites, PublicKeyRecord, StoredCheckpoint,
                    StoredEntry)

log = logging.getLogger(__name__)
MAX_SEQ = 2**53 - 1  # what the API accepts; larger numbers cannot name an entry


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
    group_commit_max: int = 16


@dataclass(slots=True)  # not frozen: built once per appended entry, on the hot path
class AppendedEntry:
    """An entry as it was committed."""

    seq: int
    ts: str
    kind: str
    actor: str
    subject: str
    leaf_hash: bytes
    canonical: bytes


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


class LedgerWriter:
    """Appends entries inside one locked transaction; see :meth:`Ledger.transaction`."""

    def __init__(self, ledger: "Ledger", conn: Connection, head: Head | None, frontier: Frontier,
                 pending: PendingWrites | None = None):
        self._ledger = ledger
        self.connection = conn
        self.frontier = frontier
        self.last_leaf = head.leaf_hash if head else ZERO_HASH
        self.last_ts = head.ts if head else ""
        self.appended: list[AppendedEntry] = []
        # Entry rows (and deferred projection rows) are written by the store
        # just before COMMIT, in the same round trip on PostgreSQL (see
        # LedgerStore.append_transaction).
        self.pending = PendingWrites() if pending is None else pending

    @property
    def size(self) -> int:
        """The tree size including what this transaction appended so far."""
        return self.frontier.size

    def mark(self) -> tuple:
        """Remember the writer's state (to undo a failed member of a shared transaction)."""
        return (self.frontier.copy(), self.last_leaf, self.last_ts, len(self.appended),
                len(self.pending.entries), len(self.pending.deferred))

    def reset(self, mark: tuple) -> None:
        """Return to a state taken by :meth:`mark`."""
        self.frontier, self.last_leaf, self.last_ts, count, rows, deferred = mark
        del self.appended[count:]
        del self.pending.entries[rows:]
        del self.pending.deferred[deferred:]

    def defer_insert(self, statement, rows: list[dict]) -> None:
        """Insert ``rows`` with ``statement`` (an ``insert()``) just before COMMIT.

        For projection rows that nothing reads inside this transaction: on
        PostgreSQL they then cost no round trip of their own. The rows of one
        call share their keys.
        """
        if rows:
            self.pending.deferred.append((statement, rows))

    def append(self, kind: str, actor: str, subject: str, payload: dict) -> AppendedEntry:
        """Append one entry; see :meth:`Ledger.append`."""
        return self.append_prepared([self._ledger.prepare(kind, actor, subject, payload)])[0]

    def append_many(self, items: list[dict]) -> list[AppendedEntry]:
        """Append entries given as dicts with kind, actor, subject, payload."""
        return self.append_prepared([self._ledger.prepare(**item) for item in items])

    def append_prepared(self, prepared: list[PreparedEntry]) -> list[AppendedEntry]:
        """Append entries already validated and encoded by :meth:`Ledger.prepare`."""
        if not prepared:
            return []
        frontier = self.frontier
        seq = frontier.size
        prev = self.last_leaf
        now = utc_timestamp()
        ts = now if now > self.last_ts else self.last_ts  # never earlier than the head
        ts_bytes = ts.encode()
        new_hasher = new_leaf_hasher
        rows = []
        results = []
        for item in prepared:
            data = encode_entry(item, seq, prev, ts_bytes)
            hasher = new_hasher()
            hasher.update(data)
            leaf = hasher.digest()
            completed = frontier.append(leaf)
            rows.append((seq, data, leaf, b"".join(completed) if completed else None))
            results.append(AppendedEntry(seq, ts, item.kind, item.actor, item.subject, leaf, data))
            prev = leaf
            seq += 1
        self.pending.entries.extend(rows)
        for projector in self._ledger.projectors:
            projector(self.connection, results, self)
        self.last_leaf = prev
        self.last_ts = ts
        self.appended.extend(results)
        return results


class Ledger:
    """An append-only, hash-chained, Merkle-tree ledger with signed checkpoints."""

    def __init__(self, store: LedgerStore, settings: LedgerSettings):
        validate_origin(settings.origin)
        self.store = store
        self.settings = settings
        self.signer_state = SignerStateFile(settings.signer_state_path) if settings.signer_state_path else None
        self.trusted_keys = TrustedKeysFile(settings.trusted_keys_path) if settings.trusted_keys_path else None
        self.mirror = CheckpointMirror(settings.mirror_dir) if settings.mirror_dir else None
        self._cache_lock = threading.Lock()
        self._cached_frontier: Frontier | None = None
        self._cached_leaf: bytes | None = None
        self._signing_key: SigningKey | None = None
        self._signing_key_identity: tuple | None = None
        self._writable_checked = False
        self._write_block: str | None = None
        self._last_checkpoint_size: int | None = None
        self._last_checkpoint_at = time.monotonic()
        self._checkpoint_lock = threading.Lock()
        self._timer: threading.Thread | None = None
        self._timer_stop = threading.Event()
        self.projectors: list = []
        self._group_commit = GroupCommitter(self, settings.group_commit_max)

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
        the entries. A checkpoint may be signed after the commit. Concurrent
        transactions of this process may share one durable commit (see
        ``group_commit.py``); this returns only once the commit is done.

        Raises:
            LedgerUnavailableError: writes are refused (database rolled back).
        """
        self.ensure_writable()
        with self._group_commit.transaction() as writer:
            yield writer

    def _new_writer(self, conn: Connection, head: Head | None,
                    pending: PendingWrites | None = None) -> "LedgerWriter":
        return LedgerWriter(self, conn, head, self._frontier_for(conn, head), pending)

    def _committed(self, writer: "LedgerWriter") -> None:
        """After a durable commit: remember the frontier, sign a checkpoint if one is due."""
        if writer.appended:
            with self._cache_lock:
                self._cached_frontier = writer.frontier
                self._cached_leaf = writer.last_leaf
            self._after_commit(writer.size)

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

    def _frontier_for(self, conn: Connection, head: Head | None) -> Frontier:
        size = head.seq + 1 if head else 0
        with self._cache_lock:
            cached, cached_leaf = self._cached_frontier, self._cached_leaf
        if cached is not None:
            if cached.size == size and (size == 0 or cached_leaf == head.leaf_hash):
                return cached.copy()
            # One entry behind, and the entry before the head is the one the
            # cache ends with: the head's leaf completes it.
            if cached.size == size - 1 and (cached.size == 0 or cached_leaf == head.prev_leaf_hash):
                frontier = cached.copy()
                frontier.append(head.leaf_hash)
                return frontier
        return Frontier(size, self.store.fetch_nodes(conn, Frontier.nodes_for_size(size)))

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
                self._write_block = str(e)
                log.error("ledger writes refused: %s", e)
            self._writable_checked = True
        if self._write_block:
            raise LedgerUnavailableError(f"ledger refuses writes: {self._write_block}")

    @property
    def write_block(self) -> str | None:
        """Why writes are refused, or None."""
        return self._write_block

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
                root = self._root(conn, state.tree_size)
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

    def root(self, size: int | None = None) -> tuple[int, bytes]:
        """Return (size, root hash) of the tree at ``size`` (default: now)."""
        with self.store.read() as conn:
            current = self.store.size(conn)
            size = current if size is None else size
            if not 0 <= size <= current:
                raise ProofRangeError(f"tree size {size} is outside 0..{current}")
            return size, self._root(conn, size)

    def _root(self, conn: Connection, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return fold_range(self.store.fetch_nodes(conn, Frontier.nodes_for_size(size)))

    def _range_hashes(self, conn: Connection, ranges: list[tuple[int, int]]) -> list[bytes]:
        plans = [perfect_nodes_of_range(lo, hi) for lo, hi in ranges]
        flat = [node for plan in plans for node in plan]
        hashes = iter(self.store.fetch_nodes(conn, flat))
        return [fold_range([next(hashes) for _ in plan]) for plan in plans]

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Return the inclusion proof of entry ``seq`` in the tree of ``tree_size``.

        Without ``tree_size`` the latest checkpoint's size is used when it
        covers ``seq`` (so the proof checks against a signed root), else the
        current size.

        Raises:
            ProofRangeError: ``seq`` or ``tree_size`` outside the ledger.
        """
        with self.store.read() as conn:
            current = self.store.size(conn)
            checkpoint = None
            if tree_size is None:
                checkpoint = self.store.latest_checkpoint(conn)
                tree_size = checkpoint.tree_size if checkpoint and seq < checkpoint.tree_size else current
                if checkpoint and checkpoint.tree_size != tree_size:
                    checkpoint = None
            if tree_size > current:
                raise ProofRangeError(f"tree_size {tree_size} is larger than the ledger ({current} entries)")
            if tree_size < 1:
                raise ProofRangeError("tree_size must be at least 1")
            if not 0 <= seq < tree_size:
                raise ProofRangeError(f"seq {seq} is not in a tree of size {tree_size} (0..{tree_size - 1})")
            if checkpoint is None:
                checkpoint = self.store.checkpoint_by_size(conn, tree_size)
            leaf = self.store.fetch_nodes(conn, perfect_nodes_of_range(seq, seq + 1))[0]
            hashes = self._range_hashes(conn, inclusion_plan(seq, tree_size))
            root = self._root(conn, tree_size)
        return InclusionProof(seq, tree_size, leaf, root, hashes, checkpoint)

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
            return self._consistency(conn, first, second)

    def _consistency(self, conn: Connection, first: int, second: int) -> ConsistencyProof:
        hashes = self._range_hashes(conn, consistency_plan(first, second)) if first != second else []
        return ConsistencyProof(first, second, self._root(conn, first), self._root(conn, second), hashes)

    # -- checkpoints ------------------------------------------------------------

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the checkpoint of the largest tree, or None."""
        with self.store.read() as conn:
            return self.store.latest_checkpoint(conn)

    def public_keys(self) -> list[PublicKeyRecord]:
        """Return every public key the ledger has signed with."""
        with self.store.read() as conn:
            return self.store.public_keys(conn)

    def signing_key(self) -> SigningKey:
        """Load (creating on first use) the signing key.

        Raises:
            SigningKeyError: no key path configured, or the key is unusable.
        """
        path = self.settings.signing_key_path
        if not path or self.trusted_keys is None:
            raise SigningKeyError("no signing key configured (LEDGER_SIGNING_KEY)")
        # Another process may have rotated the key: reload when the file changed.
        try:
            stat = os.stat(path)
            identity = (stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            identity = None
        if self._signing_key is None or identity != self._signing_key_identity:
            self._signing_key, _ = ensure_signing_key(
                path, self.trusted_keys, self.settings.origin, self.settings.signing_key_passphrase)
            stat = os.stat(path)
            self._signing_key_identity = (stat.st_ino, stat.st_mtime_ns)
        return self._signing_key

    def publish_public_key(self) -> SigningKey:
        """Load (or create) the signing key and list its public key in the database."""
        key = self.signing_key()
        with self.store.write_transaction() as conn:
            self.store.insert_public_key(conn, PublicKeyRecord(
                key.key_id, key.public_key, ALGORITHM, self.settings.origin, utc_timestamp(), None))
        return key

    def forget_signing_key(self) -> None:
        """Drop the cached key so the next signature reloads it from disk."""
        self._signing_key = None

    def reset_write_gate(self) -> None:
        """Re-run the rollback check at the next write (after operator action)."""
        self._write_block = None
        self._writable_checked = False

    def create_checkpoint(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree (or return the one that exists).

        The signer refuses unless the tree is a proven extension (consistency
        proof) of the last checkpoint it signed.

        Raises:
            RollbackError: the database is behind or diverges from the signer.
            SigningKeyError: no usable key.
        """
        key = self.signing_key()
        origin = self.settings.origin
        state_file = self.signer_state
        with self._checkpoint_lock, (state_file.locked() if state_file else _nothing()):
            state = state_file.read() if state_file else None
            if state and state.origin != origin:
                raise SignerStateError(
                    f"signer state belongs to log {state.origin!r}, not {origin!r}")
            with self.store.read() as conn:
                size = self.store.size(conn)
                root = self._root(conn, size)
                if state:
                    self._prove_extension(conn, state, size, root)
                existing = self.store.checkpoint_by_size(conn, size)
            if existing and existing.key_id == key.key_id:
                self._note_checkpoint(size)
                return existing
            body = CheckpointBody(origin, size, root).text()
            signature = NoteSignature(origin, note_key_hash(origin, key.public_key), key.sign(body.encode()))
            note = format_signed_note(body, [signature])
            timestamp = utc_timestamp()
            # Through the writer gate like any append: a deferred transaction
            # would have to upgrade its read snapshot and SQLite refuses that
            # at once (SQLITE_BUSY, no busy timeout) while appends commit.
            with self.store.write_transaction() as conn:
                self.store.insert_public_key(conn, PublicKeyRecord(
                    key.key_id, key.public_key, ALGORITHM, origin, timestamp, None))
                self.store.insert_checkpoint(conn, size, root, timestamp, key.key_id, note)
                stored = self.store.checkpoint_by_size(conn, size)
            if self.mirror:
                self.mirror.publish(size, key.key_id, note)
            if state_file:
                state_file.write(SignedState(origin, size, root.hex(), key.key_id, timestamp))
        self._note_checkpoint(size)
        log.info("signed checkpoint size=%d root=%s", size, root.hex())
        return stored

    def _prove_extension(self, conn: Connection, state: SignedState, size: int, root: bytes) -> None:
        if size < state.tree_size:
            raise RollbackError(
                f"refusing to sign size {size}: a checkpoint of size {state.tree_size} was already signed")
        if state.tree_size == 0:
            return
        try:
            proof = self._consistency(conn, state.tree_size, size)
            verify_consistency(state.tree_size, size, proof.hashes, state.root, root)
        except (ProofVerificationError, IndexCorruptError) as e:
            raise RollbackError(
                f"refusing to sign size {size}: it is not an extension of the signed "
                f"checkpoint of size {state.tree_size} ({e})") from e

    def _note_checkpoint(self, size: int) -> None:
        self._last_checkpoint_size = max(size, self._last_checkpoint_size or 0)
        self._last_checkpoint_at = time.monotonic()

    def _after_commit(self, size: int) -> None:
        if self._last_checkpoint_size is None:
            latest = self.latest_checkpoint()
            self._last_checkpoint_size = latest.tree_size if latest else 0
        every = self.settings.checkpoint_every
        due = (every > 0 and size - self._last_checkpoint_size >= every) or self._interval_due(size)
        if due:
            self._checkpoint_quietly()

    def _interval_due(self, size: int) -> bool:
        interval = self.settings.checkpoint_interval
        return (interval > 0 and size > (self._last_checkpoint_size or 0)
                and time.monotonic() - self._last_checkpoint_at >= interval)

    def _checkpoint_quietly(self) -> None:
        """Sign a checkpoint after a commit; the append itself already succeeded."""
        try:
            self.create_checkpoint()
        except RollbackError as e:
            self._write_block = str(e)
            log.error("ledger writes refused: %s", e)
        except Exception:  # noqa: BLE001 - the caller's entry is committed: never fail it now
            log.exception("automatic checkpoint failed; it stays due and is retried later")

    def start_checkpoint_timer(self) -> None:
        """Sign checkpoints every ``checkpoint_interval`` seconds in a daemon thread."""
        if self._timer or self.settings.checkpoint_interval <= 0 or not self.settings.signing_key_path:
            return

        def run():
            while not self._timer_stop.wait(self.settings.checkpoint_interval):
                try:
                    if self._last_checkpoint_size is None or self._interval_due(self.size()):
                        self._checkpoint_quietly()
                except Exception:  # keep the timer alive through a database outage
                    log.exception("checkpoint timer")

        self._timer = threading.Thread(target=run, name="ledger-checkpoints", daemon=True)
        self._timer.start()

    def stop_checkpoint_timer(self) -> None:
        """Stop the background checkpoint thread, if running."""
        self._timer_stop.set()


@contextmanager
def _nothing():
    yield
