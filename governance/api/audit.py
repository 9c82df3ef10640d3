"""The audit trail (``/api/v1/audit/events``), as JSON or CSV."""

from __future__ import annotations

import marshmallow as ma
from flask import Response, jsonify
from flask.views import MethodView
from marshmallow import validate

from ledger.http import Blueprint, QueryInteger, require_roles

from ..audit import trail
from .common import Label, Name, QueryBool, Version, engine

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="Audit trail")
SECURITY = [{"bearerAuth": []}]
PAGE = "a page of events: JSON, or CSV with format=csv"


class AuditQuery(ma.Schema):
    model = Name()
    version = Version()
    kind = ma.fields.String(validate=validate.Regexp(
        r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?\Z",
        error="must be an entry kind such as model.version.registered, or a prefix such as model.*"))
    actor = Label(256)
    since = ma.fields.AwareDateTime(format="iso", metadata={"description": "inclusive, RFC 3339"})
    until = ma.fields.AwareDateTime(format="iso", metadata={"description": "exclusive, RFC 3339"})
    flagged = QueryBool()
    limit = QueryInteger(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = ma.fields.String(validate=validate.Length(max=64))
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))

    @ma.validates_schema
    def _range(self, data, **kwargs):
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ma.ValidationError("since must be earlier than until", field_name="until")


class EventOut(ma.Schema):
    seq = ma.fields.Integer()
    ts = ma.fields.String()
    kind = ma.fields.String()
    actor = ma.fields.String()
    subject = ma.fields.String()
    model = ma.fields.String(allow_none=True)
    version = ma.fields.String(allow_none=True)
    summary = ma.fields.String()
    flagged = ma.fields.Boolean()
    leaf_hash = ma.fields.String()
    proof = ma.fields.String(metadata={"description": "where to get the inclusion proof"})


class EventPageOut(ma.Schema):
    events = ma.fields.List(ma.fields.Nested(EventOut))
    next_cursor = ma.fields.String(allow_none=True)


@blp.route("/events")
class Events(MethodView):
    @require_roles("auditor", "admin")
    @blp.arguments(AuditQuery, location="query")
    @blp.response(200, EventPageOut, description=PAGE)
    @blp.alt_response(200, schema={"type": "string"}, content_type="text/csv", description=PAGE, success=True,
                      headers={"X-Next-Cursor": {"description": "with format=csv: the cursor of the next page",
                                                 "schema": {"type": "string"}}})
    @blp.errors((422, "a query parameter is missing or invalid (errors names each), or the cursor is not one "
                      "this endpoint gave"))
    @blp.doc(security=SECURITY, operationId="listAuditEvents")
    def get(self, query):
        """Audit events, newest first; format=csv for CSV

        The CSV has one row per event and a header row; the cursor of the next
        page is in the X-Next-Cursor header.
        """
        fmt = query.pop("format")
        page = trail.query_events(engine(), **query)
        if fmt == "csv":
            headers = {"Content-Disposition": 'attachment; filename="audit-events.csv"'}
            if page["next_cursor"]:
                headers["X-Next-Cursor"] = page["next_cursor"]
            return Response(trail.events_csv(page["events"]), mimetype="text/csv", headers=headers)
        # The page already has EventPageOut's shape (the schema documents it):
        # dumping 100 rows through marshmallow again cost half the request.
        return jsonify(page)
