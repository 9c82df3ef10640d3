"""The audit trail's page (``/ui/audit``) and its CSV download (``/ui/audit.csv``).

The page shows one page of events (50 by default, 1 to 500) with links to
the newer and the older page, which keep the filters: positions are cursors
(the seq of the last row seen), so a walk either way has no gaps or repeats
while entries are appended. Each row carries its leaf hash and the links to
its entry and to its public inclusion proof.

The download is the whole filtered trail, not the page shown: the API's
columns and CSV (``trail.events_csv``, formula-looking cells neutralised),
streamed in chunks read by cursor, newest first, up to ``EXPORT_MAX_ROWS``
rows. When more match, the file holds the newest ones, its name says so and
``X-Next-Cursor`` gives the cursor that continues (``cursor=``), as the API's.
"""

from __future__ import annotations

import marshmallow as ma
from flask import Response, render_template, url_for
from marshmallow import validate

from ledger.http import QueryInteger

from ..api.audit import AuditQuery
from ..audit import trail
from ..errors import InvalidRequestError
from ..gate import decisions, views
from . import blp
from .auth import require_page_roles
from .pages import AUDIT_ROLES, engine, load_query, query_filters

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500  # as the API's limit
EXPORT_MAX_ROWS = 100_000  # some 16 MB of typical rows, sent in about 0.5 s (SQLite)
EXPORT_CHUNK = 1_000  # rows read per query while a download is sent
POSITIONS = ("cursor", "after")


def _known_cursor(value: str) -> None:
    try:
        trail.decode_cursor(value)
    except InvalidRequestError as e:
        raise ma.ValidationError("invalid cursor: use the links of a previous page") from e


class AuditPageQuery(AuditQuery):
    """The audit API's query, less ``format``, plus ``after`` (towards newer events).

    A bad cursor is a field error here; ``cursor`` and ``after`` exclude each other.
    """

    limit = QueryInteger(load_default=PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    after = ma.fields.String(validate=[validate.Length(max=64), _known_cursor])

    class Meta:
        exclude = ("format",)

    @ma.validates("cursor")
    def _known(self, value, **kwargs):
        _known_cursor(value)

    @ma.validates_schema
    def _one_position(self, data, **kwargs):
        if "cursor" in data and "after" in data:
            raise ma.ValidationError("give cursor (older events) or after (newer events), not both",
                                     field_name="cursor")


class AuditExportQuery(AuditPageQuery):
    """The filters of the page, and ``cursor`` to continue a download that reached its bound."""

    class Meta:
        exclude = ("format", "limit", "after")


@blp.route("/audit")
@require_page_roles(*AUDIT_ROLES)
def audit_page():
    """Audit events, newest first, with the API's filters, newer and older links, and a CSV link."""
    query = load_query(AuditPageQuery())
    page = trail.events_page(engine(), **query)
    behind = views.overrides_behind(engine(), [e["seq"] for e in page["events"]])
    filters = query_filters(*POSITIONS)
    pager = {
        "newest": url_for("web.audit_page", **filters) if set(POSITIONS) & set(query) else None,
        "newer": url_for("web.audit_page", **filters, after=page["newer"]) if page["newer"] else None,
        "older": url_for("web.audit_page", **filters, cursor=page["older"]) if page["older"] else None,
    }
    return render_template("audit.html", events=page["events"], overrides=behind, pager=pager,
                           filters=query_filters(), page_size=query["limit"],
                           max_page_size=MAX_PAGE_SIZE, export_max_rows=EXPORT_MAX_ROWS,
                           csv_url=url_for("web.audit_csv", **query_filters("limit", *POSITIONS)),
                           decision_kind="deployment.decision.recorded",
                           decision_id_of=decisions.decision_id_of)


@blp.route("/audit.csv")
@require_page_roles(*AUDIT_ROLES)
def audit_csv():
    """Every event matching the filters as CSV (the API's columns), newest first, up to the bound."""
    query = load_query(AuditExportQuery())
    next_cursor, chunks = trail.export_events(engine(), max_rows=EXPORT_MAX_ROWS, chunk=EXPORT_CHUNK,
                                              **query)
    name = "audit-events.csv" if next_cursor is None else f"audit-events-newest-{EXPORT_MAX_ROWS}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
    return Response(_csv_text(chunks), mimetype="text/csv", headers=headers)


def _csv_text(chunks):
    """The CSV of each chunk of events, the column names once at the top."""
    header = True
    for events in chunks:
        yield trail.events_csv(events, header=header)
        header = False
    if header:  # nothing matched: the column names alone
        yield trail.events_csv([])
