"""Governance errors as HTTP answers: one table of statuses, one renderer, the one body shape."""

from __future__ import annotations

from werkzeug.http import HTTP_STATUS_CODES

from ledger.http import error_body, status_for

from ..errors import (AuthenticationError, ConflictError, GovernanceError, InvalidRequestError, NotFoundError,
                      PermissionDeniedError)

HTTP_STATUS: dict[type, int] = {
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    InvalidRequestError: 422,
}


def status_of(error: GovernanceError) -> int:
    """Return the HTTP status of a governance error."""
    return status_for(error, HTTP_STATUS, default=400)


def render_error(error: GovernanceError):
    """The JSON answer to a governance error (``errors`` under the request location, as marshmallow's)."""
    code = status_of(error)
    headers = {"WWW-Authenticate": 'Bearer realm="ml-governance"'} if isinstance(
        error, AuthenticationError) else {}
    errors = {error.location: error.errors} if error.errors and error.location else error.errors
    return error_body(code, HTTP_STATUS_CODES.get(code, "Error"), str(error), errors), code, headers
