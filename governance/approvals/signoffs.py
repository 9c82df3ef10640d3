"""Sign-offs: approve or reject a model version, and revoke a sign-off.

Separation of duties is enforced here, inside the append transaction, on
principals (people), not tokens:

- whoever registered the version, or submitted any of its evidence, cannot
  sign it off;
- one person cannot sign off two areas of the same version.

Each sign-off records the digests of the version's current evidence, so it is
clear what the approver saw. A person's sign-off in an area stands until they
sign off that area again or it is revoked (a new entry either way). Signing
off again supersedes the standing sign-off when it says something new: the
evidence changed since (typically after new evidence arrived, when the gate
no longer counts the old one), or the decision did. Both stay in the ledger;
the old one is marked ``superseded_by``. The same sign-off sent again (same
evidence, decision and comment) is an idempotent repeat answered with the
standing one; another comment alone is a conflict (409), so that no comment
is silently dropped.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from ..errors import ConflictError, NotFoundError, PermissionDeniedError, SeparationOfDutiesError
from ..evidence.records import current_evidence, evidence_submitters
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects
from ..registry.models import model_subject, version_row

DECISIONS = ("approve", "reject")


def normalise_area(role: str) -> str:
    """Accept ``privacy`` or ``approver:privacy``; return ``privacy``."""
    return role.split(":", 1)[1] if role.startswith("approver:") else role


def approval_id_of(seq: int) -> str:
    """Return the id of the sign-off recorded at ``seq``."""
    return f"ap-{seq}"


def decide(ledger, principal, model: str, version: str, role: str, decision: str,
           comment: str) -> dict:
    """Record an approve/reject decision by ``principal`` in the area of ``role``."""
    area = normalise_area(role)
    if area not in principal.approver_areas():
        raise PermissionDeniedError(f"{principal.name} does not hold approver:{area}")
    with ledger.transaction() as writer:
        conn = writer.connection
        row = version_row(conn, model, version)
        if row.created_by == principal.name:
            raise SeparationOfDutiesError(
                f"{principal.name} registered {model}@{version} and cannot sign it off")
        if principal.name in evidence_submitters(conn, model, version):
            raise SeparationOfDutiesError(
                f"{principal.name} submitted evidence for {model}@{version} and cannot sign it off")
        standing = None
        for active in _standing_by(conn, model, version, principal.name):
            if active.area != area:
                raise SeparationOfDutiesError(
                    f"{principal.name} already signed off {active.area} for {model}@{version}; "
                    f"one person cannot fill two approval areas")
            standing = active
        evidence = [{"evidence_id": e.evidence_id, "kind": e.kind, "digest": e.digest}
                    for e in current_evidence(conn, model, version)]
        if standing is not None and _same_evidence(standing, evidence) and standing.decision == decision:
            if standing.comment == comment:
                return {**approval_json(standing), "created": False}
            raise ConflictError(
                f"{principal.name} already {_verb(decision)} {area} for {model}@{version} on the same "
                f"evidence ({standing.approval_id}); a new sign-off needs new evidence or another "
                f"decision, or revoke it first")
        payload = {"model": model, "version": version, "artifact_sha256": row.artifact_sha256,
                   "area": area, "decision": decision, "comment": comment, "evidence": evidence,
                   "supersedes": standing.approval_id if standing is not None else None}
        entry = writer.append("approval.decided", principal.name, model_subject(model, version), payload)
        stored = _approval(conn, approval_id_of(entry.seq))
    return {**approval_json(stored), "seq": entry.seq, "created": True}


def _same_evidence(row, evidence: list[dict]) -> bool:
    """Did the sign-off ``row`` see exactly these evidence digests?"""
    return sorted(e["digest"] for e in json.loads(row.evidence)) == sorted(e["digest"] for e in evidence)


def _verb(decision: str) -> str:
    return "approved" if decision == "approve" else "rejected"


def revoke(ledger, principal, model: str, version: str, approval_id: str, reason: str) -> dict:
    """Revoke a sign-off (by the person who gave it, or an admin)."""
    with ledger.transaction() as writer:
        conn = writer.connection
        version_row(conn, model, version)
        row = _approval(conn, approval_id)
        if row is None or (row.model_name, row.version) != (model, version):
            raise NotFoundError(f"no sign-off {approval_id} for {model}@{version}")
        if row.actor != principal.name and "admin" not in principal.roles:
            raise PermissionDeniedError(f"only {row.actor} or an admin can revoke {approval_id}")
        if row.revoked_seq is not None:
            raise ConflictError(f"{approval_id} was already revoked at seq {row.revoked_seq}")
        if row.superseded_by is not None:
            raise ConflictError(f"{approval_id} was superseded by {row.superseded_by}; revoke that one instead")
        entry = writer.append("approval.revoked", principal.name, model_subject(model, version), {
            "approval_id": approval_id, "model": model, "version": version, "area": row.area,
            "reason": reason})
        stored = _approval(conn, approval_id)
    return {**approval_json(stored), "seq": entry.seq}


@projects("approval.decided")
def _decided(conn, entry):
    p = entry.payload
    approval_id = approval_id_of(entry.seq)
    supersedes = p.get("supersedes")  # absent from entries recorded before sign-offs could supersede
    conn.execute(tables.approval.insert(), dict(
        approval_id=approval_id, model_name=p["model"], version=p["version"], area=p["area"],
        decision=p["decision"], comment=p["comment"], evidence=canonical_text(p["evidence"]),
        artifact_sha256=p["artifact_sha256"], actor=entry.actor, decided_at=entry.ts, seq=entry.seq,
        supersedes=supersedes))
    if supersedes is not None:
        conn.execute(sa.update(tables.approval).where(
            tables.approval.c.approval_id == supersedes).values(superseded_by=approval_id))
    note = f", superseding {supersedes}" if supersedes else ""
    return AuditFacts(f"{p['area']} {_verb(p['decision'])} {p['model']}@{p['version']} by {entry.actor} "
                      f"({approval_id}{note})", model=p["model"], version=p["version"])


@projects("approval.revoked")
def _revoked(conn, entry):
    p = entry.payload
    conn.execute(sa.update(tables.approval).where(
        tables.approval.c.approval_id == p["approval_id"]).values(
        revoked_at=entry.ts, revoked_by=entry.actor, revoke_reason=p["reason"], revoked_seq=entry.seq))
    return AuditFacts(f"sign-off {p['approval_id']} ({p['area']}) revoked by {entry.actor}",
                      model=p["model"], version=p["version"])


def _approval(conn, approval_id: str):
    return conn.execute(sa.select(tables.approval).where(
        tables.approval.c.approval_id == approval_id)).first()


def _standing_by(conn, model, version, actor):
    """The sign-offs of ``actor`` on the version that are neither revoked nor superseded."""
    t = tables.approval
    return conn.execute(sa.select(t).where(
        t.c.model_name == model, t.c.version == version, t.c.actor == actor,
        t.c.revoked_seq.is_(None), t.c.superseded_by.is_(None))).all()


def approval_json(row) -> dict:
    """Return the API form of a sign-off row."""
    return {"approval_id": row.approval_id, "model": row.model_name, "version": row.version,
            "role": f"approver:{row.area}", "area": row.area, "decision": row.decision,
            "comment": row.comment, "evidence": json.loads(row.evidence),
            "artifact_sha256": row.artifact_sha256, "actor": row.actor, "decided_at": row.decided_at,
            "seq": row.seq, "revoked": row.revoked_seq is not None, "revoked_at": row.revoked_at,
            "revoked_by": row.revoked_by, "revoke_reason": row.revoke_reason,
            "revoked_seq": row.revoked_seq, "supersedes": row.supersedes,
            "superseded": row.superseded_by is not None, "superseded_by": row.superseded_by}


def list_approvals(engine, model: str, version: str, include_revoked: bool = True) -> list[dict]:
    """Return the sign-offs of a version, oldest first.

    ``include_revoked=False`` keeps only the standing ones: neither revoked
    nor superseded.
    """
    t = tables.approval
    with engine.connect() as conn:
        version_row(conn, model, version)
        query = sa.select(t).where(t.c.model_name == model, t.c.version == version).order_by(t.c.seq)
        if not include_revoked:
            query = query.where(t.c.revoked_seq.is_(None), t.c.superseded_by.is_(None))
        return [approval_json(r) for r in conn.execute(query)]
