"""Read models that combine several projections for one screen or response."""

from __future__ import annotations

from flask import current_app

from . import approvals, evidence, gate, registry


def version_detail(engine, ledger, name: str, version: str) -> dict:
    """A version with its evidence, sign-offs, deployments and current policy status."""
    detail = registry.get_version(engine, name, version)
    detail["evidence"] = evidence.list_evidence(engine, name, version)
    detail["approvals"] = approvals.list_approvals(engine, name, version)
    detail["deployments"] = [d for d in gate.history(engine, model=name, limit=500)
                             if d["version"] == version]
    detail["policy_status"] = gate.policy_status(ledger, current_app.extensions["policies"], name, version)
    return detail
