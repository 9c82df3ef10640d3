"""The governance HTTP API: one blueprint per resource family."""

from __future__ import annotations

from . import approvals, audit, evidence, gate, lineage, registry

BLUEPRINTS = [registry.blp, lineage.blp, evidence.blp, approvals.blp, gate.blp, audit.blp]


def register(api) -> None:
    """Register every governance blueprint on the flask-smorest Api."""
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
