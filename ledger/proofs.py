"""Verification of RFC 9162 inclusion and consistency proofs.

Written from the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, apart from the
prover in ``merkle.py`` (it shares only the two hash functions), so that one
cannot hide a bug of the other. Each check computes a root, then compares: the
mismatch error carries the expected and the computed value. This module is
what an offline verifier needs, and nothing else.
"""

from __future__ import annotations

from .errors import ProofVerificationError
from .merkle import EMPTY_ROOT, HASH_SIZE, node_hash


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofVerificationError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def _compare(what: str, expected: bytes, computed: bytes) -> None:
    if expected != computed:
        raise ProofVerificationError(
            f"{what} mismatch: expected {expected.hex()}, computed {computed.hex()}"
        )


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """Return the root that ``proof`` implies for ``leaf`` at ``index`` in a tree of ``size``.

    Raises:
        ProofVerificationError: the index, sizes or proof length are impossible.
    """
    if not 0 <= index < size:
        raise ProofVerificationError(f"leaf index {index} is not below tree size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn = index, size - 1
    result = leaf
    for position, sibling in enumerate(proof):
        _check_hash(f"proof[{position}]", sibling)
        if sn == 0:
            raise ProofVerificationError(f"proof has {len(proof) - position} hash(es) too many")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofVerificationError("proof is too short for this tree size")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """Check that ``leaf`` is entry ``index`` of the tree of ``size`` with ``root``.

    Raises:
        ProofVerificationError: with the reason, or both roots on mismatch.
    """
    _check_hash("root hash", root)
    _compare("root", root, root_from_inclusion_proof(index, size, leaf, proof))


def roots_from_consistency_proof(
    first: int, second: int, proof: list[bytes], first_root: bytes
) -> tuple[bytes, bytes]:
    """Return the (first, second) roots that ``proof`` implies (0 < first < second).

    Raises:
        ProofVerificationError: the sizes or the proof shape are impossible.
    """
    if not 0 < first < second:
        raise ProofVerificationError(f"need 0 < first < second, got {first}, {second}")
    if not proof:
        raise ProofVerificationError("consistency proof is empty")
    for position, value in enumerate(proof):
        _check_hash(f"proof[{position}]", value)
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: its root is the seed
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_hash = second_hash = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofVerificationError("consistency proof has too many hashes")
        if fn & 1 or fn == sn:
            first_hash = node_hash(value, first_hash)
            second_hash = node_hash(value, second_hash)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            second_hash = node_hash(second_hash, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofVerificationError("consistency proof is too short")
    return first_hash, second_hash


def verify_consistency(
    first: int, second: int, proof: list[bytes], first_root: bytes, second_root: bytes
) -> None:
    """Check that the tree of size ``first`` is a prefix of the tree of size ``second``.

    Raises:
        ProofVerificationError: with the reason, or both roots on mismatch.
    """
    if first < 0 or second < first:
        raise ProofVerificationError(f"need 0 <= first <= second, got {first}, {second}")
    if first == second:
        if proof:
            raise ProofVerificationError("sizes are equal, so the proof must be empty")
        if first == 0:
            _compare("empty tree root", EMPTY_ROOT, first_root)
        _compare("root", first_root, second_root)
        return
    if first == 0:
        raise ProofVerificationError("a consistency proof from the empty tree is meaningless")
    _check_hash("first root", first_root)
    _check_hash("second root", second_root)
    computed_first, computed_second = roots_from_consistency_proof(first, second, proof, first_root)
    _compare("first root", first_root, computed_first)
    _compare("second root", second_root, computed_second)
