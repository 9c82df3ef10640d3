"""Who is calling: API tokens, optional OIDC bearer JWTs, and roles.

API tokens look like ``mlg_<token id>_<secret>``. Only SHA-256 of the secret
is stored, in ``gov_token_secret`` — never in the ledger, which records the
token's id, principal and roles (``identity.token.created`` /
``identity.token.revoked``). The secret has 256 bits of entropy, so a fast hash
is enough (a slow password hash protects low-entropy secrets, which these are
not) and comparison is constant-time.

A principal is a person or a pipeline, named by the token's ``principal`` (or
the configured OIDC claim). Separation of duties compares principals, never
tokens, so one person holding two tokens is still one person.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import orjson
import sqlalchemy as sa
from flask import current_app, request

from ledger.db import select_all
from ledger.entry import utc_timestamp

from . import tables
from .errors import AuthenticationError, InvalidRequestError, NotFoundError, PermissionDeniedError
from .projections import AuditFacts, canonical_text, projects

TOKEN_PREFIX = "mlg_"
BASE_ROLES = ("admin", "author", "deployer", "auditor")
ROLE_PATTERN = re.compile(r"^(admin|author|deployer|auditor|approver:[a-z][a-z0-9_]{0,47})$")
PRINCIPAL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_OIDC_PRINCIPAL = re.compile(r"^[^\x00-\x20\x7f-\x9f]{1,128}\Z")
_TOKEN_PATTERN = re.compile(r"^mlg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
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


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


# -- tokens: commands ---------------------------------------------------------

def create_token(ledger, actor: str, principal: str, roles, description: str = "",
                 expires_in_days: int | None = None) -> dict:
    """Create an API token; return its id, the secret token (shown once) and seq."""
    principal = validate_principal(principal)
    roles = validate_roles(roles)
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise InvalidRequestError("expires_in_days must be between 1 and 3650")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    expires_at = (utc_timestamp(datetime.now(timezone.utc) + timedelta(days=expires_in_days))
                  if expires_in_days else None)
    payload = {"token_id": token_id, "principal": principal, "roles": roles,
               "description": description, "expires_at": expires_at}
    with ledger.transaction() as writer:
        entry = writer.append("identity.token.created", actor, f"token:{token_id}", payload)
        writer.connection.execute(tables.token_secret.insert(), dict(
            token_id=token_id, secret_sha256=_hash_secret(secret)))
    return {"token_id": token_id, "token": f"{TOKEN_PREFIX}{token_id}_{secret}",
            "principal": principal, "roles": roles, "expires_at": expires_at, "seq": entry.seq}


def revoke_token(ledger, actor: str, token_id: str, reason: str = "") -> dict:
    """Revoke a token; return the seq of the revocation entry."""
    with ledger.transaction() as writer:
        row = writer.connection.execute(
            sa.select(tables.token.c.revoked_seq).where(tables.token.c.token_id == token_id)).first()
        if row is None:
            raise NotFoundError(f"no token {token_id}")
        if row.revoked_seq is not None:
            raise InvalidRequestError(f"token {token_id} is already revoked")
        entry = writer.append("identity.token.revoked", actor, f"token:{token_id}",
                              {"token_id": token_id, "reason": reason})
    return {"token_id": token_id, "seq": entry.seq}


def list_tokens(engine, include_revoked: bool = False) -> list[dict]:
    """Return tokens without any secret material."""
    query = sa.select(tables.token).order_by(tables.token.c.created_seq)
    if not include_revoked:
        query = query.where(tables.token.c.revoked_seq.is_(None))
    with engine.connect() as conn:
        return [{**row._mapping, "roles": json.loads(row.roles)} for row in conn.execute(query)]


# -- tokens: projections ------------------------------------------------------

@projects("identity.token.created")
def _token_created(conn, entry):
    p = entry.payload
    conn.execute(tables.token.insert(), dict(
        token_id=p["token_id"], principal=p["principal"], roles=canonical_text(p["roles"]),
        description=p["description"], created_at=entry.ts, created_by=entry.actor,
        created_seq=entry.seq, expires_at=p["expires_at"]))
    return AuditFacts(f"token {p['token_id']} created for {p['principal']} with roles "
                      f"{', '.join(p['roles'])}")


@projects("identity.token.revoked")
def _token_revoked(conn, entry):
    p = entry.payload
    conn.execute(sa.update(tables.token).where(tables.token.c.token_id == p["token_id"]).values(
        revoked_at=entry.ts, revoked_by=entry.actor, revoked_seq=entry.seq))
    return AuditFacts(f"token {p['token_id']} revoked" + (f": {p['reason']}" if p["reason"] else ""))


# -- authentication -----------------------------------------------------------

_TOKEN_WITH_SECRET = (
    sa.select(tables.token, tables.token_secret.c.secret_sha256)
    .join(tables.token_secret, tables.token_secret.c.token_id == tables.token.c.token_id)
    .where(tables.token.c.token_id == sa.bindparam("token_id")))


def authenticate_token(engine, presented: str) -> Principal:
    """Return the principal of an API token, or raise AuthenticationError."""
    match = _TOKEN_PATTERN.match(presented)
    if not match:
        raise AuthenticationError("malformed API token")
    token_id, secret = match.groups()
    with engine.connect() as conn:
        rows = select_all(conn, {"token": _TOKEN_WITH_SECRET}, {"token_id": token_id})["token"]
    row = rows[0] if rows else None
    if row is None or not hmac.compare_digest(bytes(row.secret_sha256), _hash_secret(secret)):
        raise AuthenticationError("unknown API token")
    return _usable_principal(row)


def authenticate_token_id(engine, token_id: str) -> Principal:
    """Return the principal of a token already authenticated once, or raise AuthenticationError.

    For web sessions: the signed session cookie holds the token id (never the
    secret), and every page request checks again that the token is neither
    revoked nor expired.
    """
    with engine.connect() as conn:
        row = conn.execute(sa.select(tables.token).where(tables.token.c.token_id == token_id)).first()
    if row is None:
        raise AuthenticationError("unknown API token")
    return _usable_principal(row)


def _usable_principal(row) -> Principal:
    if row.revoked_seq is not None:
        raise AuthenticationError("this API token was revoked")
    if row.expires_at and row.expires_at <= utc_timestamp():
        raise AuthenticationError("this API token has expired")
    return Principal(row.principal, frozenset(orjson.loads(row.roles)), "token", row.token_id)


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


def authorizer(required_roles) -> Principal:
    """Authenticate the current request and check it holds one of ``required_roles``."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise AuthenticationError("authentication required: send Authorization: Bearer <token>")
    credentials = credentials.strip()
    if credentials.startswith(TOKEN_PREFIX):
        principal = authenticate_token(current_app.extensions["db_engine"], credentials)
    else:
        oidc = current_app.extensions.get("oidc")
        if oidc is None:
            raise AuthenticationError("unknown API token")
        principal = oidc.authenticate(credentials)
    if not principal.has_any(required_roles):
        raise PermissionDeniedError(
            f"{principal.name} lacks the role this needs: one of {', '.join(required_roles)}")
    return principal
