"""The ledger's HTTP adapter (Flask, flask-smorest): ``/api/v1/ledger`` and the plumbing every API shares.

Owns the ledger's endpoints (``endpoints.py``), the strict JSON parser and
role check every blueprint uses (``plumbing.py``), the one error body shape
(``errors.py``) and the orjson response encoder (``json_provider.py``).
May import Flask and the ``ledger`` library; never ``governance``.
"""

from __future__ import annotations

from .errors import ERROR_STATUS, error_body, handle_domain_error, status_for
from .json_provider import FastJSONProvider
from .plumbing import AUTHORIZER_KEY, Blueprint, QueryInteger, require_roles

__all__ = ["AUTHORIZER_KEY", "Blueprint", "ERROR_STATUS", "FastJSONProvider", "QueryInteger", "error_body",
           "handle_domain_error", "init_app", "require_roles", "status_for"]


def init_app(app, api) -> None:
    """Register the ledger's endpoints on ``api`` and render ledger errors as JSON."""
    from ..errors import LedgerError
    from .endpoints import blp

    api.register_blueprint(blp)
    app.register_error_handler(LedgerError, handle_domain_error)
