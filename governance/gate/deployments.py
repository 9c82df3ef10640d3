"""Deployments and rollbacks, recorded through the gate, and what was live when.

A deployment is recorded only from an allow decision (``decisions.py``) that
is still current: not expired, not used, same policy set, and no entry the
decision depended on has been appended since (``state_seq``). A rollback
goes through the gate too: its own decision (``action: rollback``) is made on
the state read under the append lock and recorded; only an allow (by the
rules, or through a confirmed break-glass override) records the rollback, in
the same transaction. Nothing reaches an environment without a recorded allow.

What was live when is answered with inclusion proofs against a signed
checkpoint: the latest one if it covers the entries, else one signed now.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import sqlalchemy as sa

from ledger.entry import utc_timestamp
from ledger.serialize import checkpoint_json, entry_json, inclusion_proof_json

from ..errors import ConflictError, NotFoundError, RollbackDeniedError
from ..policy.context import active_override, state_seq
from ..projections import tables
from ..projections.projector import AuditFacts, projects
from ..registry.models import model_subject
from .decisions import decision_id_of, decision_payload, decision_response, decision_row


def deployment_id_of(seq: int) -> str:
    """The id of the deployment (or rollback) recorded at ``seq``."""
    return f"dp-{seq}"


def _deployment_row(conn, deployment_id: str):
    return conn.execute(sa.select(tables.deployment).where(
        tables.deployment.c.deployment_id == deployment_id)).first()


def _live_row(conn, model: str, environment: str, at: str | None = None):
    d = tables.deployment
    query = sa.select(d).where(d.c.model_name == model, d.c.environment == environment)
    if at is not None:
        query = query.where(d.c.at <= at)
    return conn.execute(query.order_by(d.c.seq.desc()).limit(1)).first()


def record_deployment(ledger, registry, actor: str, decision_id: str, reason: str = "",
                      now: datetime | None = None) -> dict:
    """Record a deployment from a current allow decision (409 otherwise)."""
    policy_set = registry.current()
    now_ts = utc_timestamp(now or datetime.now(timezone.utc))
    with ledger.transaction() as writer:
        conn = writer.connection
        row = decision_row(conn, decision_id)
        if row.decision != "allow":
            raise ConflictError(f"decision {decision_id} was a deny: nothing may be deployed from it")
        if row.deployment_id:
            raise ConflictError(f"decision {decision_id} was already used by {row.deployment_id}; check again")
        if row.expires_at <= now_ts:
            raise ConflictError(f"decision {decision_id} expired at {row.expires_at}; check again")
        if row.policy_digest != policy_set.digest:
            raise ConflictError(f"the policy set changed since decision {decision_id} "
                                f"({row.policy_digest[:12]} -> {policy_set.digest[:12]}); check again")
        current = state_seq(conn, row.model_name, row.version)
        if current != row.state_seq:
            raise ConflictError(f"{row.model_name}@{row.version} changed since decision {decision_id} "
                                f"(entry {current} is newer than what it saw, {row.state_seq}); check again")
        if row.override_id and active_override(conn, row.model_name, row.version,
                                               row.environment, now_ts) is None:
            raise ConflictError(f"the break-glass override {row.override_id} behind {decision_id} expired")
        live = _live_row(conn, row.model_name, row.environment)
        entry = writer.append("deployment.recorded", actor, model_subject(row.model_name, row.version), {
            "decision_id": decision_id, "model": row.model_name, "version": row.version,
            "environment": row.environment, "previous_version": live.version if live else None,
            "policy_digest": row.policy_digest, "override_id": row.override_id, "reason": reason})
        stored = _deployment_row(conn, deployment_id_of(entry.seq))
    return deployment_json(stored)


@projects("deployment.recorded")
def _deployed(conn, entry):
    p = entry.payload
    deployment_id = deployment_id_of(entry.seq)
    conn.execute(tables.deployment.insert(), dict(
        deployment_id=deployment_id, model_name=p["model"], version=p["version"],
        environment=p["environment"], action="deploy", decision_id=p["decision_id"],
        previous_version=p["previous_version"], reason=p["reason"], actor=entry.actor, at=entry.ts,
        seq=entry.seq, flagged=bool(p["override_id"])))
    conn.execute(sa.update(tables.decision).where(
        tables.decision.c.decision_id == p["decision_id"]).values(deployment_id=deployment_id))
    note = f" under override {p['override_id']}" if p["override_id"] else ""
    return AuditFacts(f"{p['model']}@{p['version']} deployed to {p['environment']}{note} "
                      f"(was {p['previous_version'] or 'nothing'})", model=p["model"],
                      version=p["version"], flagged=bool(p["override_id"]))


def rollback(ledger, registry, actor: str, deployment_id: str, reason: str, ttl_seconds: int,
             now: datetime | None = None) -> dict:
    """Roll back the live deployment ``deployment_id`` to the version live before it, through the gate.

    Returns the rollback (API form) with its decision under ``decision``.

    Raises:
        NotFoundError: no such deployment.
        ConflictError: it is not the live one, is itself a rollback, or nothing was live before
            it (nothing recorded).
        RollbackDeniedError: the gate denied the rollback (its decision is recorded).
    """
    policy_set = registry.current()
    now = now or datetime.now(timezone.utc)
    with ledger.transaction() as writer:
        conn = writer.connection
        row = _deployment_row(conn, deployment_id)
        if row is None:
            raise NotFoundError(f"no deployment {deployment_id}")
        live = _live_row(conn, row.model_name, row.environment)
        if live.deployment_id != deployment_id:
            raise ConflictError(f"{deployment_id} is not live in {row.environment} "
                                f"({live.deployment_id} is); only the live deployment can be rolled back")
        if row.action == "rollback":
            raise ConflictError(f"{deployment_id} is itself a rollback; deploy forward instead")
        if row.previous_version is None:
            raise ConflictError(f"nothing was live in {row.environment} before {deployment_id}")
        model, version, environment = row.model_name, row.previous_version, row.environment
        payload = decision_payload(conn, policy_set, model, version, environment, now, ttl_seconds, {
            "rolls_back": deployment_id, "from_version": row.version, "to_version": version})
        decided = writer.append("deployment.decision.recorded", actor, model_subject(model, version), payload)
        decision = decision_response(decision_id_of(decided.seq), decided.seq, payload)
        if decision["decision"] == "allow":
            entry = writer.append("deployment.rolled_back", actor, model_subject(model, version), {
                "rolls_back": deployment_id, "model": model, "environment": environment,
                "from_version": row.version, "to_version": version, "reason": reason,
                "decision_id": decision["decision_id"], "policy_digest": payload["policy_digest"],
                "override_id": payload["override_id"]})
            stored = _deployment_row(conn, deployment_id_of(entry.seq))
    if decision["decision"] != "allow":
        failed = [r["rule"] for r in decision["results"]
                  if r["applicable"] and not r["passed"] and r["severity"] == "deny"]
        raise RollbackDeniedError(
            f"the gate denied the rollback of {deployment_id} to {model}@{version} in {environment} "
            f"(decision {decision['decision_id']}): {', '.join(failed)}", errors={"decision": decision})
    return {**deployment_json(stored), "decision": decision}


@projects("deployment.rolled_back")
def _rolled_back(conn, entry):
    p = entry.payload
    deployment_id = deployment_id_of(entry.seq)
    # entries recorded before rollbacks went through the gate have no decision
    decision_id, override_id = p.get("decision_id"), p.get("override_id")
    conn.execute(tables.deployment.insert(), dict(
        deployment_id=deployment_id, model_name=p["model"], version=p["to_version"],
        environment=p["environment"], action="rollback", decision_id=decision_id,
        previous_version=p["from_version"], rolls_back=p["rolls_back"], reason=p["reason"],
        actor=entry.actor, at=entry.ts, seq=entry.seq, flagged=bool(override_id)))
    conn.execute(sa.update(tables.deployment).where(
        tables.deployment.c.deployment_id == p["rolls_back"]).values(rolled_back_by=deployment_id))
    if decision_id is not None:
        conn.execute(sa.update(tables.decision).where(
            tables.decision.c.decision_id == decision_id).values(deployment_id=deployment_id))
    note = f" under override {override_id}" if override_id else ""
    return AuditFacts(f"{p['model']} in {p['environment']} rolled back from {p['from_version']} to "
                      f"{p['to_version']}{note}: {p['reason']}", model=p["model"], version=p["to_version"],
                      flagged=bool(override_id))


def deployment_json(row) -> dict:
    """The API form of a deployment row."""
    return {"deployment_id": row.deployment_id, "model": row.model_name, "version": row.version,
            "environment": row.environment, "action": row.action, "decision_id": row.decision_id,
            "previous_version": row.previous_version, "rolls_back": row.rolls_back,
            "rolled_back_by": row.rolled_back_by, "reason": row.reason, "actor": row.actor,
            "at": row.at, "seq": row.seq, "flagged": row.flagged}


def history(engine, model: str | None = None, environment: str | None = None, limit: int = 100,
            before_seq: int | None = None) -> list[dict]:
    """Deployments and rollbacks, newest first."""
    d = tables.deployment
    query = sa.select(d).order_by(d.c.seq.desc()).limit(limit)
    if model:
        query = query.where(d.c.model_name == model)
    if environment:
        query = query.where(d.c.environment == environment)
    if before_seq is not None:
        query = query.where(d.c.seq < before_seq)
    with engine.connect() as conn:
        return [deployment_json(r) for r in conn.execute(query)]


def _proved(ledger, seq: int, checkpoint) -> dict:
    """The entry with its inclusion proof in the tree of ``checkpoint`` (naming it)."""
    if checkpoint is None:
        proof = ledger.inclusion_proof(seq)
    else:
        proof = dataclasses.replace(ledger.inclusion_proof(seq, checkpoint.tree_size), checkpoint=checkpoint)
    return {"entry": entry_json(ledger.entry(seq)), "inclusion_proof": inclusion_proof_json(proof)}


def live_at(ledger, model: str, environment: str, at: datetime) -> dict:
    """Which version of ``model`` was live in ``environment`` at ``at``, with the proving entries.

    ``established_by`` is the deployment (or rollback) entry that made it
    live; ``next_change`` the first later deployment entry for the same model
    and environment (timestamped after ``at``), or None if there was none in
    the first ``tree_size`` entries. Entry timestamps never decrease along the
    ledger, so no change can sit between the two; a verifier checks both
    inclusion proofs and, to rule out a hidden change, the entries in between.
    Both proofs are against ``checkpoint``, a signed checkpoint whose tree
    holds them and the first ``tree_size`` entries.
    """
    at_ts = utc_timestamp(at)
    d = tables.deployment
    with ledger.store.engine.connect() as conn:
        # read first: every change among these entries is committed, so the queries see it
        size = ledger.store.size(conn)
        if conn.execute(sa.select(tables.model.c.name).where(tables.model.c.name == model)).first() is None:
            raise NotFoundError(f"no model {model!r}")
        live = _live_row(conn, model, environment, at_ts)
        later = conn.execute(sa.select(d).where(
            d.c.model_name == model, d.c.environment == environment, d.c.at > at_ts
        ).order_by(d.c.seq).limit(1)).first()
    proved = [r.seq for r in (live, later) if r is not None]
    checkpoint = ledger.checkpoint_covering(max(proved)) if proved else ledger.latest_checkpoint()
    return {
        "model": model, "environment": environment, "at": at_ts,
        "version": live.version if live else None,
        "deployment": deployment_json(live) if live else None,
        "established_by": _proved(ledger, live.seq, checkpoint) if live else None,
        "next_change": _proved(ledger, later.seq, checkpoint) if later else None,
        "tree_size": min(size, checkpoint.tree_size) if checkpoint else size,
        "checkpoint": checkpoint_json(checkpoint),
    }
