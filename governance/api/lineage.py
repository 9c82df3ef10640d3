"""OpenLineage RunEvents in, upstream lineage graphs out (``/api/v1``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate

from ledger.http import Blueprint, require_roles

from ..identity.principals import READ_ROLES
from ..lineage import events, graph
from .common import Label, actor, created_status, engine, ledger

blp = Blueprint("lineage", __name__, url_prefix="/api/v1", description="Data lineage (OpenLineage)")
SECURITY = [{"bearerAuth": []}]
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)\Z")


def _real_datetime(value: str) -> None:
    """Refuse 2024-02-30 and +99:99 (the string is kept as sent)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise ma.ValidationError(f"not a real date-time: {e}") from e
    offset = moment.utcoffset()
    if offset is None or abs(offset) >= timedelta(hours=24):
        raise ma.ValidationError("the UTC offset must be within ±23:59")


def Facets():
    """OpenLineage facets: a map of facet name to facet object (kept as sent)."""
    return ma.fields.Dict(keys=ma.fields.String(validate=validate.Length(min=1, max=256)),
                          values=ma.fields.Dict())


class Open(ma.Schema):
    """OpenLineage objects are open: unknown keys (custom facets) are kept as sent."""

    class Meta:
        unknown = ma.INCLUDE


class RunIn(Open):
    runId = ma.fields.String(required=True, validate=validate.Regexp(UUID_PATTERN, error="must be a UUID"))
    facets = Facets()


class JobIn(Open):
    namespace = Label(256, required=True)
    name = Label(512, required=True)
    facets = Facets()


class LineageDatasetIn(Open):
    namespace = Label(256, required=True)
    name = Label(512, required=True)
    facets = Facets()


class RunEventIn(Open):
    eventType = ma.fields.String(validate=validate.OneOf(EVENT_TYPES))
    eventTime = ma.fields.String(required=True, validate=[validate.Regexp(
        _RFC3339, error="must be an RFC 3339 date-time with offset"), _real_datetime])
    run = ma.fields.Nested(RunIn, required=True)
    job = ma.fields.Nested(JobIn, required=True)
    inputs = ma.fields.List(ma.fields.Nested(LineageDatasetIn), validate=validate.Length(max=1000))
    outputs = ma.fields.List(ma.fields.Nested(LineageDatasetIn), validate=validate.Length(max=1000))
    producer = ma.fields.String(required=True, validate=validate.Length(min=1, max=2048))
    schemaURL = ma.fields.String(required=True, validate=validate.Length(min=1, max=2048))


class RecordedOut(ma.Schema):
    seq = ma.fields.Integer()
    run_id = ma.fields.String()


class GraphOut(ma.Schema):
    model = ma.fields.String()
    version = ma.fields.String()
    truncated = ma.fields.Boolean()
    nodes = ma.fields.List(ma.fields.Dict())
    edges = ma.fields.List(ma.fields.Dict())


@blp.route("/lineage")
class Lineage(MethodView):
    @require_roles("author", "deployer")
    @blp.arguments(RunEventIn)
    @blp.response(201, RecordedOut)
    @blp.alt_response(200, schema=RecordedOut, description="the same event again: the entry already recorded")
    @blp.alt_response(409, description="another event with the same runId, eventType and eventTime "
                                       "is recorded")
    @blp.doc(security=SECURITY, operationId="recordRunEvent")
    def post(self, event):
        """Record an OpenLineage RunEvent (as the OpenLineage HTTP transport sends it)

        An event is recorded once: the same run, eventType and eventTime with
        the same content (after canonicalisation) answers 200 with the entry
        already recorded; with other content, 409.
        """
        result = events.record_run_event(ledger(), actor(), event)
        return result, created_status(result)


@blp.route("/models/<name>/versions/<version>/lineage")
class VersionLineage(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, GraphOut)
    @blp.errors((404, "no such model version"))
    @blp.doc(security=SECURITY, operationId="getVersionLineage")
    def get(self, name, version):
        """Transitive upstream graph (datasets, jobs, runs) of a model version"""
        return graph.upstream_graph(engine(), name, version)
