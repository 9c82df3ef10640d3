"""The deployment gate: checks, recorded decisions, deployments, rollbacks.

A check builds the policy context from projections, evaluates the active
policy set and appends ``deployment.decision.recorded`` — for allow *and*
deny — holding the policy digest, the whole context and its digest, and the
results, so the decision can be replayed exactly. A deployment is recorded
only from an allow decision that is still current: not expired, not used,
same policy set, and no entry the decision depended on has been appended
since (``state_seq``). Nothing reaches an environment without a recorded
allow.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import orjson
import sqlalchemy as sa

from ledger.canonical import storable_canonical_bytes
from ledger.entry import utc_timestamp

from . import tables
from .errors import ConflictError, NotFoundError
from .policy_context import active_override, build_context, state_seq
from .policy_engine import ENVIRONMENT_RULE, RuleResult, evaluate
from .projections import AuditFacts, projects
from .registry import model_subject

OVERRIDE_RULE = "break-glass.override"


def decision_id_of(seq: int) -> str:
    return f"dc-{seq}"


def deployment_id_of(seq: int) -> str:
    return f"dp-{seq}"


def _evaluate(policy_set, context: dict) -> tuple[str, list[dict], str | None]:
    """Evaluate, then apply a confirmed break-glass override if one is needed and allowed.

    Returns the decision, the results and the id of the override it used
    (None when the rules allowed on their own). An override never opens an
    environment the policy set does not declare.
    """
    evaluation = evaluate(policy_set, context)
    results = evaluation.results_json()
    decision = evaluation.decision
    override = context.get("override")
    undeclared = any(r["rule"] == ENVIRONMENT_RULE and not r["passed"] for r in results)
    if not (override and decision == "deny" and not undeclared):
        return decision, results, None
    decision = "allow"
    results.append(RuleResult(
        OVERRIDE_RULE, "break-glass", "deny", True, True,
        f"break-glass override {override['id']} by {override['requested_by']} and "
        f"{override['confirmed_by']} until {override['expires_at']}: {override['justification']}",
    ).as_json())
    return decision, results, override["id"]


def check(ledger, registry, actor: str, model: str, version: str, environment: str,
          ttl_seconds: int, now: datetime | None = None) -> dict:
    """Evaluate and record a decision for deploying ``model@version`` to ``environment``."""
    policy_set = registry.current()
    now = now or datetime.now(timezone.utc)
    with ledger.store.engine.connect() as conn:
        context, seen_seq = build_context(conn, model, version, environment, now)
    context_bytes = storable_canonical_bytes(context)
    context = orjson.loads(context_bytes)  # evaluate exactly what is recorded
    decision, results, override_id = _evaluate(policy_set, context)
    payload = {
        "model": model, "version": version, "environment": environment, "decision": decision,
        "policy_digest": policy_set.digest,
        "input_digest": hashlib.sha256(context_bytes).hexdigest(),
        "state_seq": seen_seq,
        "expires_at": utc_timestamp(now + timedelta(seconds=ttl_seconds)),
        "override_id": override_id,
        "results": results,
        "context": context,
    }
    entry = ledger.append("deployment.decision.recorded", actor, model_subject(model, version), payload)
    return decision_response(decision_id_of(entry.seq), entry.seq, payload)


def decision_response(decision_id: str, seq: int, payload: dict) -> dict:
    """The API form of a decision."""
    return {"decision": payload["decision"], "decision_id": decision_id, "seq": seq,
            "model": payload["model"], "version": payload["version"],
            "environment": payload["environment"], "policy_digest": payload["policy_digest"],
            "input_digest": payload["input_digest"], "expires_at": payload["expires_at"],
            "override_id": payload["override_id"], "results": payload["results"]}


_DECISION_INSERT = sa.insert(tables.decision)


@projects("deployment.decision.recorded", inserts_late=True)
def _decision_recorded(conn, entry, insert):
    p = entry.payload
    decision_id = decision_id_of(entry.seq)
    # Late (with the entries, before COMMIT): the client learns the decision's
    # id only once it is committed, so nothing in this transaction reads it.
    insert(_DECISION_INSERT, dict(
        decision_id=decision_id, model_name=p["model"], version=p["version"],
        environment=p["environment"], decision=p["decision"], policy_digest=p["policy_digest"],
        input_digest=p["input_digest"], state_seq=p["state_seq"], override_id=p["override_id"],
        decided_at=entry.ts, expires_at=p["expires_at"], actor=entry.actor, seq=entry.seq,
        deployment_id=None))
    failed = [r["rule"] for r in p["results"] if r["applicable"] and not r["passed"]]
    reasons = f" ({', '.join(failed)})" if failed else ""
    return AuditFacts(f"{p['decision']} {p['model']}@{p['version']} to {p['environment']}{reasons}",
                      model=p["model"], version=p["version"], flagged=bool(p["override_id"]))


def get_decision(ledger, decision_id: str) -> dict:
    """Return a recorded decision with its results."""
    with ledger.store.engine.connect() as conn:
        row = conn.execute(sa.select(tables.decision).where(
            tables.decision.c.decision_id == decision_id)).first()
    if row is None:
        raise NotFoundError(f"no decision {decision_id}")
    payload = orjson.loads(ledger.entry(row.seq).canonical)["payload"]
    return {**decision_response(decision_id, row.seq, payload), "deployment_id": row.deployment_id}


def replay(ledger, registry, decision_id: str) -> dict:
    """Re-evaluate a recorded decision with its recorded policy set and inputs."""
    with ledger.store.engine.connect() as conn:
        row = conn.execute(sa.select(tables.decision).where(
            tables.decision.c.decision_id == decision_id)).first()
    if row is None:
        raise NotFoundError(f"no decision {decision_id}")
    payload = orjson.loads(ledger.entry(row.seq).canonical)["payload"]
    context_digest = hashlib.sha256(storable_canonical_bytes(payload["context"])).hexdigest()
    policy_set = registry.by_digest(payload["policy_digest"])
    decision, results, _ = _evaluate(policy_set, payload["context"])
    differences = []
    if context_digest != payload["input_digest"]:
        differences.append(f"recorded inputs hash to {context_digest}, not {payload['input_digest']}")
    if decision != payload["decision"]:
        differences.append(f"decision: recorded {payload['decision']}, replayed {decision}")
    recorded = {r["rule"]: r for r in payload["results"]}
    replayed = {r["rule"]: r for r in results}
    for rule in sorted(set(recorded) | set(replayed)):
        if recorded.get(rule) != replayed.get(rule):
            differences.append(f"rule {rule}: recorded {recorded.get(rule)}, replayed {replayed.get(rule)}")
    return {"decision_id": decision_id, "seq": row.seq, "matches": not differences,
            "policy_digest": payload["policy_digest"], "input_digest": payload["input_digest"],
            "recorded_decision": payload["decision"], "replayed_decision": decision,
            "differences": differences, "results": results}


# -- deployments ----------------------------------------------------------------

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
        row = conn.execute(sa.select(tables.decision).where(
            tables.decision.c.decision_id == decision_id)).first()
        if row is None:
            raise NotFoundError(f"no decision {decision_id}")
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
        stored = conn.execute(sa.select(tables.deployment).where(
            tables.deployment.c.deployment_id == deployment_id_of(entry.seq))).first()
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


def rollback(ledger, actor: str, deployment_id: str, reason: str) -> dict:
    """Roll back the live deployment ``deployment_id`` to the version live before it."""
    with ledger.transaction() as writer:
        conn = writer.connection
        row = conn.execute(sa.select(tables.deployment).where(
            tables.deployment.c.deployment_id == deployment_id)).first()
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
        entry = writer.append("deployment.rolled_back", actor,
                              model_subject(row.model_name, row.previous_version), {
                                  "rolls_back": deployment_id, "model": row.model_name,
                                  "environment": row.environment, "from_version": row.version,
                                  "to_version": row.previous_version, "reason": reason})
        stored = conn.execute(sa.select(tables.deployment).where(
            tables.deployment.c.deployment_id == deployment_id_of(entry.seq))).first()
    return deployment_json(stored)


@projects("deployment.rolled_back")
def _rolled_back(conn, entry):
    p = entry.payload
    deployment_id = deployment_id_of(entry.seq)
    conn.execute(tables.deployment.insert(), dict(
        deployment_id=deployment_id, model_name=p["model"], version=p["to_version"],
        environment=p["environment"], action="rollback", decision_id=None,
        previous_version=p["from_version"], rolls_back=p["rolls_back"], reason=p["reason"],
        actor=entry.actor, at=entry.ts, seq=entry.seq, flagged=False))
    conn.execute(sa.update(tables.deployment).where(
        tables.deployment.c.deployment_id == p["rolls_back"]).values(rolled_back_by=deployment_id))
    return AuditFacts(f"{p['model']} in {p['environment']} rolled back from {p['from_version']} to "
                      f"{p['to_version']}: {p['reason']}", model=p["model"], version=p["to_version"])


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


def _proved(ledger, seq: int) -> dict:
    from ledger.api import checkpoint_json, entry_json

    proof = ledger.inclusion_proof(seq)
    return {"entry": entry_json(ledger.entry(seq)),
            "inclusion_proof": {"leaf_index": proof.leaf_index, "tree_size": proof.tree_size,
                                "leaf_hash": proof.leaf_hash.hex(), "root_hash": proof.root_hash.hex(),
                                "hashes": [h.hex() for h in proof.hashes],
                                "checkpoint": checkpoint_json(proof.checkpoint)}}


def live_at(ledger, model: str, environment: str, at: datetime) -> dict:
    """Which version of ``model`` was live in ``environment`` at ``at``, with the proving entries.

    ``established_by`` is the deployment (or rollback) entry that made it
    live; ``next_change`` the first later deployment entry for the same model
    and environment (timestamped after ``at``), or None if there was none up
    to ``tree_size``. Entry timestamps never decrease along the ledger, so no
    change can sit between the two; a verifier checks both inclusion proofs
    and, to rule out a hidden change, the entries in between.
    """
    at_ts = utc_timestamp(at)
    d = tables.deployment
    with ledger.store.engine.connect() as conn:
        if conn.execute(sa.select(tables.model.c.name).where(tables.model.c.name == model)).first() is None:
            raise NotFoundError(f"no model {model!r}")
        live = _live_row(conn, model, environment, at_ts)
        later = conn.execute(sa.select(d).where(
            d.c.model_name == model, d.c.environment == environment, d.c.at > at_ts
        ).order_by(d.c.seq).limit(1)).first()
    size = ledger.size()
    return {
        "model": model, "environment": environment, "at": at_ts,
        "version": live.version if live else None,
        "deployment": deployment_json(live) if live else None,
        "established_by": _proved(ledger, live.seq) if live else None,
        "next_change": _proved(ledger, later.seq) if later else None,
        "tree_size": size,
    }


def policy_status(ledger, registry, model: str, version: str, now: datetime | None = None) -> dict:
    """Evaluate (without recording) the version against every declared environment."""
    policy_set = registry.current()
    now = now or datetime.now(timezone.utc)
    environments = {}
    with ledger.store.engine.connect() as conn:
        for environment in sorted(policy_set.environments):
            context, _ = build_context(conn, model, version, environment, now)
            decision, results, _ = _evaluate(policy_set, orjson.loads(storable_canonical_bytes(context)))
            environments[environment] = {
                "decision": decision,
                "failed": [r["rule"] for r in results if r["applicable"] and not r["passed"]]}
    return {"policy_digest": policy_set.digest, "evaluated_at": utc_timestamp(now),
            "recorded": False, "environments": environments}
