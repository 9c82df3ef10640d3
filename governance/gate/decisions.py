"""Gate decisions: checks, their recorded decisions, replay, and a version's policy status.

A check builds the policy context from projections, evaluates the active
policy set and appends ``deployment.decision.recorded`` — for allow *and*
deny — holding the policy digest, the whole context and its digest, and the
results, so the decision can be replayed exactly. ``deployments.py``
records a deployment only from an allow decision that is still current, and
a rollback only with a decision of its own (``action: rollback``), made and
used in the rollback's transaction.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import orjson
import sqlalchemy as sa

from ledger.canonical import storable_canonical_bytes
from ledger.entry import utc_timestamp

from ..errors import NotFoundError
from ..policy.context import build_context
from ..policy.engine import ENVIRONMENT_RULE, RuleResult, evaluate
from ..projections import tables
from ..projections.projector import AuditFacts, projects
from ..registry.models import model_subject

OVERRIDE_RULE = "break-glass.override"


def decision_id_of(seq: int) -> str:
    """The id of the decision recorded at ``seq``."""
    return f"dc-{seq}"


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
        payload = decision_payload(conn, policy_set, model, version, environment, now, ttl_seconds)
    entry = ledger.append("deployment.decision.recorded", actor, model_subject(model, version), payload)
    return decision_response(decision_id_of(entry.seq), entry.seq, payload)


def decision_payload(conn, policy_set, model: str, version: str, environment: str, now: datetime,
                     ttl_seconds: int, rollback: dict | None = None) -> dict:
    """Build the context on ``conn``, evaluate it, and return the payload of the decision entry.

    ``rollback`` (``rolls_back``, ``from_version``, ``to_version``) makes it the
    decision on a rollback: the context and the payload say so (``action``).
    """
    context, seen_seq = build_context(conn, model, version, environment, now, rollback)
    context_bytes = storable_canonical_bytes(context)
    context = orjson.loads(context_bytes)  # evaluate exactly what is recorded
    decision, results, override_id = _evaluate(policy_set, context)
    return {
        "model": model, "version": version, "environment": environment, "decision": decision,
        "action": context["action"],
        "rolls_back": rollback["rolls_back"] if rollback else None,
        "policy_digest": policy_set.digest,
        "input_digest": hashlib.sha256(context_bytes).hexdigest(),
        "state_seq": seen_seq,
        "expires_at": utc_timestamp(now + timedelta(seconds=ttl_seconds)),
        "override_id": override_id,
        "results": results,
        "context": context,
    }


def decision_response(decision_id: str, seq: int, payload: dict) -> dict:
    """The API form of a decision (one recorded before rollbacks had decisions is a ``deploy``)."""
    return {"decision": payload["decision"], "decision_id": decision_id, "seq": seq,
            "model": payload["model"], "version": payload["version"],
            "environment": payload["environment"], "policy_digest": payload["policy_digest"],
            "input_digest": payload["input_digest"], "expires_at": payload["expires_at"],
            "override_id": payload["override_id"], "action": payload.get("action", "deploy"),
            "rolls_back": payload.get("rolls_back"), "results": payload["results"]}


_DECISION_INSERT = sa.insert(tables.decision)


@projects("deployment.decision.recorded", inserts_late=True)
def _decision_recorded(conn, entry, insert):
    p = entry.payload
    decision_id = decision_id_of(entry.seq)
    row = dict(
        decision_id=decision_id, model_name=p["model"], version=p["version"],
        environment=p["environment"], decision=p["decision"], policy_digest=p["policy_digest"],
        input_digest=p["input_digest"], state_seq=p["state_seq"], override_id=p["override_id"],
        decided_at=entry.ts, expires_at=p["expires_at"], actor=entry.actor, seq=entry.seq,
        deployment_id=None)
    rollback = p.get("action") == "rollback"
    if rollback:  # the rollback appended next in this transaction marks it used
        conn.execute(_DECISION_INSERT, row)
    else:
        # Late (with the entries, before COMMIT): the client learns the decision's
        # id only once it is committed, so nothing in this transaction reads it.
        insert(_DECISION_INSERT, row)
    failed = [r["rule"] for r in p["results"] if r["applicable"] and not r["passed"]]
    reasons = f" ({', '.join(failed)})" if failed else ""
    what = f"rollback of {p['rolls_back']} " if rollback else ""
    return AuditFacts(f"{p['decision']} {what}{p['model']}@{p['version']} to {p['environment']}{reasons}",
                      model=p["model"], version=p["version"], flagged=bool(p["override_id"]))


def decision_row(conn, decision_id: str):
    """The projection row of a recorded decision.

    Raises:
        NotFoundError: no decision has that id.
    """
    row = conn.execute(sa.select(tables.decision).where(tables.decision.c.decision_id == decision_id)).first()
    if row is None:
        raise NotFoundError(f"no decision {decision_id}")
    return row


def _recorded(ledger, decision_id: str):
    """(row, payload of its entry) of a recorded decision."""
    with ledger.store.engine.connect() as conn:
        row = decision_row(conn, decision_id)
    return row, orjson.loads(ledger.entry(row.seq).canonical)["payload"]


def get_decision(ledger, decision_id: str) -> dict:
    """Return a recorded decision with its results."""
    row, payload = _recorded(ledger, decision_id)
    return {**decision_response(decision_id, row.seq, payload), "deployment_id": row.deployment_id}


def replay(ledger, registry, decision_id: str) -> dict:
    """Re-evaluate a recorded decision with its recorded policy set and inputs."""
    row, payload = _recorded(ledger, decision_id)
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
