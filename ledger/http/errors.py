"""One error body shape for every endpoint, and the ledger's errors mapped to HTTP statuses.

:data:`ERROR_STATUS` maps domain errors to status codes in one place;
:func:`error_body` gives every error one JSON shape (``code``, ``status``,
``message``, ``errors``); :func:`handle_domain_error` renders a ledger error.
"""

from __future__ import annotations

from flask import current_app
from werkzeug.http import HTTP_STATUS_CODES

from ..errors import (
    CanonicalizationError, CheckpointFormatError, EntryNotFoundError, EntryValidationError,
    LedgerError, LedgerUnavailableError, ProofRangeError, RollbackError, SigningKeyError,
)


# Domain error -> HTTP status. Anything not listed is a 500 with no details.
ERROR_STATUS: dict[type, int] = {
    EntryNotFoundError: 404,
    ProofRangeError: 400,
    EntryValidationError: 422,
    CanonicalizationError: 400,
    CheckpointFormatError: 400,
    LedgerUnavailableError: 503,
    RollbackError: 503,
    SigningKeyError: 503,
}


def status_for(error: Exception, table: dict[type, int] = ERROR_STATUS, default: int = 500) -> int:
    """Return the HTTP status of an error from a class -> status table (nearest class wins)."""
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return default


def error_body(code: int, status: str, message: str, errors: dict | None = None) -> dict:
    """Return the one error body shape: code, status, message and errors."""
    body = {"code": code, "status": status, "message": message}
    if errors:
        body["errors"] = errors
    return body


def handle_domain_error(error: LedgerError):
    """Render a domain error with the status from :data:`ERROR_STATUS`."""
    code = status_for(error)
    message = str(error) if code < 500 or code == 503 else "internal error"
    if code >= 500 and code != 503:
        current_app.logger.exception("unmapped domain error")
    return error_body(code, HTTP_STATUS_CODES.get(code, "Error"), message), code
