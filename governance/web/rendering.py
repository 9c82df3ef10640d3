"""HTML error pages and the security headers of every page.

Errors raised while serving ``/ui/`` are rendered here, never as a stack
trace: the status comes from the same tables the JSON API uses, and the
message is shown only for client errors (and 503, which says to retry).
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app, render_template
from sqlalchemy.exc import DataError, OperationalError, ProgrammingError
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.http import HTTP_STATUS_CODES

from ledger.errors import LedgerError
from ledger.http import status_for

from ..api.errors import status_of
from ..errors import GovernanceError
from . import blp
from .errors import BadQueryError

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def describe(errors: dict) -> str:
    """One line from marshmallow's field errors: ``field: message; field: message``."""
    parts = []
    for field, messages in sorted(errors.items()):
        if isinstance(messages, dict):  # nested, e.g. repeated parameters
            messages = [str(m) for m in messages.values()]
        parts.append(f"{field}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}")
    return "; ".join(parts)


def status_and_message(error: Exception) -> tuple[int, str]:
    """The HTTP status of an error and the message a person may see."""
    if isinstance(error, BadQueryError):
        return 400, str(error)
    if isinstance(error, HTTPException):
        return error.code, error.description
    if isinstance(error, ma.ValidationError):
        return 400, f"invalid query: {describe(error.normalized_messages())}"
    if isinstance(error, GovernanceError):
        return status_of(error), str(error)
    if isinstance(error, LedgerError):
        code = status_for(error)
        return code, str(error) if code < 500 or code == 503 else "internal error"
    if isinstance(error, DataError):
        return 400, "a value in the request cannot be used (wrong type or length)"
    if isinstance(error, (OperationalError, ProgrammingError)):
        current_app.logger.error("database error: %s", error)
        return 503, "the database is unavailable or not migrated; retry later"
    current_app.logger.exception("unhandled error in a web page")
    return 500, "internal error"


@blp.errorhandler(Exception)
def render_error(error: Exception):
    code, message = status_and_message(error)
    if code >= 500 and code != 503:
        message = "internal error"
    return render_template("error.html", code=code, title=HTTP_STATUS_CODES.get(code, "Error"),
                           message=message), code


@blp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown_page(rest):
    """Any other path under /ui/: an HTML 404 (the JSON 404 is for the API)."""
    raise NotFound("there is no such page")


@blp.after_request
def add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
