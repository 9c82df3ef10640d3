"""Models, model versions, datasets and dataset versions (``/api/v1``)."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate

from ledger.http import Blueprint, QueryInteger, require_roles

from ..gate import views
from ..identity.principals import READ_ROLES
from ..registry import datasets, models
from .common import (
    Bool, Int, Label, Name, Sha256, StrictSchema, Text, Version, actor, created_status, engine, ledger, policies,
)

blp = Blueprint("registry", __name__, url_prefix="/api/v1",
                description="Model registry and dataset catalogue")
SECURITY = [{"bearerAuth": []}]


# -- schemas ------------------------------------------------------------------

class ModelIn(StrictSchema):
    name = Name(required=True)
    description = Text(10_000, load_default="")
    owner = Label(256, required=True, metadata={"description": "the accountable person"})
    intended_use = Text(10_000, load_default="")
    risk_tier = ma.fields.String(required=True, validate=validate.OneOf(models.RISK_TIERS))
    uses_personal_data = Bool(required=True)
    protected_attributes = ma.fields.List(Label(64), load_default=list, validate=validate.Length(max=50))
    tags = ma.fields.List(Label(64), load_default=list, validate=validate.Length(max=50))


class ModelOut(ma.Schema):
    name = ma.fields.String()
    description = ma.fields.String()
    owner = ma.fields.String()
    intended_use = ma.fields.String()
    risk_tier = ma.fields.String()
    uses_personal_data = ma.fields.Boolean()
    protected_attributes = ma.fields.List(ma.fields.String())
    tags = ma.fields.List(ma.fields.String())
    created_at = ma.fields.String()
    created_by = ma.fields.String()
    seq = ma.fields.Integer()
    versions = ma.fields.List(ma.fields.Dict())


class ModelQuery(ma.Schema):
    risk_tier = ma.fields.String(validate=validate.OneOf(models.RISK_TIERS))
    tag = Label(64)
    limit = QueryInteger(load_default=100, validate=validate.Range(min=1, max=500))
    after = Name(metadata={"description": "name of the last model of the previous page"})


class DatasetRef(StrictSchema):
    name = Name(required=True)
    version = Version(required=True)


class LineageIdentity(StrictSchema):
    namespace = Label(256, required=True)
    name = Label(512, required=True)


class VersionIn(StrictSchema):
    version = Version(required=True)
    artifact_sha256 = Sha256(required=True)
    artifact_uri = Text(2048, load_default="")
    framework = Label(128, min_length=0, load_default="")  # "" (unknown) is the default, so a client may send it
    description = Text(10_000, load_default="")
    training_datasets = ma.fields.List(ma.fields.Nested(DatasetRef), load_default=list,
                                       validate=validate.Length(max=200))
    metrics = ma.fields.Dict(keys=Label(128), values=ma.fields.Raw(), load_default=dict,
                             validate=validate.Length(max=200))
    lineage = ma.fields.Nested(LineageIdentity, load_default=None, allow_none=True,
                               metadata={"description": "OpenLineage identity of the artifact"})


class TrainingDatasetOut(ma.Schema):
    name = ma.fields.String()
    version = ma.fields.String()
    content_sha256 = ma.fields.String()


class VersionOut(ma.Schema):
    model = ma.fields.String()
    version = ma.fields.String()
    artifact_sha256 = ma.fields.String()
    artifact_uri = ma.fields.String()
    framework = ma.fields.String()
    description = ma.fields.String()
    training_datasets = ma.fields.List(ma.fields.Nested(TrainingDatasetOut))
    metrics = ma.fields.Dict()
    lineage = ma.fields.Dict(allow_none=True)
    created_at = ma.fields.String()
    created_by = ma.fields.String()
    seq = ma.fields.Integer()


class VersionDetailOut(VersionOut):
    evidence = ma.fields.List(ma.fields.Dict())
    approvals = ma.fields.List(ma.fields.Dict())
    deployments = ma.fields.List(ma.fields.Dict())
    policy_status = ma.fields.Dict(allow_none=True)


class DatasetIn(StrictSchema):
    name = Name(required=True)
    description = Text(10_000, load_default="")
    owner = Label(256, required=True)
    source_system = Label(256, required=True)
    lineage_namespace = Label(256, metadata={"description": "OpenLineage namespace (default ml-governance)"})
    lineage_name = Label(512, metadata={"description": "OpenLineage dataset name (default: name)"})


class DatasetOut(ma.Schema):
    name = ma.fields.String()
    description = ma.fields.String()
    owner = ma.fields.String()
    source_system = ma.fields.String()
    lineage_namespace = ma.fields.String()
    lineage_name = ma.fields.String()
    created_at = ma.fields.String()
    created_by = ma.fields.String()
    seq = ma.fields.Integer()


class Column(StrictSchema):
    name = Label(256, required=True)
    type = Label(64, required=True)


class DatasetVersionIn(StrictSchema):
    version = Version(required=True)
    content_sha256 = Sha256(required=True)
    uri = Text(2048, load_default="")
    source_system = Label(256)
    schema = ma.fields.List(ma.fields.Nested(Column), load_default=list,
                            validate=validate.Length(max=2000))
    pii_columns = ma.fields.List(Label(256), load_default=list, validate=validate.Length(max=2000))
    legal_basis = ma.fields.String(load_default=None, allow_none=True,
                                   validate=validate.OneOf(datasets.LEGAL_BASES),
                                   metadata={"description": "GDPR Art. 6 basis"})
    consent_reference = Label(512, load_default=None, allow_none=True)
    retention_period = ma.fields.String(
        load_default=None, allow_none=True,
        validate=validate.And(validate.Length(max=32), validate.Regexp(r"^P(?!\Z)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?\Z",
                                 error="must be an ISO 8601 period such as P90D or P5Y")))
    row_count = Int(load_default=None, allow_none=True,
                                  validate=validate.Range(min=0, max=2**53 - 1))


class DatasetVersionOut(ma.Schema):
    dataset = ma.fields.String()
    version = ma.fields.String()
    content_sha256 = ma.fields.String()
    uri = ma.fields.String()
    source_system = ma.fields.String()
    schema = ma.fields.List(ma.fields.Dict())
    pii_columns = ma.fields.List(ma.fields.String())
    legal_basis = ma.fields.String(allow_none=True)
    consent_reference = ma.fields.String(allow_none=True)
    retention_period = ma.fields.String(allow_none=True)
    row_count = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.String()
    created_by = ma.fields.String()
    seq = ma.fields.Integer()


class PageQuery(ma.Schema):
    limit = QueryInteger(load_default=100, validate=validate.Range(min=1, max=500))
    after = Name()


# -- views --------------------------------------------------------------------

@blp.route("/models")
class Models(MethodView):
    @require_roles(*READ_ROLES)
    @blp.arguments(ModelQuery, location="query")
    @blp.response(200, ModelOut(many=True))
    @blp.doc(security=SECURITY, operationId="listModels")
    def get(self, query):
        """List models"""
        return models.list_models(engine(), **query)

    @require_roles("author")
    @blp.arguments(ModelIn)
    @blp.response(201, ModelOut)
    @blp.alt_response(200, schema=ModelOut, description="identical model already registered")
    @blp.errors((409, "a model of that name is registered with other fields"))
    @blp.doc(security=SECURITY, operationId="registerModel")
    def post(self, data):
        """Register a model"""
        result = models.register_model(ledger(), actor(), data)
        return result, created_status(result)


@blp.route("/models/<name>")
class Model(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, ModelOut)
    @blp.errors((404, "no such model"))
    @blp.doc(security=SECURITY, operationId="getModel")
    def get(self, name):
        """A model and its versions"""
        return models.get_model(engine(), name)


@blp.route("/models/<name>/versions")
class Versions(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, VersionOut(many=True))
    @blp.errors((404, "no such model"))
    @blp.doc(security=SECURITY, operationId="listModelVersions")
    def get(self, name):
        """List the versions of a model"""
        return models.list_versions(engine(), name)

    @require_roles("author")
    @blp.arguments(VersionIn)
    @blp.response(201, VersionOut)
    @blp.alt_response(200, schema=VersionOut, description="identical version already registered")
    @blp.errors((404, "no such model, or no such training dataset version"),
                (409, "version registered with a different digest or fields"))
    @blp.doc(security=SECURITY, operationId="registerModelVersion")
    def post(self, data, name):
        """Register an immutable model version"""
        result = models.register_version(ledger(), actor(), name, data)
        return result, created_status(result)


@blp.route("/models/<name>/versions/<version>")
class ModelVersion(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, VersionDetailOut)
    @blp.errors((404, "no such model version"))
    @blp.doc(security=SECURITY, operationId="getModelVersion")
    def get(self, name, version):
        """A version with its evidence, approvals, deployments and policy status"""
        return views.version_detail(engine(), ledger(), policies(), name, version)


@blp.route("/datasets")
class Datasets(MethodView):
    @require_roles(*READ_ROLES)
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, DatasetOut(many=True))
    @blp.doc(security=SECURITY, operationId="listDatasets")
    def get(self, query):
        """List datasets"""
        return datasets.list_datasets(engine(), **query)

    @require_roles("author")
    @blp.arguments(DatasetIn)
    @blp.response(201, DatasetOut)
    @blp.alt_response(200, schema=DatasetOut, description="identical dataset already registered")
    @blp.errors((409, "a dataset of that name is registered with other fields, or another uses its lineage "
                      "identity"))
    @blp.doc(security=SECURITY, operationId="registerDataset")
    def post(self, data):
        """Register a dataset"""
        result = datasets.register_dataset(ledger(), actor(), data)
        return result, created_status(result)


@blp.route("/datasets/<name>/versions")
class DatasetVersions(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, DatasetVersionOut(many=True))
    @blp.errors((404, "no such dataset"))
    @blp.doc(security=SECURITY, operationId="listDatasetVersions")
    def get(self, name):
        """List the versions of a dataset"""
        return datasets.list_dataset_versions(engine(), name)

    @require_roles("author")
    @blp.arguments(DatasetVersionIn)
    @blp.response(201, DatasetVersionOut)
    @blp.alt_response(200, schema=DatasetVersionOut, description="identical version already registered")
    @blp.errors((404, "no such dataset"), (409, "version registered with a different digest or fields"))
    @blp.doc(security=SECURITY, operationId="registerDatasetVersion")
    def post(self, data, name):
        """Register a dataset version (content digest, schema, PII, legal basis)"""
        result = datasets.register_dataset_version(ledger(), actor(), name, data)
        return result, created_status(result)


@blp.route("/datasets/<name>/versions/<version>")
class DatasetVersion(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, DatasetVersionOut)
    @blp.errors((404, "no such dataset version"))
    @blp.doc(security=SECURITY, operationId="getDatasetVersion")
    def get(self, name, version):
        """One dataset version"""
        return datasets.get_dataset_version(engine(), name, version)
