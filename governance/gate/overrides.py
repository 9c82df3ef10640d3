"""Break-glass overrides: an admin and an approver force an allow, in writing.

An ``admin`` requests an override for one version and environment with a
written justification and a lifetime (at most a day); a *different* person
holding an approver role, who is not the version's author, confirms it. While
it is confirmed and unexpired, checks of that target are allowed even if rules
fail: the decision lists the failures and the override, and every entry
involved is flagged in the audit trail.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ledger.entry import utc_timestamp

from ..errors import ConflictError, InvalidRequestError, NotFoundError, SeparationOfDutiesError
from ..projections import tables
from ..projections.projector import AuditFacts, projects
from ..registry.models import model_subject, version_row

MAX_MINUTES = 24 * 60


def override_id_of(seq: int) -> str:
    return f"ov-{seq}"


def request_override(ledger, actor: str, model: str, version: str, environment: str,
                     justification: str, expires_in_minutes: int, declared_environments) -> dict:
    """Request a break-glass override (admin) for an environment the policy set declares."""
    if environment not in declared_environments:
        raise InvalidRequestError(
            f"environment {environment!r} is not declared by the policy set; an override cannot "
            f"open it (declared: {', '.join(sorted(declared_environments))})",
            errors={"environment": ["not declared by the policy set"]})
    expires_at = utc_timestamp(datetime.now(timezone.utc) + timedelta(minutes=expires_in_minutes))
    with ledger.transaction() as writer:
        version_row(writer.connection, model, version)
        entry = writer.append("deployment.override.requested", actor, model_subject(model, version), {
            "model": model, "version": version, "environment": environment,
            "justification": justification, "expires_at": expires_at})
        row = _override(writer.connection, override_id_of(entry.seq))
    return override_json(row)


def confirm_override(ledger, principal, override_id: str) -> dict:
    """Confirm an override (an approver who is neither the requester nor the author)."""
    now = utc_timestamp()
    with ledger.transaction() as writer:
        conn = writer.connection
        row = _override(conn, override_id)
        if row is None:
            raise NotFoundError(f"no override {override_id}")
        if row.confirmed_seq is not None:
            raise ConflictError(f"override {override_id} was already confirmed by {row.confirmed_by}")
        if row.expires_at <= now:
            raise ConflictError(f"override {override_id} expired at {row.expires_at}")
        if principal.name == row.requested_by:
            raise SeparationOfDutiesError("the person who requested an override cannot confirm it")
        if principal.name == version_row(conn, row.model_name, row.version).created_by:
            raise SeparationOfDutiesError("the author of the version cannot confirm its override")
        writer.append("deployment.override.confirmed", principal.name,
                      model_subject(row.model_name, row.version),
                      {"override_id": override_id, "model": row.model_name, "version": row.version,
                       "environment": row.environment})
        row = _override(conn, override_id)
    return override_json(row)


@projects("deployment.override.requested")
def _requested(conn, entry):
    p = entry.payload
    conn.execute(tables.override.insert(), dict(
        override_id=override_id_of(entry.seq), model_name=p["model"], version=p["version"],
        environment=p["environment"], justification=p["justification"], requested_by=entry.actor,
        requested_at=entry.ts, requested_seq=entry.seq, expires_at=p["expires_at"]))
    return AuditFacts(f"BREAK-GLASS override {override_id_of(entry.seq)} requested for {p['model']}@"
                      f"{p['version']} in {p['environment']}: {p['justification']}",
                      model=p["model"], version=p["version"], flagged=True)


@projects("deployment.override.confirmed")
def _confirmed(conn, entry):
    p = entry.payload
    conn.execute(sa.update(tables.override).where(
        tables.override.c.override_id == p["override_id"]).values(
        confirmed_by=entry.actor, confirmed_at=entry.ts, confirmed_seq=entry.seq))
    return AuditFacts(f"BREAK-GLASS override {p['override_id']} confirmed by {entry.actor}",
                      model=p["model"], version=p["version"], flagged=True)


def _override(conn, override_id: str):
    return conn.execute(sa.select(tables.override).where(
        tables.override.c.override_id == override_id)).first()


def override_json(row) -> dict:
    """The API form of an override."""
    now = utc_timestamp()
    return {"override_id": row.override_id, "model": row.model_name, "version": row.version,
            "environment": row.environment, "justification": row.justification,
            "requested_by": row.requested_by, "requested_at": row.requested_at,
            "expires_at": row.expires_at, "confirmed_by": row.confirmed_by,
            "confirmed_at": row.confirmed_at, "seq": row.confirmed_seq or row.requested_seq,
            "active": row.confirmed_seq is not None and row.expires_at > now}


def list_overrides(engine, model: str | None = None) -> list[dict]:
    """Overrides, newest first."""
    o = tables.override
    query = sa.select(o).order_by(o.c.requested_seq.desc()).limit(200)
    if model:
        query = query.where(o.c.model_name == model)
    with engine.connect() as conn:
        return [override_json(r) for r in conn.execute(query)]
