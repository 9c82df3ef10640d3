"""HTTP endpoints of the ledger (``/api/v1/ledger``), as API.md specifies.

Checkpoints, public keys and proofs are public: anyone holding a checkpoint
must be able to check it. Entries carry payloads, so they need the
``auditor`` or ``admin`` role; creating a checkpoint needs ``admin``.
"""

from __future__ import annotations

import base64

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from marshmallow import validate
from webargs.flaskparser import abort

from ..checkpoint import verifier_key
from ..serialize import checkpoint_json, consistency_proof_json, entry_json, inclusion_proof_json
from .plumbing import Blueprint, QueryInteger, require_roles

MAX_INDEX = 2**53 - 1
MAX_PAGE = 1000

blp = Blueprint("ledger", __name__, url_prefix="/api/v1/ledger",
                description="Tamper-evident ledger: entries, signed checkpoints, proofs")


def _ledger():
    return current_app.extensions["ledger"]


# -- schemas ------------------------------------------------------------------

def _index(minimum: int = 0, **kwargs):
    return QueryInteger(validate=validate.Range(min=minimum, max=MAX_INDEX), **kwargs)


class EntriesQuery(ma.Schema):
    start = _index(data_key="from", load_default=0, metadata={"description": "first seq"})
    limit = QueryInteger(load_default=100, validate=validate.Range(min=1, max=MAX_PAGE),
                              metadata={"description": f"page size, 1..{MAX_PAGE}"})


class InclusionQuery(ma.Schema):
    seq = _index(required=True)
    tree_size = _index(1, load_default=None, allow_none=True,
                       metadata={"description": "default: latest checkpoint covering seq, else current size"})


class ConsistencyQuery(ma.Schema):
    first = _index(1, required=True)
    second = _index(1, load_default=None, allow_none=True,
                    metadata={"description": "default: current size"})


class EntrySchema(ma.Schema):
    seq = ma.fields.Integer()
    ts = ma.fields.String(metadata={"description": "RFC 3339 UTC, microseconds"})
    kind = ma.fields.String()
    actor = ma.fields.String()
    subject = ma.fields.String()
    canonical_b64 = ma.fields.String(metadata={"description": "the exact hashed bytes (RFC 8785)"})
    leaf_hash = ma.fields.String(metadata={"description": "hex SHA-256(0x00 || canonical bytes)"})


class EntryPageSchema(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(EntrySchema))
    next_from = ma.fields.Integer(allow_none=True, metadata={"description": "from= of the next page"})
    tree_size = ma.fields.Integer()


class CheckpointSchema(ma.Schema):
    tree_size = ma.fields.Integer()
    root_hash = ma.fields.String()
    timestamp = ma.fields.String()
    key_id = ma.fields.String()
    note = ma.fields.String(metadata={"description": "C2SP signed note (tlog-checkpoint body)"})


class PublicKeySchema(ma.Schema):
    key_id = ma.fields.String(metadata={"description": "hex SHA-256 of the raw public key"})
    public_key_b64 = ma.fields.String(metadata={"description": "raw 32-byte Ed25519 key"})
    algorithm = ma.fields.String()
    name = ma.fields.String(metadata={"description": "signed-note key name (the origin)"})
    verifier_key = ma.fields.String(metadata={"description": "signed-note verifier key"})
    created = ma.fields.String()
    retired = ma.fields.String(allow_none=True)


class PublicKeyListSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Nested(PublicKeySchema))


class InclusionProofSchema(ma.Schema):
    leaf_index = ma.fields.Integer()
    tree_size = ma.fields.Integer()
    leaf_hash = ma.fields.String()
    root_hash = ma.fields.String()
    hashes = ma.fields.List(ma.fields.String(), metadata={"description": "hex, RFC 9162 order"})
    checkpoint = ma.fields.Nested(CheckpointSchema, allow_none=True)


class ConsistencyProofSchema(ma.Schema):
    first = ma.fields.Integer()
    second = ma.fields.Integer()
    first_root = ma.fields.String()
    second_root = ma.fields.String()
    hashes = ma.fields.List(ma.fields.String(), metadata={"description": "hex, RFC 9162 order"})


# -- views --------------------------------------------------------------------

@blp.route("/checkpoint")
class LatestCheckpoint(MethodView):
    @blp.response(200, CheckpointSchema)
    @blp.errors((404, "no checkpoint has been signed yet"))
    @blp.doc(operationId="getLatestCheckpoint")
    def get(self):
        """Latest signed checkpoint"""
        checkpoint = _ledger().latest_checkpoint()
        if checkpoint is None:
            abort(404, message="no checkpoint has been signed yet")
        return checkpoint_json(checkpoint)


@blp.route("/checkpoints")
class Checkpoints(MethodView):
    @require_roles("admin")
    @blp.response(201, CheckpointSchema)
    @blp.doc(security=[{"bearerAuth": []}], operationId="createCheckpoint")
    def post(self):
        """Sign a checkpoint of the current tree now (admin)"""
        return checkpoint_json(_ledger().create_checkpoint())


@blp.route("/public-keys")
class PublicKeys(MethodView):
    @blp.response(200, PublicKeyListSchema)
    @blp.doc(operationId="listPublicKeys")
    def get(self):
        """Public keys of the ledger, current and retired"""
        return {"keys": [{
            "key_id": k.key_id, "public_key_b64": base64.b64encode(k.public_key).decode(),
            "algorithm": k.algorithm, "name": k.name, "verifier_key": verifier_key(k.name, k.public_key),
            "created": k.created, "retired": k.retired,
        } for k in _ledger().public_keys()]}


@blp.route("/entries")
class Entries(MethodView):
    @require_roles("auditor", "admin")
    @blp.arguments(EntriesQuery, location="query")
    @blp.response(200, EntryPageSchema)
    @blp.doc(security=[{"bearerAuth": []}], operationId="listEntries")
    def get(self, args):
        """Entries in seq order, with their exact canonical bytes"""
        ledger = _ledger()
        entries = ledger.entries(args["start"], args["limit"])
        size = ledger.size()
        next_from = entries[-1].seq + 1 if entries and entries[-1].seq + 1 < size else None
        return {"entries": [entry_json(e) for e in entries], "next_from": next_from, "tree_size": size}


@blp.route("/entries/<int:seq>")
class Entry(MethodView):
    @require_roles("auditor", "admin")
    @blp.response(200, EntrySchema)
    @blp.errors((404, "no entry with this seq"))
    @blp.doc(security=[{"bearerAuth": []}], operationId="getEntry")
    def get(self, seq):
        """One entry"""
        return entry_json(_ledger().entry(seq))


@blp.route("/proofs/inclusion")
class Inclusion(MethodView):
    @blp.arguments(InclusionQuery, location="query")
    @blp.response(200, InclusionProofSchema)
    @blp.errors((400, "seq or tree_size is beyond the tree, or the URL contains a control character"))
    @blp.doc(operationId="getInclusionProof")
    def get(self, args):
        """RFC 9162 inclusion proof of an entry"""
        return inclusion_proof_json(_ledger().inclusion_proof(args["seq"], args["tree_size"]))


@blp.route("/proofs/consistency")
class Consistency(MethodView):
    @blp.arguments(ConsistencyQuery, location="query")
    @blp.response(200, ConsistencyProofSchema)
    @blp.errors((400, "first is above second, or second is beyond the tree, or the URL contains a control "
                      "character"))
    @blp.doc(operationId="getConsistencyProof")
    def get(self, args):
        """RFC 9162 consistency proof between two tree sizes"""
        return consistency_proof_json(_ledger().consistency_proof(args["first"], args["second"]))

