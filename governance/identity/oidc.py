"""Bearer JWTs from an OpenID Connect issuer, checked against a JWKS file."""

from __future__ import annotations

import re
from pathlib import Path

import jwt

from ..errors import AuthenticationError
from .principals import ROLE_PATTERN, Principal

_OIDC_PRINCIPAL = re.compile(r"^[^\x00-\x20\x7f-\x9f]{1,128}\Z")


class OidcValidator:
    """Validates bearer JWTs against a configured issuer, audience and JWKS file."""

    def __init__(self, issuer: str, audience: str, jwks_file: str, roles_claim: str = "roles",
                 principal_claim: str = "sub", algorithms=("RS256", "ES256", "EdDSA")):
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.principal_claim = principal_claim
        self.algorithms = list(algorithms)
        self.jwks = jwt.PyJWKSet.from_json(Path(jwks_file).read_text(encoding="utf-8"))

    def authenticate(self, token: str) -> Principal:
        """Return the principal of a valid JWT, or raise AuthenticationError."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header.get("kid"))
            claims = jwt.decode(token, key=key, algorithms=self.algorithms, audience=self.audience,
                                issuer=self.issuer, leeway=30,
                                options={"require": ["exp", "iss", "aud", self.principal_claim]})
        except jwt.PyJWTError as e:
            raise AuthenticationError(f"invalid bearer JWT: {e}") from e
        name = claims[self.principal_claim]
        if not isinstance(name, str) or not _OIDC_PRINCIPAL.match(name):
            raise AuthenticationError(f"claim {self.principal_claim!r} does not name a principal")
        raw_roles = claims.get(self.roles_claim) or []
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        if not isinstance(raw_roles, list):
            raw_roles = []  # an object or number grants nothing
        roles = frozenset(r for r in raw_roles if isinstance(r, str) and ROLE_PATTERN.match(r))
        return Principal(name, roles, "oidc")

    def _key(self, kid):
        keys = [k for k in self.jwks.keys if kid is None or k.key_id == kid]
        if not keys:
            raise jwt.InvalidTokenError(f"no key {kid!r} in the configured JWKS")
        return keys[0]
