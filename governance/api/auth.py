"""The authorizer ``ledger.http.require_roles`` calls: the request's bearer token, checked by identity."""

from __future__ import annotations

from flask import current_app, request

from ..identity.authentication import authorize
from ..identity.principals import Principal


def authorizer(required_roles) -> Principal:
    """Authenticate the current request and check it holds one of ``required_roles``."""
    return authorize(current_app.extensions["db_engine"], current_app.extensions.get("oidc"),
                     request.headers.get("Authorization", ""), required_roles)
