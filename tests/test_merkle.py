"""Known answers and properties of the RFC 6962 / RFC 9162 Merkle tree.

Three independent sources of truth are used against ``ledger/merkle.py`` (the
prover) and ``ledger/proofs.py`` (the verifier):

- hand-written known answers from the RFC definitions (and the
  transparency-dev test tree, whose roots appear in the vector files);
- the proof vectors of transparency-dev/merkle in ``tests/vectors/rfc6962-proofs``;
- a small reference implementation below, written straight from the recursive
  definitions of RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1
  (PROOF/SUBPROOF). It uses ``hashlib`` directly and shares no code with
  ``ledger/merkle.py``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ProofVerificationError
from ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    Frontier,
    Node,
    consistency_plan,
    fold_range,
    inclusion_plan,
    largest_power_of_two_below,
    leaf_hash,
    node_hash,
    perfect_nodes_of_range,
    root_of_leaves,
)
from ledger.proofs import (
    root_from_inclusion_proof,
    roots_from_consistency_proof,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc6962-proofs"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------------------
# Reference implementation: RFC 9162 §2.1.1-§2.1.4, over a list of leaf data.
# D[lo:hi] is represented by the pair (lo, hi) into one list, so that MTH can
# be memoised; the recursion is the RFC's, case for case.
# ---------------------------------------------------------------------------


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1), by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class RefTree:
    """RFC 9162 §2.1 over the leaf data ``D[0:n]``."""

    def __init__(self, data: list[bytes]):
        self.data = data
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int = 0, hi: int | None = None) -> bytes:
        """MTH(D[lo:hi]) (§2.1.1)."""
        hi = len(self.data) if hi is None else hi
        key = (lo, hi)
        if key not in self._mth:
            n = hi - lo
            if n == 0:
                value = _sha256(b"")
            elif n == 1:
                value = _sha256(b"\x00" + self.data[lo])
            else:
                k = _k(n)
                value = _sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))
            self._mth[key] = value
        return self._mth[key]

    def leaf(self, m: int) -> bytes:
        return self.mth(m, m + 1)

    def path(self, m: int, lo: int = 0, hi: int | None = None) -> list[bytes]:
        """PATH(m, D[lo:hi]) (§2.1.3.1), m relative to lo."""
        hi = len(self.data) if hi is None else hi
        n = hi - lo
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def proof(self, m: int) -> list[bytes]:
        """PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) (§2.1.4.1)."""
        return self.subproof(m, 0, len(self.data), True)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = _k(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]


def leaf_data(size: int, salt: bytes = b"") -> list[bytes]:
    """Distinct leaf data for a tree of ``size`` leaves."""
    return [salt + b"leaf-" + str(i).encode() for i in range(size)]


def perfect_node_table(data: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect node (level, index) -> hash, computed bottom-up with hashlib.

    This stands in for what the store keeps beside each entry.
    """
    table = {}
    level_hashes = [_sha256(b"\x00" + d) for d in data]
    level = 0
    while level_hashes:
        for index, value in enumerate(level_hashes):
            table[(level, index)] = value
        level_hashes = [
            _sha256(b"\x01" + level_hashes[i] + level_hashes[i + 1])
            for i in range(0, len(level_hashes) - 1, 2)
        ]
        level += 1
    return table


def range_hash(table, lo: int, hi: int) -> bytes:
    """What the prover computes for one range of a plan: folded perfect nodes."""
    return fold_range([table[(n.level, n.index)] for n in perfect_nodes_of_range(lo, hi)])


def prove_inclusion(table, index: int, size: int) -> list[bytes]:
    return [range_hash(table, lo, hi) for lo, hi in inclusion_plan(index, size)]


def prove_consistency(table, first: int, second: int) -> list[bytes]:
    return [range_hash(table, lo, hi) for lo, hi in consistency_plan(first, second)]


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------

# SHA-256 of the empty string (FIPS 180-4; the well-known e3b0c442... digest).
# RFC 6962 §2.1 / RFC 9162 §2.1.1: "The hash of an empty list is the hash of an
# empty string: MTH({}) = HASH()."
EMPTY_SHA256_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# The leaves of the test tree used by transparency-dev/merkle (and, before it,
# the RFC 6962 reference implementation in certificate-transparency).
GO_TEST_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
# MTH(D[0:n]) for that tree, n = 1..8. Sizes 1, 2, 3, 5, 6, 7 and 8 appear as
# roots in the happy-path vector files (checked in test_go_test_tree_roots_match_vectors).
GO_TEST_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def test_empty_tree_root_is_sha256_of_empty_string():
    assert EMPTY_ROOT.hex() == EMPTY_SHA256_HEX
    assert Frontier().root().hex() == EMPTY_SHA256_HEX
    assert root_of_leaves([]).hex() == EMPTY_SHA256_HEX


def test_leaf_and_node_hashes_use_the_domain_prefixes():
    assert LEAF_PREFIX == b"\x00" and NODE_PREFIX == b"\x01" and HASH_SIZE == 32
    # SHA-256(0x00): the hash of the empty leaf, "bjQLnP+z..." in the vectors.
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"abc") == _sha256(b"\x00abc")
    assert leaf_hash(b"abc") != _sha256(b"abc")
    left, right = _sha256(b"L"), _sha256(b"R")
    assert node_hash(left, right) == _sha256(b"\x01" + left + right)
    assert node_hash(left, right) != node_hash(right, left)
    # A leaf whose data looks like two child hashes does not collide with the node.
    assert leaf_hash(left + right) != node_hash(left, right)


def test_small_tree_roots_written_by_hand():
    a, b, c, d, e = (b"a", b"b", b"c", b"d", b"e")
    def L(x):  # noqa: N802 - the RFC's names
        return _sha256(b"\x00" + x)

    def N(x, y):  # noqa: N802
        return _sha256(b"\x01" + x + y)

    expected = {
        1: L(a),
        2: N(L(a), L(b)),
        3: N(N(L(a), L(b)), L(c)),
        4: N(N(L(a), L(b)), N(L(c), L(d))),
        5: N(N(N(L(a), L(b)), N(L(c), L(d))), L(e)),
    }
    leaves = [a, b, c, d, e]
    for size, root in expected.items():
        assert root_of_leaves([leaf_hash(x) for x in leaves[:size]]) == root, size
        assert RefTree(leaves[:size]).mth() == root, size
    # Seven leaves: k = 4, then the right part [4:7] splits at 2.
    seven = [bytes([i]) for i in range(7)]
    h = [L(x) for x in seven]
    by_hand = N(N(N(h[0], h[1]), N(h[2], h[3])), N(N(h[4], h[5]), h[6]))
    assert root_of_leaves(h) == by_hand


def test_go_test_tree_roots():
    hashes = [leaf_hash(d) for d in GO_TEST_LEAVES]
    for size, root_hex in GO_TEST_ROOTS.items():
        assert root_of_leaves(hashes[:size]).hex() == root_hex, size
        assert RefTree(GO_TEST_LEAVES[:size]).mth().hex() == root_hex, size


def test_go_test_tree_roots_match_vectors():
    """The roots above are the ones the independent vector files were made from."""
    seen = {}
    for path in VECTORS.rglob("happy-path.json"):
        case = json.loads(path.read_text())
        if "treeSize" in case:
            seen[case["treeSize"]] = base64.b64decode(case["root"]).hex()
        else:
            seen[case["size1"]] = base64.b64decode(case["root1"]).hex()
            seen[case["size2"]] = base64.b64decode(case["root2"]).hex()
    assert set(seen) == {1, 2, 3, 5, 6, 7, 8}
    for size, root_hex in seen.items():
        assert GO_TEST_ROOTS[size] == root_hex, size


def test_largest_power_of_two_below():
    assert [largest_power_of_two_below(n) for n in range(2, 11)] == [1, 2, 2, 4, 4, 4, 4, 8, 8]
    for n in range(2, 1100):
        assert largest_power_of_two_below(n) == _k(n)


def test_perfect_nodes_of_range_known_answers():
    assert perfect_nodes_of_range(0, 7) == [Node(2, 0), Node(1, 2), Node(0, 6)]
    assert perfect_nodes_of_range(8, 16) == [Node(3, 1)]
    assert perfect_nodes_of_range(4, 7) == [Node(1, 2), Node(0, 6)]
    assert Node(2, 1).last_leaf == 7
    assert Node(0, 5).last_leaf == 5
    with pytest.raises(ValueError, match=r"range \[3, 7\) is not aligned"):
        perfect_nodes_of_range(3, 7)
    with pytest.raises(ValueError, match="empty or negative range"):
        perfect_nodes_of_range(4, 4)


def test_plans_known_answers():
    # RFC 9162 §2.1.5 example tree of 7 leaves (d0..d6).
    assert inclusion_plan(0, 7) == [(1, 2), (2, 4), (4, 7)]  # b, h, l
    assert inclusion_plan(3, 7) == [(2, 3), (0, 2), (4, 7)]  # c, g, l
    assert inclusion_plan(4, 7) == [(5, 6), (6, 7), (0, 4)]  # f, j, k
    assert inclusion_plan(6, 7) == [(4, 6), (0, 4)]  # i, k
    assert consistency_plan(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]  # c, d, g, l
    assert consistency_plan(4, 7) == [(4, 7)]  # l
    assert consistency_plan(6, 7) == [(4, 6), (6, 7), (0, 4)]  # i, j, k
    assert consistency_plan(5, 5) == []
    with pytest.raises(ValueError, match="leaf index 7 is not below tree size 7"):
        inclusion_plan(7, 7)
    with pytest.raises(ValueError, match="consistency needs 0 < first <= second"):
        consistency_plan(0, 3)
    with pytest.raises(ValueError, match="consistency needs 0 < first <= second"):
        consistency_plan(4, 3)


def test_frontier_rejects_wrong_hash_count_and_copies_independently():
    with pytest.raises(ValueError, match="a frontier of size 3 needs 2 hashes"):
        Frontier(3, [EMPTY_ROOT])
    frontier = Frontier()
    frontier.append(leaf_hash(b"a"))
    clone = frontier.copy()
    clone.append(leaf_hash(b"b"))
    assert (frontier.size, clone.size) == (1, 2)
    assert frontier.root() == leaf_hash(b"a")


def test_verifier_error_messages():
    leaf = leaf_hash(b"x")
    with pytest.raises(ProofVerificationError, match="leaf index 1 is not below tree size 1"):
        verify_inclusion(1, 1, leaf, [], leaf)
    with pytest.raises(ProofVerificationError, match=r"proof\[0\] is 31 bytes, expected 32"):
        verify_inclusion(0, 2, leaf, [bytes(31)], leaf)
    with pytest.raises(ProofVerificationError, match="root hash is 0 bytes"):
        verify_inclusion(0, 1, leaf, [], b"")
    with pytest.raises(ProofVerificationError, match="proof has 1 hash\\(es\\) too many"):
        verify_inclusion(0, 1, leaf, [leaf], leaf)
    with pytest.raises(ProofVerificationError, match="proof is too short"):
        verify_inclusion(0, 2, leaf, [], leaf)
    with pytest.raises(ProofVerificationError, match=f"root mismatch: expected {EMPTY_ROOT.hex()}"):
        verify_inclusion(0, 1, leaf, [], EMPTY_ROOT)
    with pytest.raises(ProofVerificationError, match="consistency proof is empty"):
        verify_consistency(1, 2, [], leaf, leaf)
    with pytest.raises(ProofVerificationError, match="sizes are equal, so the proof must be empty"):
        verify_consistency(2, 2, [leaf], leaf, leaf)
    with pytest.raises(ProofVerificationError, match="from the empty tree is meaningless"):
        verify_consistency(0, 2, [leaf], EMPTY_ROOT, leaf)
    with pytest.raises(ProofVerificationError, match="need 0 <= first <= second"):
        verify_consistency(3, 2, [], leaf, leaf)
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)


# ---------------------------------------------------------------------------
# transparency-dev/merkle vectors
# ---------------------------------------------------------------------------

VECTOR_FILES = sorted(VECTORS.glob("inclusion/**/*.json")) + sorted(
    VECTORS.glob("consistency/**/*.json")
)
# Messages the verifier gives for a proof it refuses: every vector must fail
# for one of these stated reasons, not by accident.
REJECTION = (
    r"mismatch: expected|bytes, expected 32|too many|too short|is not below tree size"
    r"|need 0 <|consistency proof is empty|must be empty|meaningless"
)


def test_vector_set_is_complete():
    assert len([p for p in VECTOR_FILES if p.relative_to(VECTORS).parts[0] == "inclusion"]) == 98
    assert len([p for p in VECTOR_FILES if p.relative_to(VECTORS).parts[0] == "consistency"]) == 98
    license_text = (VECTORS / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


@pytest.mark.parametrize(
    "path", VECTOR_FILES, ids=[str(p.relative_to(VECTORS)) for p in VECTOR_FILES]
)
def test_proof_vector(path: Path):
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    if path.name == "happy-path.json":
        assert case["wantErr"] is False
    if "leafIdx" in case:
        check = functools.partial(
            verify_inclusion,
            case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]),
        )
    else:
        check = functools.partial(
            verify_consistency,
            case["size1"], case["size2"], proof, _b64(case["root1"]), _b64(case["root2"]),
        )
    if case["wantErr"]:
        with pytest.raises(ProofVerificationError, match=REJECTION):
            check()
    else:
        check()


# ---------------------------------------------------------------------------
# Exhaustive agreement with the reference on small trees
# ---------------------------------------------------------------------------


def test_prover_matches_reference_exhaustively_up_to_64_leaves():
    data = leaf_data(64)
    table = perfect_node_table(data)
    for size in range(1, 65):
        ref = RefTree(data[:size])
        root = ref.mth()
        for index in range(size):
            proof = prove_inclusion(table, index, size)
            assert proof == ref.path(index), (index, size)
            assert root_from_inclusion_proof(index, size, ref.leaf(index), proof) == root
        for first in range(1, size + 1):
            proof = prove_consistency(table, first, size)
            assert proof == ref.proof(first), (first, size)
            verify_consistency(first, size, proof, RefTree(data[:first]).mth(), root)


# ---------------------------------------------------------------------------
# Property tests, trees of 1..300 leaves
# ---------------------------------------------------------------------------

# Sizes around powers of two are where the recursions change shape.
EDGE_SIZES = sorted({2**p + d for p in range(9) for d in (-1, 0, 1)} - {0, 257} | {300})
sizes = st.one_of(st.integers(1, 300), st.sampled_from(EDGE_SIZES))
salts = st.binary(max_size=6)


@st.composite
def tree_and_index(draw):
    size = draw(sizes)
    index = draw(st.one_of(st.integers(0, size - 1), st.sampled_from([0, size - 1])))
    return draw(salts), size, index


@st.composite
def tree_and_prefix(draw):
    second = draw(sizes)
    first = draw(
        st.one_of(
            st.integers(1, second),
            st.sampled_from(sorted({1, second, max(1, second - 1)} | {2**p for p in range(9) if 2**p <= second})),
        )
    )
    return draw(salts), first, second


@settings(max_examples=200, deadline=None)
@given(tree_and_index())
def test_inclusion_proof_matches_reference_and_verifies(case):
    salt, size, index = case
    data = leaf_data(size, salt)
    ref = RefTree(data)
    proof = prove_inclusion(perfect_node_table(data), index, size)
    assert proof == ref.path(index)
    verify_inclusion(index, size, ref.leaf(index), proof, ref.mth())
    assert root_from_inclusion_proof(index, size, ref.leaf(index), proof) == ref.mth()


@settings(max_examples=200, deadline=None)
@given(tree_and_prefix())
def test_consistency_proof_matches_reference_and_verifies(case):
    salt, first, second = case
    data = leaf_data(second, salt)
    ref = RefTree(data)
    first_root = RefTree(data[:first]).mth()
    assert first_root == ref.mth(0, first)
    proof = prove_consistency(perfect_node_table(data), first, second)
    assert proof == ref.proof(first)
    verify_consistency(first, second, proof, first_root, ref.mth())
    if first < second:
        assert roots_from_consistency_proof(first, second, proof, first_root) == (first_root, ref.mth())


def path_shape(m: int, n: int) -> tuple[str, ...]:
    """Which side each hash of PATH(m, D[n]) is on, from the leaf up (§2.1.3.1)."""
    if n == 1:
        return ()
    k = _k(n)
    if m < k:
        return path_shape(m, k) + ("R",)
    return path_shape(m - k, n - k) + ("L",)


def proof_shape(m: int, n: int, b: bool = True) -> tuple[str, ...]:
    """The structure of SUBPROOF(m, D[n], b) (§2.1.4.1): sides, and an explicit seed."""
    if m == n:
        return () if b else ("seed",)
    k = _k(n)
    if m <= k:
        return proof_shape(m, k, b) + ("R",)
    return proof_shape(m - k, n - k, False) + ("L",)


def _rejects(check, *args):
    with pytest.raises(ProofVerificationError):
        check(*args)


def _check_inclusion_tampering(index, size, leaf, proof, root, bits, stranger):
    verify_inclusion(index, size, leaf, proof, root)
    for bit in bits:
        _rejects(verify_inclusion, index, size, flip(leaf, bit), proof, root)
        _rejects(verify_inclusion, index, size, leaf, proof, flip(root, bit))
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = flip(bad[i], bit)
            _rejects(verify_inclusion, index, size, leaf, bad, root)
    for i in range(len(proof)):
        _rejects(verify_inclusion, index, size, leaf, proof[:i] + proof[i + 1:], root)
    for i in range(len(proof) + 1):
        for extra in (stranger, leaf, root, *proof):
            _rejects(verify_inclusion, index, size, leaf, proof[:i] + [extra] + proof[i:], root)
    # Another index or size: RFC 9162 §2.1.3.2 reads the proof's shape from
    # (index, size) alone. Where another claim has exactly the same shape as
    # the true one (e.g. leaf 0 of 3 vs leaf 0 of 4: both fold "left, left"),
    # the computation is the same and any correct verifier accepts it; the
    # tree size is bound by the signed checkpoint, not by the proof. Every
    # claim of a different shape must be rejected.
    true_shape = path_shape(index, size)
    for other_index, other_size in (
        (index - 1, size), (index + 1, size), (index, size - 1), (index, size + 1)
    ):
        if 0 <= other_index < other_size and path_shape(other_index, other_size) == true_shape:
            assert other_index == index, "two leaves of one tree cannot share a path shape"
            verify_inclusion(other_index, other_size, leaf, proof, root)
        else:
            _rejects(verify_inclusion, other_index, other_size, leaf, proof, root)


def _check_consistency_tampering(first, second, proof, first_root, second_root, bits, stranger):
    verify_consistency(first, second, proof, first_root, second_root)
    for bit in bits:
        _rejects(verify_consistency, first, second, proof, flip(first_root, bit), second_root)
        _rejects(verify_consistency, first, second, proof, first_root, flip(second_root, bit))
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = flip(bad[i], bit)
            _rejects(verify_consistency, first, second, bad, first_root, second_root)
    for i in range(len(proof)):
        _rejects(verify_consistency, first, second, proof[:i] + proof[i + 1:], first_root, second_root)
    for i in range(len(proof) + 1):
        for extra in (stranger, first_root, second_root, *proof):
            _rejects(
                verify_consistency, first, second, proof[:i] + [extra] + proof[i:], first_root, second_root
            )
    # As for inclusion: a claim with the same SUBPROOF shape is the same
    # computation (e.g. 1 -> 3 and 1 -> 4); every other claim must fail.
    true_shape = proof_shape(first, second)
    for other_first, other_second in (
        (first - 1, second), (first + 1, second), (first, second - 1), (first, second + 1)
    ):
        if 0 < other_first <= other_second and proof_shape(other_first, other_second) == true_shape:
            verify_consistency(other_first, other_second, proof, first_root, second_root)
        else:
            _rejects(verify_consistency, other_first, other_second, proof, first_root, second_root)


def test_shape_equivalent_claims_are_the_documented_exceptions():
    """Pin the exception the tampering tests allow, so that it stays narrow."""
    ref = RefTree(leaf_data(4))
    three = RefTree(leaf_data(3))
    # Leaf 0 of a 3-leaf tree: the same proof "verifies" for size 4 (both
    # siblings on the right, folded the same way); that is RFC 9162 behaviour,
    # not a verifier defect.
    assert path_shape(0, 3) == path_shape(0, 4) == ("R", "R")
    verify_inclusion(0, 4, three.leaf(0), three.path(0), three.mth())
    # ... but not for the real 4-leaf root, nor for index 1 or size 2.
    _rejects(verify_inclusion, 0, 4, three.leaf(0), three.path(0), ref.mth())
    _rejects(verify_inclusion, 1, 3, three.leaf(0), three.path(0), three.mth())
    _rejects(verify_inclusion, 0, 2, three.leaf(0), three.path(0), three.mth())
    # Shapes of every claim up to 64 leaves are distinct within one tree size.
    for n in range(1, 65):
        assert len({path_shape(m, n) for m in range(n)}) == n
        assert len({proof_shape(m, n) for m in range(1, n + 1)}) == n


@settings(max_examples=100, deadline=None)
@given(
    tree_and_index(),
    st.lists(st.integers(0, 255), min_size=12, max_size=12, unique=True),
    st.binary(min_size=32, max_size=32),
)
def test_inclusion_proof_tampering_fails(case, bits, stranger):
    salt, size, index = case
    ref = RefTree(leaf_data(size, salt))
    _check_inclusion_tampering(
        index, size, ref.leaf(index), ref.path(index), ref.mth(), [0, 255, *bits], stranger
    )


@settings(max_examples=100, deadline=None)
@given(
    tree_and_prefix(),
    st.lists(st.integers(0, 255), min_size=12, max_size=12, unique=True),
    st.binary(min_size=32, max_size=32),
)
def test_consistency_proof_tampering_fails(case, bits, stranger):
    salt, first, second = case
    ref = RefTree(leaf_data(second, salt))
    _check_consistency_tampering(
        first, second, ref.proof(first), ref.mth(0, first), ref.mth(), [0, 255, *bits], stranger
    )


@pytest.mark.parametrize("size", [1, 2, 7, 8, 37])
def test_every_single_bit_flip_fails(size):
    """Exhaustively: all 256 bits of the leaf, the root and every proof hash."""
    ref = RefTree(leaf_data(size, b"all-bits"))
    stranger = _sha256(b"stranger")
    for index in sorted({0, size // 2, size - 1}):
        _check_inclusion_tampering(
            index, size, ref.leaf(index), ref.path(index), ref.mth(), range(256), stranger
        )
    for first in sorted({1, max(1, size // 2), max(1, size - 1), size}):
        _check_consistency_tampering(
            first, size, ref.proof(first), ref.mth(0, first), ref.mth(), range(256), stranger
        )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), salts)
def test_frontier_matches_reference_for_every_prefix(size, salt):
    data = leaf_data(size, salt)
    ref = RefTree(data)
    table = perfect_node_table(data)
    frontier = Frontier()
    assert frontier.root() == ref.mth(0, 0)
    for i in range(size):
        completed = frontier.append(ref.leaf(i))
        assert frontier.size == i + 1
        assert frontier.root() == ref.mth(0, i + 1)
        # Leaf i completes one perfect node per trailing 1 bit of i: levels 1..t.
        trailing_ones = (i ^ (i + 1)).bit_length() - 1
        assert len(completed) == trailing_ones
        for level, value in enumerate(completed, start=1):
            node = Node(level, ((i + 1) >> level) - 1)
            assert node.last_leaf == i
            assert value == ref.mth((i + 1) - (1 << level), i + 1)
            assert value == table[(level, node.index)]
        # The frontier holds exactly the perfect nodes of D[0:i+1], largest first.
        nodes = Frontier.nodes_for_size(i + 1)
        assert frontier.hashes == [table[(n.level, n.index)] for n in nodes]
        assert Frontier(i + 1, [table[(n.level, n.index)] for n in nodes]).root() == ref.mth(0, i + 1)
    assert root_of_leaves([ref.leaf(i) for i in range(size)]) == ref.mth()
