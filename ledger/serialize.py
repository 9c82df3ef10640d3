"""JSON forms of entries, checkpoints and proofs, as the API and exports give them.

Bytes become base64 (an entry's exact canonical bytes) or lowercase hex
(hashes), as the HTTP contract says. Nothing here is ever hashed: the hashed
bytes are the entry's stored canonical bytes.
"""

from __future__ import annotations

import base64


def entry_json(entry) -> dict:
    """The API form of a stored entry."""
    return {"seq": entry.seq, "ts": entry.ts, "kind": entry.kind, "actor": entry.actor,
            "subject": entry.subject, "canonical_b64": base64.b64encode(entry.canonical).decode(),
            "leaf_hash": entry.leaf_hash.hex()}


def checkpoint_json(checkpoint) -> dict | None:
    """The API form of a stored checkpoint (None stays None)."""
    if checkpoint is None:
        return None
    return {"tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash.hex(),
            "timestamp": checkpoint.timestamp, "key_id": checkpoint.key_id, "note": checkpoint.note}


def inclusion_proof_json(proof) -> dict:
    """The API form of an :class:`ledger.log.InclusionProof`, with its checkpoint if one was signed."""
    return {"leaf_index": proof.leaf_index, "tree_size": proof.tree_size,
            "leaf_hash": proof.leaf_hash.hex(), "root_hash": proof.root_hash.hex(),
            "hashes": [h.hex() for h in proof.hashes],
            "checkpoint": checkpoint_json(proof.checkpoint)}


def consistency_proof_json(proof) -> dict:
    """The API form of a :class:`ledger.log.ConsistencyProof`."""
    return {"first": proof.first, "second": proof.second,
            "first_root": proof.first_root.hex(), "second_root": proof.second_root.hex(),
            "hashes": [h.hex() for h in proof.hashes]}
