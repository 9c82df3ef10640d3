"""Principals and roles: who a caller is and what they may do.

A principal is a person or a pipeline, named by an API token's ``principal``
(or the configured OIDC claim). Separation of duties compares principals,
never tokens, so one person holding two tokens is still one person. Roles:
``admin``, ``author``, ``deployer``, ``auditor`` and ``approver:<area>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidRequestError

BASE_ROLES = ("admin", "author", "deployer", "auditor")
ROLE_PATTERN = re.compile(r"^(admin|author|deployer|auditor|approver:[a-z][a-z0-9_]{0,47})$")
PRINCIPAL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
ANY_APPROVER = "approver:*"
READ_ROLES = ("admin", "author", "deployer", "auditor", ANY_APPROVER)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    roles: frozenset[str]
    method: str  # "token" or "oidc"
    token_id: str | None = None

    def has_any(self, required) -> bool:
        """True if the principal holds any of ``required`` (``approver:*`` matches any area)."""
        for role in required:
            if role == ANY_APPROVER:
                if any(r.startswith("approver:") for r in self.roles):
                    return True
            elif role in self.roles:
                return True
        return False

    def approver_areas(self) -> set[str]:
        """The areas this principal may sign off."""
        return {r.split(":", 1)[1] for r in self.roles if r.startswith("approver:")}


def validate_roles(roles) -> list[str]:
    """Return the roles sorted and de-duplicated, or raise naming the bad one."""
    if not roles:
        raise InvalidRequestError("at least one role is required")
    for role in roles:
        if not isinstance(role, str) or not ROLE_PATTERN.match(role):
            raise InvalidRequestError(
                f"unknown role {role!r}: use admin, author, deployer, auditor or approver:<area>")
    return sorted(set(roles))


def validate_principal(name: str) -> str:
    """Return ``name`` if it can name a principal."""
    if not isinstance(name, str) or not PRINCIPAL_PATTERN.match(name):
        raise InvalidRequestError(
            f"principal name {name!r} must be 1-128 characters: letters, digits, . _ @ + -")
    return name
