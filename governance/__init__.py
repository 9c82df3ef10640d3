"""The governance domain: models, datasets, lineage, evidence, approvals,
deployments and explanations, all written through the ledger.

Its relational tables are projections of ledger entries (see
docs/architecture.md); this package may import ``ledger``, never the reverse.
"""

from __future__ import annotations


def init_app(app, api) -> None:
    """Register the governance blueprints and CLI (none yet: see issue 3)."""


def readiness_checks(app) -> dict[str, str]:
    """Return governance-specific readiness checks (name -> 'ok' or a reason)."""
    return {}
