"""Each process keeps the Merkle frontier of its last append; another process's
appends make it stale. One entry behind, it is extended with the head's leaf
(read with the head); further behind, or when the entry before the head is not
the one the cache ends with, the frontier is read from the stored nodes.

Two apps on one database stand for two gunicorn workers. Whatever path each
append takes, the nodes it stores must be the tree's: the ledger verifies
against an independent recomputation and a signed checkpoint.
"""

from __future__ import annotations

import pytest

from ledger.merkle import Frontier, leaf_hash
from ledger.verify import LedgerVerifier


@pytest.fixture
def two(make_app):
    first, second = make_app(), make_app()
    return first.extensions["ledger"], second.extensions["ledger"]


def _count_node_reads(ledger) -> list:
    reads = []
    fetch = ledger.store.fetch_nodes

    def counted(conn, nodes):
        reads.append(len(nodes))
        return fetch(conn, nodes)

    ledger.store.fetch_nodes = counted
    return reads


def _note(ledger, i: int):
    return ledger.append("test.note", "tester", f"thing:{i}", {"i": i})


def _verified(ledger, size: int) -> None:
    assert ledger.create_checkpoint().tree_size == size
    report = LedgerVerifier(ledger).verify_full()
    assert report.ok, report.faults
    assert report.entries_checked == size


def test_alternating_writers_extend_their_frontiers_and_read_no_nodes(two):
    a, b = two
    reads_a, reads_b = _count_node_reads(a), _count_node_reads(b)
    _note(a, 0)  # no cache yet: the frontier of the empty tree (no nodes)
    _note(b, 1)  # no cache yet: the stored frontier of size 1
    assert reads_a == [0] and reads_b == [1]
    for i in range(2, 70):  # sizes cross many powers of two, so merges happen on extension
        _note(a if i % 2 == 0 else b, i)
    assert reads_a == [0] and reads_b == [1]
    _verified(a, 70)
    assert b.root() == a.root()


def test_two_or_more_entries_behind_reads_the_stored_nodes(two):
    a, b = two
    _note(a, 0)
    _note(a, 1)
    reads_b = _count_node_reads(b)
    _note(b, 2)  # first append of b: no cache
    _note(a, 3)
    _note(a, 4)  # b is now two entries behind
    _note(b, 5)
    assert len(reads_b) == 2
    _note(a, 6)  # one behind again
    _note(b, 7)
    assert len(reads_b) == 2
    _verified(a, 8)


def test_a_cache_that_does_not_end_where_the_head_chains_from_is_not_extended(two):
    """The same size one entry behind is not enough: the entry before the head
    must be the one the cache ends with (a restored or replaced database)."""
    a, b = two
    for i in range(5):
        _note(a, i)
    reads_b = _count_node_reads(b)
    _note(b, 5)
    _note(a, 6)
    # b's cache claims size 6 but ends with a leaf that is not entry 5's
    b.frontiers.remember(Frontier(6, [leaf_hash(b"x"), leaf_hash(b"y")]), leaf_hash(b"not entry 5"))
    _note(b, 7)
    assert len(reads_b) == 2  # read, not extended from the wrong cache
    _verified(a, 8)
