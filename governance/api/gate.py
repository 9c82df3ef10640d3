"""The deployment gate (``/api/v1/deployments``, ``/decisions``, ``/policies``)."""

from __future__ import annotations

import marshmallow as ma
from flask import current_app, g, jsonify
from flask.views import MethodView
from marshmallow import validate

from ledger.http import Blueprint, QueryInteger, require_roles

from ..gate import decisions, deployments, overrides
from ..identity.principals import ANY_APPROVER, READ_ROLES
from ..policy.registry import policy_set_json
from .common import Int, Name, StrictSchema, Text, Version, actor, engine, ledger, policies

blp = Blueprint("gate", __name__, url_prefix="/api/v1",
                description="Deployment gate: policy checks, decisions, deployments, rollbacks")
SECURITY = [{"bearerAuth": []}]
ENVIRONMENT = r"^[a-z][a-z0-9_-]{0,63}\Z"
POLICY_422 = (422, "a field is missing or invalid (errors names each), or no policy set is usable")


def Environment(**kwargs):
    return ma.fields.String(validate=validate.Regexp(
        ENVIRONMENT, error="must be a lowercase environment name such as prod"), **kwargs)


class CheckIn(StrictSchema):
    model = Name(required=True)
    version = Version(required=True)
    environment = Environment(required=True)


class ResultOut(ma.Schema):
    rule = ma.fields.String()
    policy = ma.fields.String()
    severity = ma.fields.String()
    applicable = ma.fields.Boolean()
    passed = ma.fields.Boolean()
    message = ma.fields.String()
    remediation = ma.fields.String(allow_none=True)


class DecisionOut(ma.Schema):
    decision = ma.fields.String(metadata={"description": "allow or deny"})
    decision_id = ma.fields.String()
    seq = ma.fields.Integer()
    model = ma.fields.String()
    version = ma.fields.String()
    environment = ma.fields.String()
    policy_digest = ma.fields.String()
    input_digest = ma.fields.String(metadata={"description": "SHA-256 of the canonical inputs"})
    expires_at = ma.fields.String()
    override_id = ma.fields.String(allow_none=True)
    action = ma.fields.String(metadata={"description": "deploy (a check) or rollback"})
    rolls_back = ma.fields.String(allow_none=True, metadata={
        "description": "the deployment a rollback decision is about"})
    deployment_id = ma.fields.String(allow_none=True)
    results = ma.fields.List(ma.fields.Nested(ResultOut))


class DeployIn(StrictSchema):
    decision_id = ma.fields.String(required=True, validate=validate.Regexp(r"^dc-\d{1,16}\Z"))
    reason = Text(2000, load_default="")


class RollbackIn(StrictSchema):
    reason = Text(2000, required=True, min_length=1)


class DeploymentOut(ma.Schema):
    deployment_id = ma.fields.String()
    model = ma.fields.String()
    version = ma.fields.String()
    environment = ma.fields.String()
    action = ma.fields.String()
    decision_id = ma.fields.String(allow_none=True)
    previous_version = ma.fields.String(allow_none=True)
    rolls_back = ma.fields.String(allow_none=True)
    rolled_back_by = ma.fields.String(allow_none=True)
    reason = ma.fields.String()
    actor = ma.fields.String()
    at = ma.fields.String()
    seq = ma.fields.Integer()
    flagged = ma.fields.Boolean()


class RollbackOut(DeploymentOut):
    decision = ma.fields.Nested(DecisionOut, metadata={
        "description": "the gate's decision on the rollback (action rollback), recorded before it"})


class HistoryQuery(ma.Schema):
    model = Name()
    environment = Environment()
    limit = QueryInteger(load_default=100, validate=validate.Range(min=1, max=500))
    before_seq = QueryInteger(validate=validate.Range(min=0, max=2**53 - 1))


class LiveQuery(ma.Schema):
    model = Name(required=True)
    environment = Environment(required=True)
    at = ma.fields.AwareDateTime(required=True, format="iso")


class LiveOut(ma.Schema):
    model = ma.fields.String()
    environment = ma.fields.String()
    at = ma.fields.String()
    version = ma.fields.String(allow_none=True)
    deployment = ma.fields.Nested(DeploymentOut, allow_none=True)
    established_by = ma.fields.Dict(allow_none=True, metadata={
        "description": "entry and inclusion_proof (against checkpoint) of the deployment that made it live"})
    next_change = ma.fields.Dict(allow_none=True, metadata={
        "description": "entry and inclusion_proof (against checkpoint) of the next change, if any"})
    tree_size = ma.fields.Integer(metadata={
        "description": "the answer holds for the first tree_size entries (at most the checkpoint's)"})
    checkpoint = ma.fields.Dict(allow_none=True, metadata={
        "description": "the signed checkpoint both proofs verify against (tree_size, root_hash, note)"})


class ReplayOut(ma.Schema):
    decision_id = ma.fields.String()
    seq = ma.fields.Integer()
    matches = ma.fields.Boolean()
    policy_digest = ma.fields.String()
    input_digest = ma.fields.String()
    recorded_decision = ma.fields.String()
    replayed_decision = ma.fields.String()
    differences = ma.fields.List(ma.fields.String())
    results = ma.fields.List(ma.fields.Nested(ResultOut))


class OverrideIn(StrictSchema):
    model = Name(required=True)
    version = Version(required=True)
    environment = Environment(required=True)
    justification = Text(5000, required=True, min_length=20)
    expires_in_minutes = Int(load_default=60, validate=validate.Range(
        min=1, max=overrides.MAX_MINUTES))


class OverrideOut(ma.Schema):
    override_id = ma.fields.String()
    model = ma.fields.String()
    version = ma.fields.String()
    environment = ma.fields.String()
    justification = ma.fields.String()
    requested_by = ma.fields.String()
    requested_at = ma.fields.String()
    expires_at = ma.fields.String()
    confirmed_by = ma.fields.String(allow_none=True)
    confirmed_at = ma.fields.String(allow_none=True)
    seq = ma.fields.Integer()
    active = ma.fields.Boolean()


class OverrideQuery(ma.Schema):
    model = Name()


@blp.route("/deployments/check")
class Check(MethodView):
    @require_roles("deployer")
    @blp.arguments(CheckIn)
    @blp.response(200, DecisionOut)
    @blp.errors((404, "no such model version"), POLICY_422)
    @blp.doc(security=SECURITY, operationId="checkDeployment")
    def post(self, data):
        """May this version go to this environment? Recorded, allow or deny (a deny is a 200)"""
        decision = decisions.check(ledger(), policies(), actor(), data["model"], data["version"],
                              data["environment"], current_app.config["GATE_DECISION_TTL_SECONDS"])
        return jsonify(decision)  # already DecisionOut's shape; the schema documents it


@blp.route("/deployments")
class Deployments(MethodView):
    @require_roles(*READ_ROLES)
    @blp.arguments(HistoryQuery, location="query")
    @blp.response(200, DeploymentOut(many=True))
    @blp.doc(security=SECURITY, operationId="listDeployments")
    def get(self, query):
        """Deployment history, newest first"""
        return deployments.history(engine(), **query)

    @require_roles("deployer")
    @blp.arguments(DeployIn)
    @blp.response(201, DeploymentOut)
    @blp.alt_response(409, description="the decision was a deny, expired, used, or is stale")
    @blp.errors((404, "no such decision"), POLICY_422)
    @blp.doc(security=SECURITY, operationId="recordDeployment")
    def post(self, data):
        """Record a deployment from a current allow decision"""
        return deployments.record_deployment(ledger(), policies(), actor(), data["decision_id"], data["reason"])


@blp.route("/deployments/live")
class Live(MethodView):
    @require_roles(*READ_ROLES)
    @blp.arguments(LiveQuery, location="query")
    @blp.response(200, LiveOut)
    @blp.errors((404, "no such model"))
    @blp.doc(security=SECURITY, operationId="getLiveVersion")
    def get(self, query):
        """Which version was live in an environment at a time, with the proving entries"""
        return deployments.live_at(ledger(), query["model"], query["environment"], query["at"])


@blp.route("/deployments/<deployment_id>/rollback")
class Rollback(MethodView):
    @require_roles("deployer")
    @blp.arguments(RollbackIn)
    @blp.response(201, RollbackOut)
    @blp.alt_response(409, description="not the live deployment, nothing to return to, or the gate "
                                       "denied the rollback (the recorded decision is in errors.decision)")
    @blp.errors((404, "no such deployment"), POLICY_422)
    @blp.doc(security=SECURITY, operationId="rollbackDeployment")
    def post(self, data, deployment_id):
        """Roll the live deployment back to the version live before it, through the gate

        The rollback's own decision (action rollback) is recorded; an allow
        records the rollback with it, a deny records nothing else.
        """
        return deployments.rollback(ledger(), policies(), actor(), deployment_id, data["reason"],
                                    current_app.config["GATE_DECISION_TTL_SECONDS"])


@blp.route("/deployments/overrides")
class Overrides(MethodView):
    @require_roles(*READ_ROLES)
    @blp.arguments(OverrideQuery, location="query")
    @blp.response(200, OverrideOut(many=True))
    @blp.doc(security=SECURITY, operationId="listOverrides")
    def get(self, query):
        """Break-glass overrides, newest first"""
        return overrides.list_overrides(engine(), query.get("model"))

    @require_roles("admin")
    @blp.arguments(OverrideIn)
    @blp.response(201, OverrideOut)
    @blp.errors((404, "no such model version"),
                (422, "a field is missing or invalid (errors names each), the environment is not one the "
                      "policy set names, or no policy set is usable"))
    @blp.doc(security=SECURITY, operationId="requestOverride")
    def post(self, data):
        """Request a break-glass override (admin; an approver must confirm it)"""
        return overrides.request_override(ledger(), actor(), data["model"], data["version"],
                                          data["environment"], data["justification"],
                                          data["expires_in_minutes"],
                                          policies().current().environments)


@blp.route("/deployments/overrides/<override_id>/confirm")
class ConfirmOverride(MethodView):
    @require_roles(ANY_APPROVER)
    @blp.response(200, OverrideOut)
    @blp.errors((403, "the caller holds no approver role, or requested the override, or wrote the version"),
                (404, "no such override"), (409, "the override was confirmed already, or expired"))
    @blp.doc(security=SECURITY, operationId="confirmOverride")
    def post(self, override_id):
        """Confirm a break-glass override (an approver other than the requester)"""
        return overrides.confirm_override(ledger(), g.principal, override_id)


@blp.route("/decisions/<decision_id>")
class Decision(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, DecisionOut)
    @blp.errors((404, "no such decision"))
    @blp.doc(security=SECURITY, operationId="getDecision")
    def get(self, decision_id):
        """A recorded decision"""
        return decisions.get_decision(ledger(), decision_id)


@blp.route("/decisions/<decision_id>/replay")
class Replay(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, ReplayOut)
    @blp.errors((404, "no such decision"))
    @blp.doc(security=SECURITY, operationId="replayDecision")
    def get(self, decision_id):
        """Re-evaluate a decision with its recorded policy set and inputs"""
        return decisions.replay(ledger(), policies(), decision_id)


class PolicyFileOut(ma.Schema):
    name = ma.fields.String()
    sha256 = ma.fields.String()


class PolicyMatchOut(ma.Schema):
    name = ma.fields.String()
    expression = ma.fields.String(metadata={"description": "CEL"})


class PolicyValidationOut(ma.Schema):
    expression = ma.fields.String(metadata={"description": "CEL"})
    message = ma.fields.String()
    messageExpression = ma.fields.String(allow_none=True)
    remediation = ma.fields.String(allow_none=True)


class PolicyRuleOut(ma.Schema):
    id = ma.fields.String()
    policy = ma.fields.String()
    description = ma.fields.String()
    severity = ma.fields.String(metadata={"description": "deny or warn"})
    environments = ma.fields.List(ma.fields.String(), metadata={"description": "empty: every environment"})
    match = ma.fields.List(ma.fields.Nested(PolicyMatchOut))
    validations = ma.fields.List(ma.fields.Nested(PolicyValidationOut))


class PolicySetOut(ma.Schema):
    policy_digest = ma.fields.String()
    loaded_at = ma.fields.String(allow_none=True)
    loaded_by = ma.fields.String(allow_none=True)
    seq = ma.fields.Integer(allow_none=True, metadata={"description": "the entry that recorded the set"})
    status = ma.fields.String(metadata={"description": "ok, or why the files on disk are not the active set"})
    files = ma.fields.List(ma.fields.Nested(PolicyFileOut))
    params = ma.fields.Dict(metadata={"description": "parameters of every environment"})
    environments = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(),
                                  metadata={"description": "environment -> the parameters in force there"})
    rules = ma.fields.List(ma.fields.Nested(PolicyRuleOut))


@blp.route("/policies")
class Policies(MethodView):
    @require_roles(*READ_ROLES)
    @blp.response(200, PolicySetOut)
    @blp.errors((422, "no policy set is usable: the files are invalid and none was recorded"))
    @blp.doc(security=SECURITY, operationId="getPolicies")
    def get(self):
        """The active policy set: files, parameters per environment, rules, digest"""
        return policy_set_json(policies().current(), policies())


@blp.route("/policies/reload")
class ReloadPolicies(MethodView):
    @require_roles("admin")
    @blp.response(200, PolicySetOut)
    @blp.errors((422, "the policy files are invalid: the message names the file, rule and position; the "
                      "active set stays"))
    @blp.doc(security=SECURITY, operationId="reloadPolicies")
    def post(self):
        """Re-read policies/ now; 422 with file, rule and position if invalid (old set stays)"""
        reg = policies()
        reg.refresh()
        if reg.error is not None:
            raise reg.error
        reg.record(reg.active, actor())
        return policy_set_json(reg.current(), reg)
