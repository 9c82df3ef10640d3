"""Verification of a whole ledger (or of what was added since the last run).

Full mode walks every entry once: recomputes its leaf hash from the stored
bytes, checks its ``seq``, its ``prev`` link and its timestamp, rebuilds the
Merkle tree on the way (checking the stored proof nodes), and compares the
root with every *anchor* when the walk reaches its size. Anchors are the
checkpoints in the database (signature checked first, against the trusted
keys file, not the database's key table) and the externally kept ones: the
signer's state file and the published mirror directory. A database rewritten
with every later hash recomputed passes the chain checks but not the anchors
kept outside it.

Incremental mode starts from the last verified (size, root) recorded in the
verifier's state file: the stored frontier must fold to that root, the latest
checkpoint must be consistent with it (RFC 9162 consistency proof), and only
the newer entries are walked.

The result is a :class:`VerificationReport` listing every fault with its
``seq`` or checkpoint size; it is falsy when anything is wrong.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Callable

from .checkpoint import note_key_hash, parse_checkpoint_body, parse_signed_note
from .entry import TS_PATTERN, ZERO_HASH, read_envelope, utc_timestamp
from .errors import (
    CheckpointFormatError, EntryValidationError, IndexCorruptError, ProofVerificationError, SignatureError,
    SignerStateError,
)
from .keys import TrustedKey
from .merkle import Frontier, inclusion_plan, leaf_hash, new_leaf_hasher, new_node_hasher
from .proofs import verify_consistency, verify_inclusion
from .signer import _atomic_write
from .report import (CHAIN_BROKEN, CHECKPOINT_FORGED, CHECKPOINT_INCONSISTENT, CHECKPOINT_UNTRUSTED_KEY,
                     ENTRY_MISSING, EXTERNAL_MISMATCH, INDEX_CORRUPT, MALFORMED_ENTRY, ORDER_CHANGED,
                     PAYLOAD_CHANGED, ROLLED_BACK, VerificationReport)
from .signing import verify_signature

PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class Anchor:
    """A (size, root) the walk must meet, and where it came from."""

    tree_size: int
    root: bytes
    source: str
    label: str


class VerifierStateFile:
    """The last (size, root) a verification run established, kept outside the database."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> tuple[int, bytes] | None:
        """Return (tree_size, root) or None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return int(data["tree_size"]), bytes.fromhex(data["root_hash"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SignerStateError(f"verifier state {self.path} is unreadable: {e}") from e

    def write(self, tree_size: int, root: bytes) -> None:
        """Record a verified (size, root)."""
        body = json.dumps({"tree_size": tree_size, "root_hash": root.hex(),
                           "verified_at": utc_timestamp()}, indent=2) + "\n"
        _atomic_write(self.path, body.encode())


def check_note(note: str, origin: str, trusted: list[TrustedKey]) -> tuple[int, bytes, str]:
    """Verify a checkpoint note against trusted keys; return (size, root, key id).

    Signature lines from keys that are not trusted are ignored, as the signed
    note specification requires; at least one trusted signature must verify.

    Raises:
        CheckpointFormatError: the note or its body is malformed.
        SignatureError: no trusted key signed it, or its signature is forged.
    """
    body_text, signatures = parse_signed_note(note)
    body = parse_checkpoint_body(body_text)
    if body.origin != origin:
        raise CheckpointFormatError(f"checkpoint is for log {body.origin!r}, not {origin!r}")
    by_hash = {(k.name, note_key_hash(k.name, k.public_key)): k for k in trusted}
    for signature in signatures:
        key = by_hash.get((signature.name, signature.key_hash))
        if key is None:
            continue
        try:
            verify_signature(key.public_key, body_text.encode(), signature.signature)
        except SignatureError as e:
            raise SignatureError(f"signature by key {key.key_id[:16]} does not verify (forged)") from e
        return body.tree_size, body.root_hash, key.key_id
    names = ", ".join(f"{s.name}/{s.key_hash.hex()}" for s in signatures)
    raise SignatureError(f"not signed by any trusted key (signed by {names})")


class LedgerVerifier:
    """Runs full or incremental verification of one ledger."""

    def __init__(self, ledger, trusted_keys: list[TrustedKey] | None = None,
                 verifier_state: VerifierStateFile | None = None, use_external: bool = True,
                 progress: Callable[[int], None] | None = None):
        self.ledger = ledger
        self.store = ledger.store
        self.origin = ledger.settings.origin
        self._trusted = trusted_keys
        self.verifier_state = verifier_state
        self.use_external = use_external
        self.progress = progress

    def _trusted_keys(self, conn, report: VerificationReport) -> list[TrustedKey]:
        if self._trusted is not None:
            report.trust = "given keys"
            return self._trusted
        keys_file = self.ledger.trusted_keys
        if keys_file is not None and keys_file.exists():
            report.trust = f"trusted keys file {keys_file.path}"
            return keys_file.read()
        report.trust = "database key table (no trusted keys file: weaker)"
        return [TrustedKey(k.key_id, k.name, k.public_key, k.created, k.retired)
                for k in self.store.public_keys(conn)]

    # -- anchors --------------------------------------------------------------

    def _database_anchors(self, conn, trusted, report, min_size: int) -> list[Anchor]:
        anchors = []
        for cp in self.store.checkpoints(conn, min_size):
            report.checkpoints_checked += 1
            where = {"checkpoint_size": cp.tree_size}
            try:
                size, root, key_id = check_note(cp.note, self.origin, trusted)
            except SignatureError as e:
                kind = CHECKPOINT_FORGED if "forged" in str(e) else CHECKPOINT_UNTRUSTED_KEY
                report.add(kind, f"checkpoint #{cp.id}: {e}", **where)
                continue
            except CheckpointFormatError as e:
                report.add(CHECKPOINT_FORGED, f"checkpoint #{cp.id} is malformed: {e}", **where)
                continue
            if (size, root, key_id) != (cp.tree_size, cp.root_hash, cp.key_id):
                report.add(CHECKPOINT_FORGED,
                           f"checkpoint #{cp.id}: its row (size {cp.tree_size}, root "
                           f"{cp.root_hash.hex()[:16]}..) differs from its signed note (size {size}, "
                           f"root {root.hex()[:16]}..)", **where)
                continue
            anchors.append(Anchor(size, root, "database", f"checkpoint #{cp.id}"))
        return anchors

    def _external_anchors(self, trusted, report, min_size: int) -> list[Anchor]:
        anchors = []
        if not self.use_external:
            return anchors
        signer_state = self.ledger.signer_state
        if signer_state is not None:
            try:
                state = signer_state.read()
            except SignerStateError as e:
                report.add(EXTERNAL_MISMATCH, str(e), checkpoint_size=0, source="signer state")
                state = None
            if state and state.tree_size >= min_size:
                report.external_checked += 1
                anchors.append(Anchor(state.tree_size, state.root, "external",
                                      f"signer state {signer_state.path}"))
        mirror = self.ledger.mirror
        if mirror is not None:
            for path, note in mirror.notes():
                try:
                    size, root, _ = check_note(note, self.origin, trusted)
                except (SignatureError, CheckpointFormatError) as e:
                    report.add(EXTERNAL_MISMATCH, f"published checkpoint {path.name}: {e}",
                               checkpoint_size=0, source="mirror")
                    continue
                if size >= min_size:
                    report.external_checked += 1
                    anchors.append(Anchor(size, root, "external", f"published checkpoint {path.name}"))
        return anchors

    # -- the walk ---------------------------------------------------------------

    def _walk(self, conn, report, start, stop, frontier, prev_leaf, last_ts, anchors) -> None:
        """Check every entry from ``start``; anchors are met when the tree reaches their size.

        Each entry first takes a fast path: its bytes hash to the recorded
        leaf, and the envelope names the expected seq, the previous leaf and a
        timestamp no earlier than the last, compared as bytes in place. Only
        an entry that fails it is parsed to say exactly what is wrong.
        """
        pending = {}
        for anchor in anchors:
            pending.setdefault(anchor.tree_size, []).append(anchor)
        self._meet(report, frontier, pending.pop(frontier.size, []))
        expected = start
        prev_stored = prev_leaf
        after_gap = False
        tree_broken = False
        last_ts_bytes = last_ts.encode()
        hexlify = binascii.hexlify
        ts_pattern = TS_PATTERN
        progress = self.progress
        # The frontier is updated inline (its hashes and size as locals) and
        # synced back before anchors are met: this loop runs once per entry.
        hashes = frontier.hashes
        size = frontier.size
        index_faults_possible = True
        checked = 0
        rows = chain.from_iterable(self.store.pages_for_verify(conn, start))  # no generator step per row
        for seq, canonical, stored_leaf, nodes in rows:
            if seq >= stop:
                break
            hasher = new_leaf_hasher()
            hasher.update(canonical)
            leaf = hasher.digest()
            at = canonical.rfind(b',"prev":"')
            ts = canonical[-29:-2]
            if (seq == expected and not after_gap and leaf == stored_leaf and at > 0
                    and canonical[at + 9:at + 73] == hexlify(prev_leaf)
                    and canonical.startswith(b'","seq":%d,"subject":' % seq, at + 73)
                    and canonical[-36:-29] == b',"ts":"' and ts >= last_ts_bytes
                    and (ts == last_ts_bytes or ts_pattern.match(ts))):
                last_ts_bytes = ts
            else:
                canonical, stored_leaf = bytes(canonical), bytes(stored_leaf)
                if seq != expected:
                    report.add(ENTRY_MISSING, f"entries {expected}..{seq - 1} are missing"
                               if seq - expected > 1 else f"entry {expected} is missing", seq=expected)
                    expected = seq
                    after_gap = tree_broken = True
                last_ts_bytes = self._diagnose(report, seq, canonical, leaf, stored_leaf, prev_leaf,
                                               prev_stored, last_ts_bytes, after_gap)
                index_faults_possible = False  # later node mismatches follow from this fault
            # Frontier.append, inline: each trailing 1 bit of size merges a perfect subtree.
            node = leaf
            completed = b""
            bits = size
            while bits & 1:
                hasher = new_node_hasher()
                hasher.update(hashes.pop())
                hasher.update(node)
                node = hasher.digest()
                completed += node
                bits >>= 1
            hashes.append(node)
            size += 1
            if (nodes or b"") != completed and index_faults_possible and not report.faults:
                report.add(INDEX_CORRUPT, "stored proof nodes differ from the recomputed tree; "
                           "proofs served for this range would not verify", seq=seq)
            prev_leaf, prev_stored = leaf, stored_leaf
            after_gap = False
            expected += 1
            checked += 1
            if progress and checked % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
            if pending and size in pending:
                frontier.size = size
                due = pending.pop(size)
                if not tree_broken:
                    self._meet(report, frontier, due)
        frontier.size = size
        report.entries_checked += checked
        if progress:
            progress(checked % PROGRESS_EVERY)
        report.tree_size = expected
        report.root_hash = frontier.root()
        for size in sorted(pending):
            for anchor in pending[size]:
                if size > expected:
                    kind = ENTRY_MISSING if anchor.source == "database" else ROLLED_BACK
                    report.add(kind, f"{anchor.label} covers {size} entries but the ledger "
                               f"ends at {expected}: entries {expected}..{size - 1} are missing",
                               seq=expected, checkpoint_size=size, source=anchor.source)

    @staticmethod
    def _diagnose(report, seq, canonical, leaf, stored_leaf, prev_leaf, prev_stored, last_ts,
                  after_gap) -> bytes:
        """Say what is wrong with an entry that failed the fast path; return the newest ts."""
        if leaf != stored_leaf:
            report.add(PAYLOAD_CHANGED, f"stored bytes hash to {leaf.hex()}, but the entry was "
                       f"recorded with hash {stored_leaf.hex()}", seq=seq)
        try:
            envelope = read_envelope(canonical)
        except EntryValidationError as e:
            report.add(MALFORMED_ENTRY, str(e), seq=seq)
            return last_ts
        if envelope.seq != seq:
            report.add(ORDER_CHANGED, f"position {seq} holds the entry written as seq "
                       f"{envelope.seq}", seq=seq)
        elif not after_gap and envelope.prev != prev_leaf and envelope.prev != prev_stored:
            if seq == 0 or prev_leaf == ZERO_HASH:
                report.add(CHAIN_BROKEN, "the first entry's prev is not 32 zero bytes", seq=seq)
            else:
                report.add(PAYLOAD_CHANGED,
                           f"entry {seq - 1} hashes to {prev_leaf.hex()}, but entry {seq} "
                           f"recorded {envelope.prev.hex()} as its predecessor (entry "
                           f"{seq - 1} was changed, or the link in {seq} was)", seq=seq - 1)
        ts = envelope.ts.encode()
        if ts < last_ts:
            report.add(ORDER_CHANGED, f"timestamp {envelope.ts} is earlier than the "
                       f"previous entry's {last_ts.decode()}", seq=seq)
        return max(ts, last_ts)

    @staticmethod
    def _meet(report, frontier, anchors) -> None:
        root = frontier.root()
        for anchor in anchors:
            if anchor.root == root:
                if anchor.source == "database":
                    report.verified_checkpoint = (anchor.tree_size, root)
                continue
            kind = CHECKPOINT_INCONSISTENT if anchor.source == "database" else EXTERNAL_MISMATCH
            report.add(kind, f"{anchor.label} says the tree of size {anchor.tree_size} has root "
                       f"{anchor.root.hex()}, but the entries give {root.hex()}",
                       checkpoint_size=anchor.tree_size, source=anchor.source)

    # -- entry points -------------------------------------------------------------

    def verify_full(self) -> VerificationReport:
        """Check every entry, checkpoint and external anchor."""
        report = VerificationReport("full")
        with self.store.read() as conn:
            trusted = self._trusted_keys(conn, report)
            stop = self.store.size(conn)
            anchors = (self._database_anchors(conn, trusted, report, 0)
                       + self._external_anchors(trusted, report, 0))
            self._walk(conn, report, 0, stop, Frontier(), ZERO_HASH, "", anchors)
        self._remember(report)
        return report

    def verify_incremental(self) -> VerificationReport:
        """Check only what was added since the last verified checkpoint."""
        state = self.verifier_state.read() if self.verifier_state else None
        if state is None:
            return self.verify_full()
        trusted_size, trusted_root = state
        report = VerificationReport("incremental", start=trusted_size)
        with self.store.read() as conn:
            trusted = self._trusted_keys(conn, report)
            stop = self.store.size(conn)
            if stop < trusted_size:
                report.add(ROLLED_BACK, f"the ledger has {stop} entries but {trusted_size} were "
                           "verified before: entries were deleted or an old backup restored",
                           seq=stop, source="verifier state")
                return report
            start_state = self._trusted_start(conn, report, trusted_size, trusted_root)
            if start_state is None:
                return report
            frontier, prev_leaf, last_ts = start_state
            anchors = (self._database_anchors(conn, trusted, report, trusted_size)
                       + self._external_anchors(trusted, report, trusted_size))
            self._check_latest_consistency(conn, report, anchors, trusted_size, trusted_root)
            self._walk(conn, report, trusted_size, stop, frontier, prev_leaf, last_ts, anchors)
        self._remember(report)
        return report

    def _trusted_start(self, conn, report, size, root):
        """Rebuild the frontier at ``size`` from storage and prove it is the verified one."""
        try:
            hashes = self.store.fetch_nodes(conn, Frontier.nodes_for_size(size))
        except IndexCorruptError as e:
            report.add(EXTERNAL_MISMATCH, f"cannot rebuild the verified tree of size {size}: {e}",
                       checkpoint_size=size, source="verifier state")
            return None
        frontier = Frontier(size, hashes)
        if frontier.root() != root:
            report.add(EXTERNAL_MISMATCH, f"the tree of size {size} no longer has the verified root "
                       f"{root.hex()} (computed {frontier.root().hex()}): the database was rewritten",
                       checkpoint_size=size, source="verifier state")
            return None
        if size == 0:
            return frontier, ZERO_HASH, ""
        last = self.store.entry(conn, size - 1)
        leaf = leaf_hash(last.canonical)
        try:
            path = self.ledger.range_hashes(conn, inclusion_plan(size - 1, size))
            verify_inclusion(size - 1, size, leaf, path, root)
        except (ProofVerificationError, IndexCorruptError) as e:
            report.add(PAYLOAD_CHANGED, f"entry {size - 1} is not the one verified before: {e}",
                       seq=size - 1)
            return None
        return frontier, leaf, last.ts

    def _check_latest_consistency(self, conn, report, anchors, size, root) -> None:
        signed = [a for a in anchors if a.source == "database" and a.tree_size > size]
        if not signed:
            return
        latest = max(signed, key=lambda a: a.tree_size)
        try:
            proof = self.ledger.consistency_at(conn, size, latest.tree_size)
            verify_consistency(size, latest.tree_size, proof.hashes, root, latest.root)
        except (ProofVerificationError, IndexCorruptError) as e:
            report.add(CHECKPOINT_INCONSISTENT, f"{latest.label} is not an extension of the verified "
                       f"tree of size {size}: {e}", checkpoint_size=latest.tree_size)

    def _remember(self, report: VerificationReport) -> None:
        if report.ok and self.verifier_state and report.verified_checkpoint:
            self.verifier_state.write(*report.verified_checkpoint)
