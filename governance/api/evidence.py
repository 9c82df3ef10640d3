"""Evidence, computed bias reports and content-addressed documents (``/api/v1``)."""

from __future__ import annotations

from datetime import datetime

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView
from marshmallow import validate

from ledger.entry import utc_timestamp
from ledger.http import Blueprint, OneOfSchema, require_roles

from ..errors import InvalidRequestError
from ..evidence import documents, records
from ..evidence.fairness import compute_bias_metrics
from ..identity.principals import READ_ROLES
from .common import Bool, Int, Label, QueryBool, Sha256, StrictSchema, Text, actor, engine, ledger
from .registry import DatasetRef

blp = Blueprint("evidence", __name__, url_prefix="/api/v1",
                description="Evidence about model versions, and attached documents")
SECURITY = [{"bearerAuth": []}]


def Number(**kwargs):
    """A finite number."""
    return ma.fields.Float(allow_nan=False, **kwargs)


class UtcTimestamp(ma.fields.AwareDateTime):
    """An RFC 3339 date-time with offset, stored as a UTC timestamp string."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        return utc_timestamp(moment)


class PrivacyAssessmentFields(StrictSchema):
    status = ma.fields.String(required=True, validate=validate.OneOf(
        ["approved", "approved_with_conditions", "rejected", "in_progress"]))
    reviewer = Label(256, required=True)
    findings = ma.fields.List(Text(5000), load_default=list, validate=validate.Length(max=200))
    conditions = ma.fields.List(Text(5000), load_default=list, validate=validate.Length(max=200))
    expires_at = UtcTimestamp(required=True, format="iso",
                              metadata={"description": "when the DPIA must be reviewed again"})
    reference = Label(256, load_default=None, allow_none=True)


class BiasAttribute(StrictSchema):
    attribute = Label(64, required=True)
    groups = ma.fields.List(Label(128), required=True, validate=validate.Length(min=2, max=1000))
    metrics = ma.fields.Dict(keys=Label(64), values=Number(), required=True,
                             validate=validate.Length(min=1, max=50),
                             metadata={"description": "e.g. demographic_parity_difference, "
                                       "disparate_impact_ratio, equalized_odds_difference"})
    group_metrics = ma.fields.Dict(keys=Label(128), values=ma.fields.Dict(keys=Label(64), values=Number()),
                                   load_default=dict)


class BiasReportFields(StrictSchema):
    attributes = ma.fields.List(ma.fields.Nested(BiasAttribute), required=True,
                                validate=validate.Length(min=1, max=50))
    dataset = ma.fields.Nested(DatasetRef, load_default=None, allow_none=True)
    sample_size = Int(load_default=None, allow_none=True,
                                    validate=validate.Range(min=1, max=2**53 - 1))
    computed_by = Label(128, load_default="submitter")


class FeatureImportance(StrictSchema):
    feature = Label(256, required=True)
    importance = Number(required=True)


class ExplainabilityReportFields(StrictSchema):
    method = Label(128, required=True, metadata={"description": "e.g. shap.TreeExplainer"})
    feature_importances = ma.fields.List(ma.fields.Nested(FeatureImportance), required=True,
                                         validate=validate.Length(min=1, max=10_000))
    dataset = ma.fields.Nested(DatasetRef, load_default=None, allow_none=True)


class ValidationReportFields(StrictSchema):
    passed = Bool(required=True)
    metrics = ma.fields.Dict(keys=Label(128), values=Number(), load_default=dict)
    thresholds = ma.fields.Dict(keys=Label(128), values=Number(), load_default=dict)
    dataset = ma.fields.Nested(DatasetRef, load_default=None, allow_none=True)
    summary = Text(10_000, load_default="")


class ModelCardFields(StrictSchema):
    content = Text(200_000, load_default="", metadata={
        "description": "Markdown; a model card needs content, sections or a document"})
    sections = ma.fields.Dict(keys=Label(128), values=Text(50_000), load_default=dict)


# -- the body of a submission: one schema per kind, chosen by `kind` ----------------

def Kind(kind: str):
    """The discriminator of one kind's body: required, and exactly ``kind``."""
    return ma.fields.String(required=True, validate=validate.OneOf([kind]))


class _Submission(StrictSchema):
    document_sha256 = Sha256(load_default=None, allow_none=True,
                             metadata={"description": "an uploaded document (POST /api/v1/documents)"})
    supersedes = ma.fields.String(load_default=None, allow_none=True,
                                  validate=validate.Regexp(r"^ev-\d{1,16}\Z"),
                                  metadata={"description": "the evidence_id of the same kind this corrects"})


def _submission(kind: str, fields_schema: type) -> type:
    """The body of a submission of ``kind``: its ``fields`` checked against ``fields_schema``.

    Named ``<FieldsSchema without Fields>EvidenceIn``: the name of its component in the document.
    """
    name = fields_schema.__name__.removesuffix("Fields") + "EvidenceIn"
    return type(name, (_Submission,), {"kind": Kind(kind),
                                       "fields": ma.fields.Nested(fields_schema, required=True)})


class ModelCardEvidenceIn(_Submission):
    kind = Kind("model_card")
    fields = ma.fields.Nested(ModelCardFields, required=True)

    @ma.validates_schema
    def _something_to_read(self, data, **kwargs):
        if not (data["fields"]["content"] or data["fields"]["sections"] or data.get("document_sha256")):
            raise ma.ValidationError("a model card needs content, sections or a document", field_name="fields")


class EvidenceIn(OneOfSchema):
    """Evidence of one kind; ``kind`` chooses the schema its ``fields`` are checked against."""

    discriminator = "kind"
    variants = {
        "privacy_assessment": _submission("privacy_assessment", PrivacyAssessmentFields),
        "bias_report": _submission("bias_report", BiasReportFields),
        "explainability_report": _submission("explainability_report", ExplainabilityReportFields),
        "validation_report": _submission("validation_report", ValidationReportFields),
        "model_card": ModelCardEvidenceIn,
    }


class EvidenceOut(ma.Schema):
    evidence_id = ma.fields.String()
    model = ma.fields.String()
    version = ma.fields.String()
    kind = ma.fields.String()
    fields = ma.fields.Dict()
    artifact_sha256 = ma.fields.String()
    document_sha256 = ma.fields.String(allow_none=True)
    digest = ma.fields.String(metadata={"description": "leaf hash of the evidence entry"})
    supersedes = ma.fields.String(allow_none=True)
    superseded_by = ma.fields.String(allow_none=True)
    current = ma.fields.Boolean()
    submitted_at = ma.fields.String()
    submitted_by = ma.fields.String()
    seq = ma.fields.Integer()


class EvidenceQuery(ma.Schema):
    kind = ma.fields.String(validate=validate.OneOf(records.EVIDENCE_KINDS))
    current_only = QueryBool(load_default=False)


class BiasSampleIn(StrictSchema):
    y_true = ma.fields.List(ma.fields.Integer(strict=True), required=True,
                            validate=validate.Length(min=1, max=1_000_000))
    y_pred = ma.fields.List(ma.fields.Integer(strict=True), required=True,
                            validate=validate.Length(min=1, max=1_000_000))
    sensitive_features = ma.fields.Dict(keys=Label(64), values=ma.fields.List(ma.fields.Raw()),
                                        required=True, validate=validate.Length(min=1, max=20))
    dataset = ma.fields.Nested(DatasetRef, load_default=None, allow_none=True)
    supersedes = ma.fields.String(load_default=None, allow_none=True,
                                  validate=validate.Regexp(r"^ev-\d{1,16}\Z"))


class DocumentOut(ma.Schema):
    sha256 = ma.fields.String()
    size = ma.fields.Integer()
    media_type = ma.fields.String()


SUBMISSION_ERRORS = (
    (404, "no such model version, or no such evidence of it to supersede"),
    (409, "the evidence it supersedes was superseded already"),
    (422, "a field is missing or invalid (errors names each), the document is not uploaded, "
          "or the evidence it supersedes is of another kind"),
)


@blp.route("/models/<name>/versions/<version>/evidence")
class Evidence(MethodView):
    @require_roles(*READ_ROLES)
    @blp.arguments(EvidenceQuery, location="query")
    @blp.response(200, EvidenceOut(many=True))
    @blp.errors((404, "no such model version"))
    @blp.doc(security=SECURITY, operationId="listEvidence")
    def get(self, query, name, version):
        """Evidence of a version (superseded included unless current_only)"""
        return records.list_evidence(engine(), name, version, query.get("kind"),
                                      include_superseded=not query["current_only"])

    @require_roles("author")
    @blp.arguments(EvidenceIn)
    @blp.response(201, EvidenceOut)
    @blp.errors(*SUBMISSION_ERRORS)
    @blp.doc(security=SECURITY, operationId="submitEvidence")
    def post(self, data, name, version):
        """Submit evidence (never edited; corrections supersede)

        The fields each kind needs are its own schema (PrivacyAssessmentFields
        for privacy_assessment, and so on); a 422 names that schema and each
        field it refused.
        """
        return records.submit_evidence(ledger(), actor(), name, version, data["kind"], data["fields"],
                                        data["document_sha256"], data["supersedes"])


@blp.route("/models/<name>/versions/<version>/evidence/bias-report")
class ComputedBiasReport(MethodView):
    @require_roles("author")
    @blp.arguments(BiasSampleIn)
    @blp.response(201, EvidenceOut)
    @blp.errors(*SUBMISSION_ERRORS)
    @blp.doc(security=SECURITY, operationId="computeBiasReport")
    def post(self, data, name, version):
        """Compute a bias report with fairlearn from a labelled sample and record it"""
        fields = compute_bias_metrics(data["y_true"], data["y_pred"], data["sensitive_features"])
        fields["dataset"] = data["dataset"]
        return records.submit_evidence(ledger(), actor(), name, version, "bias_report", fields,
                                        supersedes=data["supersedes"])


@blp.route("/documents")
class Documents(MethodView):
    @require_roles("author")
    @blp.response(201, DocumentOut)
    @blp.alt_response(200, schema=DocumentOut, description="already stored")
    @blp.errors((422, "the document is empty, or larger than GOV_MAX_DOCUMENT_BYTES"))
    @blp.doc(security=SECURITY, operationId="uploadDocument", requestBody={"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
    def post(self):
        """Upload a document (raw body); it is stored under its SHA-256"""
        media_type = (request.mimetype or "application/octet-stream")[:128]
        result = documents.store_document(ledger(), actor(), request.get_data(), media_type,
                                         current_app.config["GOV_MAX_DOCUMENT_BYTES"])
        return result, (201 if result.pop("created") else 200)


@blp.route("/documents/<sha256>")
class Document(MethodView):
    @require_roles(*READ_ROLES)
    @blp.errors((404, "no document with this SHA-256"), (422, "not a lowercase hex SHA-256"))
    @blp.doc(security=SECURITY, operationId="getDocument", responses={200: {
        "description": "the document bytes, with the media type it was uploaded with",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    def get(self, sha256):
        """Download a document by its SHA-256"""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidRequestError("a document is named by its lowercase hex SHA-256")
        content, media_type = documents.get_document(engine(), sha256)
        return Response(content, mimetype=media_type, headers={
            "Content-Disposition": f'attachment; filename="{sha256}"',
            "X-Content-Type-Options": "nosniff"})
