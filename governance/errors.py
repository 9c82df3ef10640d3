"""Errors of the governance domain.

Rooms raise these; the HTTP adapter (``api/errors.py``) maps them to
statuses and renders them with the same body shape as every other error,
the pages adapter as HTML.
"""

from __future__ import annotations


class GovernanceError(Exception):
    """Base class for every governance failure.

    ``errors`` name fields of the request body; they are rendered under
    ``errors.json`` like marshmallow's own field errors, so clients read one
    shape whether a field failed the schema or a domain rule.
    """

    location: str | None = "json"

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.errors = errors


class AuthenticationError(GovernanceError):
    """No credentials, or credentials that identify nobody."""


class PermissionDeniedError(GovernanceError):
    """The principal lacks the role the action needs."""


class SeparationOfDutiesError(PermissionDeniedError):
    """The action would let one person fill two incompatible duties."""


class NotFoundError(GovernanceError, LookupError):
    """The model, version, dataset or other resource does not exist."""


class ConflictError(GovernanceError):
    """The request contradicts what is already recorded."""


class InvalidRequestError(GovernanceError, ValueError):
    """The request is well-formed but semantically unacceptable."""


class RollbackDeniedError(ConflictError):
    """The gate denied a rollback; the recorded decision is under ``errors["decision"]``."""

    location = None  # the decision is not a field of the request
