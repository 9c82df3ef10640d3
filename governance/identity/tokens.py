"""API tokens: created and revoked through the ledger, stored hashed, checked on every request.

API tokens look like ``mlg_<token id>_<secret>``. Only SHA-256 of the secret
is stored, in ``gov_token_secret`` — never in the ledger, which records the
token's id, principal and roles (``identity.token.created`` /
``identity.token.revoked``). The secret has 256 bits of entropy, so a fast hash
is enough (a slow password hash protects low-entropy secrets, which these are
not) and comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timedelta, timezone

import orjson
import sqlalchemy as sa

from ledger.driver import select_all
from ledger.entry import utc_timestamp

from ..errors import AuthenticationError, InvalidRequestError, NotFoundError
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects
from .principals import Principal, validate_principal, validate_roles

TOKEN_PREFIX = "mlg_"
_TOKEN_PATTERN = re.compile(r"^mlg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


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
