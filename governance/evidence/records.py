"""Evidence bound to one model version.

Evidence is typed (``EVIDENCE_KINDS``); each submission is one
``evidence.submitted`` entry carrying the version's artifact digest, so a
piece of evidence can never be mistaken for evidence about another artifact.
Evidence is never edited: a correction is a new submission that
``supersedes`` the old one (same version, same kind), and the old one stays in
the ledger. An evidence's ``digest`` is its entry's leaf hash; approvals
record the digests they saw.

Documents are stored apart (``documents.py``): only their digest, size and
type go into the evidence entry.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from ..errors import ConflictError, InvalidRequestError, NotFoundError
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects
from ..registry.models import version_row

EVIDENCE_KINDS = ("privacy_assessment", "bias_report", "explainability_report",
                  "validation_report", "model_card")


def evidence_subject(model: str, version: str) -> str:
    """Return the ledger subject of evidence about a model version."""
    return f"model:{model}@{version}"


def submit_evidence(ledger, actor: str, model: str, version: str, kind: str, fields: dict,
                    document_sha256: str | None = None, supersedes: str | None = None) -> dict:
    """Record evidence about a model version; return it with its id and seq."""
    if kind not in EVIDENCE_KINDS:
        raise InvalidRequestError(f"unknown evidence kind {kind!r}")
    with ledger.transaction() as writer:
        conn = writer.connection
        row = version_row(conn, model, version)
        document = None
        if document_sha256:
            doc = conn.execute(sa.select(tables.document.c.size, tables.document.c.media_type)
                               .where(tables.document.c.sha256 == document_sha256)).first()
            if doc is None:
                raise InvalidRequestError(f"no document {document_sha256}: upload it first",
                                          errors={"document_sha256": ["not uploaded"]})
            document = {"sha256": document_sha256, "size": doc.size, "media_type": doc.media_type}
        if supersedes:
            old = conn.execute(sa.select(tables.evidence).where(
                tables.evidence.c.evidence_id == supersedes)).first()
            if old is None or (old.model_name, old.version) != (model, version):
                raise NotFoundError(f"no evidence {supersedes} for {model}@{version}")
            if old.kind != kind:
                raise InvalidRequestError(f"evidence {supersedes} is a {old.kind}, not a {kind}")
            if old.superseded_by:
                raise ConflictError(f"evidence {supersedes} was already superseded by {old.superseded_by}")
        payload = {"model": model, "version": version, "artifact_sha256": row.artifact_sha256,
                   "kind": kind, "fields": fields, "document": document, "supersedes": supersedes}
        entry = writer.append("evidence.submitted", actor, evidence_subject(model, version), payload)
        stored = _evidence_by_id(conn, evidence_id_of(entry.seq))
    return {**evidence_json(stored), "seq": entry.seq}


def evidence_id_of(seq: int) -> str:
    """Return the id of the evidence recorded at ``seq``."""
    return f"ev-{seq}"


@projects("evidence.submitted")
def _evidence_submitted(conn, entry):
    p = entry.payload
    evidence_id = evidence_id_of(entry.seq)
    document = p["document"] or {}
    conn.execute(tables.evidence.insert(), dict(
        evidence_id=evidence_id, model_name=p["model"], version=p["version"], kind=p["kind"],
        fields=canonical_text(p["fields"]), artifact_sha256=p["artifact_sha256"],
        document_sha256=document.get("sha256"), digest=entry.leaf_hash, supersedes=p["supersedes"],
        submitted_at=entry.ts, submitted_by=entry.actor, seq=entry.seq))
    if p["supersedes"]:
        conn.execute(sa.update(tables.evidence).where(
            tables.evidence.c.evidence_id == p["supersedes"]).values(superseded_by=evidence_id))
    note = f", superseding {p['supersedes']}" if p["supersedes"] else ""
    return AuditFacts(f"{p['kind']} {evidence_id} submitted for {p['model']}@{p['version']}{note}",
                      model=p["model"], version=p["version"])


def _evidence_by_id(conn, evidence_id: str):
    return conn.execute(sa.select(tables.evidence).where(
        tables.evidence.c.evidence_id == evidence_id)).first()


def evidence_json(row) -> dict:
    """Return the API form of an evidence row."""
    return {"evidence_id": row.evidence_id, "model": row.model_name, "version": row.version,
            "kind": row.kind, "fields": json.loads(row.fields), "artifact_sha256": row.artifact_sha256,
            "document_sha256": row.document_sha256, "digest": row.digest,
            "supersedes": row.supersedes, "superseded_by": row.superseded_by,
            "current": row.superseded_by is None, "submitted_at": row.submitted_at,
            "submitted_by": row.submitted_by, "seq": row.seq}


def list_evidence(engine, model: str, version: str, kind: str | None = None,
                  include_superseded: bool = True) -> list[dict]:
    """Return the evidence of a version, oldest first."""
    t = tables.evidence
    with engine.connect() as conn:
        version_row(conn, model, version)
        query = sa.select(t).where(t.c.model_name == model, t.c.version == version).order_by(t.c.seq)
        if kind:
            query = query.where(t.c.kind == kind)
        if not include_superseded:
            query = query.where(t.c.superseded_by.is_(None))
        return [evidence_json(r) for r in conn.execute(query)]


def current_evidence(conn, model: str, version: str) -> list:
    """Return the evidence rows of a version that are not superseded."""
    t = tables.evidence
    return conn.execute(sa.select(t).where(
        t.c.model_name == model, t.c.version == version, t.c.superseded_by.is_(None)
    ).order_by(t.c.seq)).all()


def evidence_submitters(conn, model: str, version: str) -> set[str]:
    """Return everyone who submitted evidence for a version (superseded included)."""
    t = tables.evidence
    return {r.submitted_by for r in conn.execute(sa.select(t.c.submitted_by).where(
        t.c.model_name == model, t.c.version == version))}
