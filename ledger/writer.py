"""One append transaction: sequence numbers, the hash chain and the Merkle frontier.

:class:`LedgerWriter` is what :meth:`ledger.log.Ledger.transaction` yields,
with the append lock held and the head read under it. Each appended entry
gets ``seq``, ``prev`` and a timestamp never earlier than the head's, its
canonical bytes, its leaf hash and the perfect nodes it completes; the rows
are handed to the store, which inserts them just before ``COMMIT``.

:class:`FrontierCache` keeps the Merkle frontier of the last commit of this
process, so that the next append under the lock rarely reads stored nodes:
the cache is used when it ends at the head, or extended by the head's leaf
when another process appended exactly one entry since; otherwise the
frontier is read from ``O(log n)`` stored nodes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from .entry import ZERO_HASH, PreparedEntry, encode_entry, utc_timestamp
from .merkle import Frontier, new_leaf_hasher
from .records import Head, PendingWrites
from .store import LedgerStore


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


class LedgerWriter:
    """Appends entries inside one locked transaction; see :meth:`Ledger.transaction`."""

    def __init__(self, ledger, conn: Connection, head: Head | None, frontier: Frontier,
                 pending: PendingWrites):
        self._ledger = ledger
        self.connection = conn
        self.frontier = frontier
        self.last_leaf = head.leaf_hash if head else ZERO_HASH
        self.last_ts = head.ts if head else ""
        self.appended: list[AppendedEntry] = []
        # Entry rows (and deferred projection rows) are written by the store
        # just before COMMIT, in the same round trip on PostgreSQL (see
        # LedgerStore.append_transaction).
        self.pending = pending

    @property
    def size(self) -> int:
        """The tree size including what this transaction appended so far."""
        return self.frontier.size

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


class FrontierCache:
    """The Merkle frontier after this process's last commit, and the leaf it ends with."""

    def __init__(self):
        self._lock = threading.Lock()
        self.frontier: Frontier | None = None
        self.leaf: bytes | None = None

    def frontier_for(self, store: LedgerStore, conn: Connection, head: Head | None) -> Frontier:
        """The frontier of the tree that ends at ``head`` (a copy the caller may extend)."""
        size = head.seq + 1 if head else 0
        with self._lock:
            cached, cached_leaf = self.frontier, self.leaf
        if cached is not None:
            if cached.size == size and (size == 0 or cached_leaf == head.leaf_hash):
                return cached.copy()
            # One entry behind, and the entry before the head is the one the
            # cache ends with: the head's leaf completes it.
            if cached.size == size - 1 and (cached.size == 0 or cached_leaf == head.prev_leaf_hash):
                frontier = cached.copy()
                frontier.append(head.leaf_hash)
                return frontier
        return Frontier(size, store.fetch_nodes(conn, Frontier.nodes_for_size(size)))

    def remember(self, frontier: Frontier, leaf: bytes) -> None:
        """Keep the frontier of a committed transaction."""
        with self._lock:
            self.frontier = frontier
            self.leaf = leaf
