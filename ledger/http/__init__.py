"""The ledger's HTTP adapter (Flask, flask-smorest): ``/api/v1/ledger`` and the plumbing every API shares.

Owns the ledger's endpoints (``endpoints.py``), the strict JSON parser and
role check every blueprint uses (``plumbing.py``), the one error body shape
(``errors.py``), what the OpenAPI document adds to flask-smorest's (an
operation's error responses, discriminated bodies: ``openapi.py``) and the
orjson response encoder (``json_provider.py``), and the checks every
request passes before any handler (``door.py``: body size, URL).
May import Flask and the ``ledger`` library; never ``governance``.
"""

from __future__ import annotations

from .door import guard_the_door
from .errors import ERROR_STATUS, ErrorSchema, describe_validation, error_body, handle_domain_error, status_for
from .json_provider import FastJSONProvider
from .openapi import ContractPlugin, OneOfSchema
from .plumbing import AUTHORIZER_KEY, Blueprint, QueryInteger, require_roles

__all__ = ["AUTHORIZER_KEY", "Blueprint", "ContractPlugin", "ERROR_STATUS", "ErrorSchema", "FastJSONProvider",
           "OneOfSchema", "QueryInteger", "describe_validation", "error_body", "guard_the_door", "handle_domain_error",
           "init_app", "require_roles", "status_for"]


def init_app(app, api) -> None:
    """Register the ledger's endpoints on ``api`` and render ledger errors as JSON."""
    from ..errors import LedgerError
    from .endpoints import blp

    api.register_blueprint(blp)
    app.register_error_handler(LedgerError, handle_domain_error)
