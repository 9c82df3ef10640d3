"""Documents attached to evidence, stored content-addressed by SHA-256 in ``gov_document``.

Not in the ledger: only a document's digest, size and media type go into the
evidence entry that cites it, so the ledger proves which bytes were cited.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ledger.entry import utc_timestamp

from ..errors import InvalidRequestError, NotFoundError
from ..projections import tables


def store_document(ledger, actor: str, content: bytes, media_type: str, max_size: int) -> dict:
    """Store a document by its SHA-256 (idempotent); return its digest and size.

    Written under the ledger's writer lock (no entry is appended): on SQLite a
    deferred transaction that reads first could not upgrade to a write while
    appends commit.
    """
    if not content:
        raise InvalidRequestError("the document is empty")
    if len(content) > max_size:
        raise InvalidRequestError(f"the document is {len(content)} bytes; the limit is {max_size}")
    digest = hashlib.sha256(content).hexdigest()
    t = tables.document
    with ledger.store.write_transaction() as conn:
        existing = conn.execute(sa.select(t.c.size, t.c.media_type).where(t.c.sha256 == digest)).first()
        if existing is None:
            try:
                conn.execute(t.insert(), dict(sha256=digest, size=len(content), media_type=media_type,
                                                 content=content, uploaded_at=utc_timestamp(),
                                                 uploaded_by=actor))
            except IntegrityError:  # a concurrent upload of the same bytes won
                pass
    return {"sha256": digest, "size": len(content), "media_type": media_type,
            "created": existing is None}


def get_document(engine, digest: str) -> tuple[bytes, str]:
    """Return (content, media type) of a stored document."""
    t = tables.document
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.c.content, t.c.media_type).where(t.c.sha256 == digest)).first()
    if row is None:
        raise NotFoundError(f"no document {digest}")
    return bytes(row.content), row.media_type
