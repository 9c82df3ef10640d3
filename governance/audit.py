"""The audit trail: every ledger entry, newest first, filterable, provable.

Reads ``gov_audit_event`` (one row per entry, written with it). Pagination is
by cursor (the last seq seen), so pages stay stable while entries are being
appended and a deep page costs the same as the first. Each row carries its
``seq`` and ``leaf_hash``: ``/api/v1/ledger/proofs/inclusion?seq=`` proves it.
"""

from __future__ import annotations

import base64
import csv
import io
import re

import sqlalchemy as sa

from ledger.entry import utc_timestamp

from . import tables
from .errors import InvalidRequestError

CSV_COLUMNS = ("seq", "ts", "kind", "actor", "subject", "model", "version", "summary", "flagged",
               "leaf_hash")
_CURSOR = re.compile(r"^s(\d{1,16})$")


def encode_cursor(seq: int) -> str:
    """Return the opaque cursor that continues after ``seq`` (towards older events)."""
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Return the seq a cursor stands for, or raise InvalidRequestError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raw = ""
    match = _CURSOR.match(raw)
    if not match:
        raise InvalidRequestError("invalid cursor: use next_cursor from a previous page",
                                  errors={"cursor": ["invalid cursor"]})
    return int(match.group(1))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def query_events(engine, *, model=None, version=None, kind=None, actor=None, since=None,
                 until=None, flagged=None, limit=100, cursor=None) -> dict:
    """Return one page of audit events, newest first, and the cursor of the next page."""
    t = tables.audit_event
    query = sa.select(t).order_by(t.c.seq.desc()).limit(limit + 1)
    if model:
        query = query.where(t.c.model_name == model)
    if version:
        query = query.where(t.c.version == version)
    if kind:
        if kind.endswith(".*"):
            query = query.where(t.c.kind.like(_escape_like(kind[:-1]) + "%", escape="\\"))
        else:
            query = query.where(t.c.kind == kind)
    if actor:
        query = query.where(t.c.actor == actor)
    if since:
        query = query.where(t.c.ts >= utc_timestamp(since))
    if until:
        query = query.where(t.c.ts < utc_timestamp(until))
    if flagged is not None:
        query = query.where(t.c.flagged == flagged)
    if cursor:
        query = query.where(t.c.seq < decode_cursor(cursor))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"events": [event_json(r) for r in rows],
            "next_cursor": encode_cursor(rows[-1].seq) if more else None}


def event_json(row) -> dict:
    """Return the API form of an audit row."""
    return {"seq": row.seq, "ts": row.ts, "kind": row.kind, "actor": row.actor,
            "subject": row.subject, "model": row.model_name, "version": row.version,
            "summary": row.summary, "flagged": row.flagged, "leaf_hash": row.leaf_hash,
            "proof": f"/api/v1/ledger/proofs/inclusion?seq={row.seq}"}


def events_csv(events: list[dict]) -> str:
    """Render events as CSV (RFC 4180), formula-looking cells neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        writer.writerow([_safe_cell(event[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _safe_cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is run as a formula by spreadsheets (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
