"""RFC 6962 / RFC 9162 Merkle tree: hashing, the append frontier, proof plans.

Pure functions, no I/O. The tree over leaves ``D[0:n]`` is the one RFC 9162
§2.1.1 defines: ``MTH({}) = SHA-256()``, ``MTH({d}) = SHA-256(0x00 || d)``,
``MTH(D[0:n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the
largest power of two smaller than ``n``.

Storage keeps only *perfect* subtrees: node ``(level, index)`` is the root of
the ``2**level`` leaves starting at ``index * 2**level``. A perfect node is
complete the moment its last leaf is appended, so it is computed once, at
append time, and never changes. Every hash a proof needs is the root of an
"aligned" range ``[lo, hi)`` (``lo`` a multiple of a power of two at least
``hi - lo``), which is a right fold of at most ``log2(n)`` perfect nodes.
Proofs therefore cost ``O(log n)`` node lookups and no tree rebuild:
:func:`inclusion_plan` and :func:`consistency_plan` say which ranges a proof
consists of, :func:`perfect_nodes_of_range` which nodes each range needs, and
:func:`fold_range` turns those nodes into the range's hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Hash states that have already absorbed the prefix byte: copying one and
# feeding the data spares concatenating the prefix onto a fresh copy of the
# data (0.1 us per 600-byte leaf). Never updated themselves, so any thread may
# copy them.
new_leaf_hasher = hashlib.sha256(LEAF_PREFIX).copy
new_node_hasher = hashlib.sha256(NODE_PREFIX).copy


def leaf_hash(data: bytes) -> bytes:
    """Return SHA-256(0x00 || data), the RFC 6962 hash of one leaf."""
    hasher = new_leaf_hasher()
    hasher.update(data)
    return hasher.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 || left || right), the RFC 6962 interior node hash."""
    hasher = new_node_hasher()
    hasher.update(left)
    hasher.update(right)
    return hasher.digest()


def largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect subtree: ``2**level`` leaves starting at ``index * 2**level``."""

    level: int
    index: int

    @property
    def last_leaf(self) -> int:
        """Index of the last leaf under this node: the entry that stores it."""
        return ((self.index + 1) << self.level) - 1


def perfect_nodes_of_range(lo: int, hi: int) -> list[Node]:
    """Return the perfect nodes whose right fold is the hash of ``D[lo:hi]``.

    ``[lo, hi)`` must be aligned as every range in an RFC 9162 proof is. The
    nodes come left to right, largest first.
    """
    if not 0 <= lo < hi:
        raise ValueError(f"empty or negative range [{lo}, {hi})")
    nodes = []
    while lo < hi:
        size = hi - lo
        level = size.bit_length() - 1  # largest power of two <= size
        if lo % (1 << level):
            raise ValueError(f"range [{lo}, {hi}) is not aligned")
        nodes.append(Node(level, lo >> level))
        lo += 1 << level
    return nodes


def fold_range(hashes: list[bytes]) -> bytes:
    """Combine perfect-node hashes (left to right) into the range's MTH."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_plan(index: int, size: int) -> list[tuple[int, int]]:
    """Return the ranges whose hashes form PATH(index, D[0:size]), in RFC order.

    RFC 9162 §2.1.3.1: the audit path lists sibling subtree hashes from the
    leaf upwards.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not below tree size {size}")
    lo, hi = 0, size
    siblings = []
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    siblings.reverse()
    return siblings


def consistency_plan(first: int, second: int) -> list[tuple[int, int]]:
    """Return the ranges whose hashes form PROOF(first, D[0:second]), in RFC order.

    RFC 9162 §2.1.4.1 (SUBPROOF): empty when ``first == second``.
    """
    if not 0 < first <= second:
        raise ValueError(f"consistency needs 0 < first <= second, got {first}, {second}")
    lo, hi = 0, second
    known_subtree = True  # "b" in the RFC: the subtree is the old tree's own root
    suffix = []
    head = []
    while True:
        if first - lo == hi - lo:
            if not known_subtree:
                head.append((lo, hi))
            break
        k = largest_power_of_two_below(hi - lo)
        if first - lo <= k:
            suffix.append((lo + k, hi))
            hi = lo + k
        else:
            suffix.append((lo, lo + k))
            lo += k
            known_subtree = False
    suffix.reverse()
    return head + suffix


class Frontier:
    """The right edge of the tree: the perfect nodes that make up ``D[0:size]``.

    One per set bit of ``size``, largest first. Appending a leaf merges equal
    levels, and each merge is a perfect node completed by that leaf: exactly
    what storage keeps beside the entry.
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None):
        self.size = size
        self.hashes = list(hashes or [])
        if len(self.hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} needs {bin(size).count('1')} hashes")

    @staticmethod
    def nodes_for_size(size: int) -> list[Node]:
        """Return the perfect nodes of the frontier at ``size``, largest first."""
        return perfect_nodes_of_range(0, size) if size else []

    def copy(self) -> "Frontier":
        """Return an independent copy."""
        return Frontier(self.size, self.hashes)

    def append(self, leaf: bytes) -> list[bytes]:
        """Add one leaf hash; return the perfect nodes it completes, level 1 up."""
        completed = []
        hashes = self.hashes
        current = leaf
        size = self.size
        while size & 1:  # each trailing 1 bit is a subtree of equal size to merge
            current = node_hash(hashes.pop(), current)
            completed.append(current)
            size >>= 1
        hashes.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """Return MTH(D[0:size])."""
        return fold_range(self.hashes) if self.hashes else EMPTY_ROOT


def root_of_leaves(leaves: list[bytes]) -> bytes:
    """Return the Merkle root of a list of leaf hashes (bottom-up, in memory)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()
