"""Read models that combine several projections for one screen or response."""

from __future__ import annotations

from . import approvals, evidence, registry


def version_detail(engine, ledger, name: str, version: str) -> dict:
    """A version with its evidence and sign-offs (deployments and policy status: issue 4)."""
    detail = registry.get_version(engine, name, version)
    detail["evidence"] = evidence.list_evidence(engine, name, version)
    detail["approvals"] = approvals.list_approvals(engine, name, version)
    return detail
