"""Errors of the web pages; ``rendering.py`` turns them (and every other error) into HTML pages."""

from __future__ import annotations

from ..errors import GovernanceError, PermissionDeniedError


class BadQueryError(GovernanceError, ValueError):
    """A page's query parameters failed validation (a 400 page)."""


class CsrfError(PermissionDeniedError):
    """A POST form without the session's CSRF token (a 403 page)."""


class SessionKeyError(RuntimeError):
    """The session key file is unusable: too short, or unreadable."""
