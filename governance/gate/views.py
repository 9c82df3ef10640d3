"""Read models that combine several projections for one screen or response.

The detail of a model version (its evidence, sign-offs, deployments and
policy status) and break-glass overrides with the entries behind them.
"""

from __future__ import annotations

import sqlalchemy as sa

from ledger.entry import utc_timestamp

from ..approvals import signoffs
from ..evidence import records
from ..projections import tables
from ..registry import models
from . import decisions, deployments, overrides


def version_detail(engine, ledger, policies, name: str, version: str) -> dict:
    """A version with its evidence, sign-offs, deployments and current policy status."""
    detail = models.get_version(engine, name, version)
    detail["evidence"] = records.list_evidence(engine, name, version)
    detail["approvals"] = signoffs.list_approvals(engine, name, version)
    detail["deployments"] = [d for d in deployments.history(engine, model=name, limit=500)
                             if d["version"] == version]
    detail["policy_status"] = decisions.policy_status(ledger, policies, name, version)
    return detail


# -- break-glass overrides, for the web pages --------------------------------------

def override_status(override: dict, deployments: list, now: str | None = None) -> list[str]:
    """Labels of an override: ``used`` if a deployment went through it, then one of
    ``expired``, ``active`` (confirmed) or ``pending`` (waiting for an approver)."""
    labels = ["used"] if deployments else []
    if override["expires_at"] <= (now or utc_timestamp()):
        labels.append("expired")
    else:
        labels.append("active" if override["confirmed_by"] else "pending")
    return labels


def _activity(conn, override_ids) -> dict[str, dict]:
    """The ledger entries each override is behind: request, confirmation, decisions, deployments."""
    o, dc, dp = tables.override, tables.decision, tables.deployment
    found = {r.override_id: {"requested_seq": r.requested_seq, "confirmed_seq": r.confirmed_seq,
                             "decisions": [], "deployments": []}
             for r in conn.execute(sa.select(o.c.override_id, o.c.requested_seq, o.c.confirmed_seq)
                                   .where(o.c.override_id.in_(override_ids)))}
    for r in conn.execute(sa.select(dc.c.override_id, dc.c.decision_id, dc.c.seq)
                          .where(dc.c.override_id.in_(override_ids)).order_by(dc.c.seq)):
        found[r.override_id]["decisions"].append({"decision_id": r.decision_id, "seq": r.seq})
    for r in conn.execute(sa.select(dc.c.override_id, dp.c.deployment_id, dp.c.seq)
                          .join(dc, dc.c.decision_id == dp.c.decision_id)
                          .where(dc.c.override_id.in_(override_ids)).order_by(dp.c.seq)):
        found[r.override_id]["deployments"].append({"deployment_id": r.deployment_id, "seq": r.seq})
    return found


def override_details(engine, model: str | None = None) -> list[dict]:
    """Overrides, newest first, each with its entries and status labels."""
    listed = overrides.list_overrides(engine, model)
    with engine.connect() as conn:
        return list(_described(conn, listed).values())


def _described(conn, listed: list[dict]) -> dict[str, dict]:
    """Override id -> the override (API form) with its entries and status labels, in order."""
    activity = _activity(conn, [o["override_id"] for o in listed])
    now = utc_timestamp()
    return {o["override_id"]: {**o, **activity[o["override_id"]], "status": override_status(
        o, activity[o["override_id"]]["deployments"], now)} for o in listed}


def overrides_behind(engine, seqs) -> dict[int, dict]:
    """Map the seq of each entry made by or through a break-glass override to that override.

    Such entries are the override's request and confirmation, the decisions
    it turned into an allow and the deployments recorded from those decisions.
    """
    o, dc, dp = tables.override, tables.decision, tables.deployment
    seqs = set(seqs)
    if not seqs:
        return {}
    with engine.connect() as conn:
        by_seq = {}
        for r in conn.execute(sa.select(o.c.override_id, o.c.requested_seq, o.c.confirmed_seq).where(
                sa.or_(o.c.requested_seq.in_(seqs), o.c.confirmed_seq.in_(seqs)))):
            by_seq.update({seq: r.override_id for seq in (r.requested_seq, r.confirmed_seq) if seq in seqs})
        for r in conn.execute(sa.select(dc.c.seq, dc.c.override_id).where(
                dc.c.seq.in_(seqs), dc.c.override_id.is_not(None))):
            by_seq[r.seq] = r.override_id
        for r in conn.execute(sa.select(dp.c.seq, dc.c.override_id)
                              .join(dc, dc.c.decision_id == dp.c.decision_id)
                              .where(dp.c.seq.in_(seqs), dc.c.override_id.is_not(None))):
            by_seq[r.seq] = r.override_id
        rows = conn.execute(sa.select(o).where(o.c.override_id.in_(set(by_seq.values()))))
        details = _described(conn, [overrides.override_json(r) for r in rows])
    return {seq: details[override_id] for seq, override_id in by_seq.items()}
