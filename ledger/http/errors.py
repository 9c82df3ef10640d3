"""One error body shape for every endpoint, and the ledger's errors mapped to HTTP statuses.

:data:`ERROR_STATUS` maps domain errors to status codes in one place;
:func:`error_body` gives every error one JSON shape (``code``, ``status``,
``message``, ``errors``), which :class:`ErrorSchema` documents;
:func:`describe_validation` says in one sentence what failed validation;
:func:`handle_domain_error` renders a ledger error.
"""

from __future__ import annotations

import marshmallow as ma
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


class ErrorSchema(ma.Schema):
    """The one error body (the component ``Error`` of the OpenAPI document)."""

    code = ma.fields.Integer(required=True, metadata={"description": "the HTTP status code"})
    status = ma.fields.String(required=True, metadata={"description": "the HTTP status phrase"})
    message = ma.fields.String(required=True, metadata={"description": "what was refused, and why"})
    errors = ma.fields.Dict(metadata={"description": (
        "details: for a validation failure, each bad field's messages under where it was sent "
        "(json, query), as {json: {field: [message]}}")})


def describe_validation(messages: dict, schema: ma.Schema | None = None) -> str:
    """One line naming every field that failed validation and why.

    ``messages`` are marshmallow's, under their location (``{"json": {...}}``).
    A field holding an object (or a list of them) is named with the schema it
    was checked against, the name the OpenAPI document gives it:
    ``fields (PrivacyAssessmentFields): expires_at: Missing data for required field.``
    """
    parts = []
    for location, errors in messages.items():
        if isinstance(errors, dict):
            parts.extend(_describe_fields(errors, schema))
        else:
            parts.append(f"{location}: {_joined(errors)}")
    return ", ".join(parts) or "invalid input"


def schema_name(schema: ma.Schema) -> str:
    """The name of a schema in the OpenAPI document (its class name without a ``Schema`` suffix)."""
    name = type(schema).__name__
    return name[:-len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def _describe_fields(errors: dict, schema: ma.Schema | None):
    by_key = {(f.data_key or n): f for n, f in schema.fields.items()} if schema is not None else {}
    for name, messages in errors.items():
        nested = _object_schema(by_key.get(name))
        label = f"{name} ({schema_name(nested)})" if nested is not None else str(name)
        if isinstance(messages, dict):
            yield f"{label}: " + "; ".join(f"{path}: {text}" for path, text in _flattened(messages))
        else:
            yield f"{label}: {_joined(messages)}"


def _object_schema(field) -> ma.Schema | None:
    if isinstance(field, ma.fields.List):
        field = field.inner
    return field.schema if isinstance(field, ma.fields.Nested) else None


def _flattened(errors: dict, prefix: str = ""):
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _flattened(value, path)
        else:
            yield path, _joined(value)


def _joined(messages) -> str:
    return messages if isinstance(messages, str) else "; ".join(map(str, messages))
