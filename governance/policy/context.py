"""The one object policies see: ``ctx``, built from projections.

Everything a rule may look at is here, in plain JSON types, so that the
context can be recorded with the decision (canonical bytes, digest) and
replayed later. Documented field by field in docs/policy.md.

``state_seq`` is the newest ledger seq among the rows the context was built
from (the model, the version, its evidence, sign-offs and overrides, and the
model's deployments); a decision is stale once that number moves. Both come
from one :class:`VersionState` read: seven queries, which on PostgreSQL
travel in one pipeline (one round trip).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
import sqlalchemy as sa

from ledger.driver import select_all
from ledger.entry import parse_timestamp, utc_timestamp

from ..errors import NotFoundError
from ..projections import tables

HISTORY = 20


def _age_days(now: datetime, ts: str) -> float:
    """Age in days, to 1e-5 days (0.864 s).

    Five decimals, not six: no age can then fall in [1e-6, 1e-5), the one
    decade where the canonical encoder's fast path (orjson) steps aside for
    the pure-Python reference, which made a check on sub-second-old evidence
    ~4x slower.
    """
    return round((now - parse_timestamp(ts)).total_seconds() / 86400, 5)


@dataclass(frozen=True)
class VersionState:
    """Every row a decision about one version depends on (one query per table)."""

    model: object
    version: object
    evidence: list
    approvals: list
    datasets: list
    deployments: list
    overrides: list

    def newest_seq(self) -> int:
        """The newest ledger seq among these rows: a decision is stale once it moves."""
        seqs = [self.model.seq, self.version.seq]
        seqs += [r.seq for r in self.evidence]
        seqs += [s for r in self.approvals for s in (r.seq, r.revoked_seq) if s is not None]
        seqs += [r.seq for r in self.deployments]
        seqs += [s for r in self.overrides for s in (r.requested_seq, r.confirmed_seq) if s is not None]
        return max(seqs)


def _state_queries():
    e, a, d, o = tables.evidence, tables.approval, tables.deployment, tables.override
    dv, link = tables.dataset_version, tables.version_dataset
    m, v = tables.model, tables.model_version
    model, version = sa.bindparam("model"), sa.bindparam("version")
    return {
        "model": sa.select(m).where(m.c.name == model),
        "version": sa.select(v).where(v.c.model_name == model, v.c.version == version),
        "evidence": sa.select(e).where(e.c.model_name == model, e.c.version == version).order_by(e.c.seq),
        "approvals": sa.select(a).where(a.c.model_name == model, a.c.version == version).order_by(a.c.seq),
        "datasets": sa.select(dv).join(link, sa.and_(
            link.c.dataset_name == dv.c.dataset_name, link.c.dataset_version == dv.c.version)).where(
            link.c.model_name == model, link.c.version == version).order_by(dv.c.dataset_name, dv.c.version),
        "deployments": sa.select(d).where(d.c.model_name == model).order_by(d.c.seq),
        "overrides": sa.select(o).where(o.c.model_name == model, o.c.version == version).order_by(
            o.c.requested_seq),
    }


_STATE_QUERIES = _state_queries()  # built once: constructing them costs more than running them


def load_state(conn, model: str, version: str) -> VersionState:
    """Read the rows of a version's state; NotFoundError if the version does not exist."""
    rows = select_all(conn, _STATE_QUERIES, {"model": model, "version": version})
    models, versions = rows.pop("model"), rows.pop("version")
    if not models:
        raise NotFoundError(f"no model {model!r}")
    if not versions:
        raise NotFoundError(f"no version {version!r} of model {model!r}")
    return VersionState(model=models[0], version=versions[0], **rows)


def state_seq(conn, model: str, version: str) -> int:
    """Return the newest seq of any entry a decision about this version depends on."""
    return load_state(conn, model, version).newest_seq()


def active_override(conn, model: str, version: str, environment: str, now: str):
    """Return the confirmed, unexpired break-glass override for this target, or None."""
    o = tables.override
    return conn.execute(sa.select(o).where(
        o.c.model_name == model, o.c.version == version, o.c.environment == environment,
        o.c.confirmed_seq.is_not(None), o.c.expires_at > now).order_by(o.c.requested_seq.desc())).first()


def build_context(conn, model: str, version: str, environment: str, now: datetime,
                  rollback: dict | None = None) -> tuple[dict, int]:
    """Return (ctx, state_seq) for a check of ``model@version`` into ``environment`` at ``now``.

    ``rollback`` (``rolls_back``, ``from_version``, ``to_version``) makes it the
    check of a rollback: ``ctx.action`` is then ``"rollback"``, else ``"deploy"``.
    """
    state = load_state(conn, model, version)
    m, v = state.model, state.version
    now_ts = utc_timestamp(now)
    submitters = {r.submitted_by for r in state.evidence}
    current = [r for r in state.evidence if r.superseded_by is None]
    latest_evidence_at = max((r.submitted_at for r in current), default="")
    evidence = []
    for r in current:
        fields = orjson.loads(r.fields)
        expires_at = fields.get("expires_at") if isinstance(fields.get("expires_at"), str) else None
        evidence.append({
            "id": r.evidence_id, "kind": r.kind, "digest": r.digest, "submitted_by": r.submitted_by,
            "submitted_at": r.submitted_at, "age_days": _age_days(now, r.submitted_at),
            "fields": fields, "document_sha256": r.document_sha256,
            "expires_at": expires_at, "expired": bool(expires_at and expires_at <= now_ts),
        })
    approvals, revoked, superseded = [], [], []
    for r in state.approvals:
        if r.revoked_seq is not None:
            revoked.append({"id": r.approval_id, "area": r.area, "decision": r.decision,
                            "actor": r.actor, "revoked_at": r.revoked_at, "revoked_by": r.revoked_by})
            continue
        if r.superseded_by is not None:
            superseded.append({"id": r.approval_id, "area": r.area, "decision": r.decision,
                               "actor": r.actor, "decided_at": r.decided_at,
                               "superseded_by": r.superseded_by})
            continue
        approvals.append({
            "id": r.approval_id, "area": r.area, "decision": r.decision, "actor": r.actor,
            "decided_at": r.decided_at, "age_days": _age_days(now, r.decided_at),
            "after_latest_evidence": r.decided_at > latest_evidence_at,
            "by_author": r.actor == v.created_by, "by_evidence_submitter": r.actor in submitters,
            "evidence_digests": [x["digest"] for x in orjson.loads(r.evidence)],
        })
    datasets = []
    for r in state.datasets:
        pii = orjson.loads(r.pii_columns)
        datasets.append({
            "name": r.dataset_name, "version": r.version, "content_sha256": r.content_sha256,
            "has_digest": len(r.content_sha256) == 64, "source_system": r.source_system,
            "pii_columns": pii, "has_pii": bool(pii), "legal_basis": r.legal_basis,
            "consent_reference": r.consent_reference, "retention_period": r.retention_period,
        })
    live = {}
    for r in state.deployments:
        live[r.environment] = r.version
    override = next((r for r in reversed(state.overrides) if r.environment == environment
                     and r.confirmed_seq is not None and r.expires_at > now_ts), None)
    ctx = {
        "now": now_ts,
        "environment": environment,
        "action": "deploy" if rollback is None else "rollback",
        "rollback": rollback,
        "model": {"name": m.name, "owner": m.owner, "risk_tier": m.risk_tier,
                  "uses_personal_data": m.uses_personal_data,
                  "protected_attributes": orjson.loads(m.protected_attributes),
                  "tags": orjson.loads(m.tags), "intended_use": m.intended_use},
        "version": {"version": v.version, "artifact_sha256": v.artifact_sha256,
                    "artifact_uri": v.artifact_uri, "framework": v.framework,
                    "created_by": v.created_by, "created_at": v.created_at,
                    "metrics": orjson.loads(v.metrics),
                    "training_datasets": [f"{t['name']}@{t['version']}"
                                          for t in orjson.loads(v.training_datasets)]},
        "evidence": evidence,
        "evidence_kinds": sorted({x["kind"] for x in evidence}),
        "latest_evidence_at": latest_evidence_at,
        "approvals": approvals,
        "revoked_approvals": revoked,
        "superseded_approvals": superseded,
        "datasets": datasets,
        "deployments": {
            "live": live,
            "this_version_live_in": sorted(env for env, ver in live.items() if ver == version),
            "history": [{"environment": r.environment, "version": r.version, "action": r.action,
                         "at": r.at} for r in state.deployments[-HISTORY:]],
        },
        "override": None if override is None else {
            "id": override.override_id, "requested_by": override.requested_by,
            "confirmed_by": override.confirmed_by, "justification": override.justification,
            "expires_at": override.expires_at},
    }
    return ctx, state.newest_seq()
