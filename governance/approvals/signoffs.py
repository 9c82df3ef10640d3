"""Sign-offs: approve or reject a model version, and revoke a sign-off.

Separation of duties is enforced here, inside the append transaction, on
principals (people), not tokens:

- whoever registered the version, or submitted any of its evidence, cannot
  sign it off;
- one person cannot sign off two areas of the same version;
- a person's sign-off in an area stands until revoked; they cannot stack a
  second one in the same area.

Each sign-off records the digests of the version's current evidence, so it is
clear what the approver saw. Revocation is a new entry.
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
        for active in _active_by(conn, model, version, principal.name):
            if active.area == area:
                raise ConflictError(
                    f"{principal.name} already signed off {area} for {model}@{version} "
                    f"({active.approval_id}); revoke it first")
            raise SeparationOfDutiesError(
                f"{principal.name} already signed off {active.area} for {model}@{version}; "
                f"one person cannot fill two approval areas")
        evidence = [{"evidence_id": e.evidence_id, "kind": e.kind, "digest": e.digest}
                    for e in current_evidence(conn, model, version)]
        payload = {"model": model, "version": version, "artifact_sha256": row.artifact_sha256,
                   "area": area, "decision": decision, "comment": comment, "evidence": evidence}
        entry = writer.append("approval.decided", principal.name, model_subject(model, version), payload)
        stored = _approval(conn, approval_id_of(entry.seq))
    return {**approval_json(stored), "seq": entry.seq}


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
        entry = writer.append("approval.revoked", principal.name, model_subject(model, version), {
            "approval_id": approval_id, "model": model, "version": version, "area": row.area,
            "reason": reason})
        stored = _approval(conn, approval_id)
    return {**approval_json(stored), "seq": entry.seq}


@projects("approval.decided")
def _decided(conn, entry):
    p = entry.payload
    approval_id = approval_id_of(entry.seq)
    conn.execute(tables.approval.insert(), dict(
        approval_id=approval_id, model_name=p["model"], version=p["version"], area=p["area"],
        decision=p["decision"], comment=p["comment"], evidence=canonical_text(p["evidence"]),
        artifact_sha256=p["artifact_sha256"], actor=entry.actor, decided_at=entry.ts, seq=entry.seq))
    verb = "approved" if p["decision"] == "approve" else "rejected"
    return AuditFacts(f"{p['area']} {verb} {p['model']}@{p['version']} by {entry.actor} ({approval_id})",
                      model=p["model"], version=p["version"])


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


def _active_by(conn, model, version, actor):
    t = tables.approval
    return conn.execute(sa.select(t).where(
        t.c.model_name == model, t.c.version == version, t.c.actor == actor,
        t.c.revoked_seq.is_(None))).all()


def approval_json(row) -> dict:
    """Return the API form of a sign-off row."""
    return {"approval_id": row.approval_id, "model": row.model_name, "version": row.version,
            "role": f"approver:{row.area}", "area": row.area, "decision": row.decision,
            "comment": row.comment, "evidence": json.loads(row.evidence),
            "artifact_sha256": row.artifact_sha256, "actor": row.actor, "decided_at": row.decided_at,
            "seq": row.seq, "revoked": row.revoked_seq is not None, "revoked_at": row.revoked_at,
            "revoked_by": row.revoked_by, "revoke_reason": row.revoke_reason,
            "revoked_seq": row.revoked_seq}


def list_approvals(engine, model: str, version: str, include_revoked: bool = True) -> list[dict]:
    """Return the sign-offs of a version, oldest first."""
    t = tables.approval
    with engine.connect() as conn:
        version_row(conn, model, version)
        query = sa.select(t).where(t.c.model_name == model, t.c.version == version).order_by(t.c.seq)
        if not include_revoked:
            query = query.where(t.c.revoked_seq.is_(None))
        return [approval_json(r) for r in conn.execute(query)]
