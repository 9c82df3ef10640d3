"""Plain values of the store: entries, the head, checkpoints, public keys, pending rows.

The store (``store.py``) turns database rows into these in one place; the
rest of the ledger never sees a row object.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One ledger entry: its stored bytes, and the fields read from them."""

    seq: int
    ts: str
    kind: str
    actor: str
    subject: str
    canonical: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry: what the next append chains to."""

    seq: int
    leaf_hash: bytes
    ts: str
    prev_leaf_hash: bytes | None = None  # of entry seq - 1: a frontier one entry behind can be extended


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint row."""

    id: int
    tree_size: int
    root_hash: bytes
    timestamp: str
    key_id: str
    note: str


@dataclass(frozen=True, slots=True)
class PublicKeyRecord:
    """A public signing key the ledger has used."""

    key_id: str
    public_key: bytes
    algorithm: str
    name: str
    created: str
    retired: str | None


class PendingWrites:
    """What a write transaction inserts just before ``COMMIT``.

    ``entries``: ledger rows ``(seq, canonical, leaf_hash, nodes)``.
    ``deferred``: ``(insert statement, [row dicts])`` of projection tables
    that nothing reads inside the transaction (the audit rows); on PostgreSQL
    they travel with the entry inserts and ``COMMIT`` in one round trip.
    """

    __slots__ = ("entries", "deferred")

    def __init__(self):
        self.entries: list[tuple] = []
        self.deferred: list[tuple] = []
