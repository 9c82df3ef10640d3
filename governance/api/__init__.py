"""The governance HTTP API (flask-smorest): one blueprint per resource family under ``/api/v1``.

Handlers validate with marshmallow, call one domain function of a room and
serialise; errors of the domain are rendered by ``errors.py``. May import
Flask, flask-smorest, marshmallow, ``ledger.http`` and every governance room;
no room imports it.
"""

from __future__ import annotations


def init_app(app, api) -> None:
    """Register the blueprints, the authorizer ``require_roles`` uses and the error renderer."""
    from ledger.http import AUTHORIZER_KEY

    from ..errors import GovernanceError
    from . import approvals, audit, evidence, gate, lineage, registry
    from .auth import authorizer
    from .errors import render_error

    app.extensions[AUTHORIZER_KEY] = authorizer
    app.register_error_handler(GovernanceError, render_error)
    for module in (registry, lineage, evidence, approvals, gate, audit):
        api.register_blueprint(module.blp)
