"""Sign-offs of model versions (``/api/v1/models/{name}/versions/{version}/approvals``)."""

from __future__ import annotations

import marshmallow as ma
from flask import g
from flask.views import MethodView
from marshmallow import validate

from ledger.http import Blueprint, require_roles

from ..approvals import signoffs
from ..identity.principals import ANY_APPROVER, READ_ROLES
from .common import QueryBool, StrictSchema, Text, created_status, engine, ledger

blp = Blueprint("approvals", __name__, url_prefix="/api/v1",
                description="Approvals (sign-offs) with separation of duties")
SECURITY = [{"bearerAuth": []}]


class ApprovalIn(StrictSchema):
    role = ma.fields.String(required=True, validate=validate.Regexp(
        r"^(approver:)?[a-z][a-z0-9_]{0,47}\Z", error="must be an approval area such as "
        "'privacy' or 'approver:privacy'"))
    decision = ma.fields.String(required=True, validate=validate.OneOf(signoffs.DECISIONS))
    comment = Text(10_000, required=True, min_length=1)


class RevocationIn(StrictSchema):
    reason = Text(10_000, required=True, min_length=1)


class ApprovalOut(ma.Schema):
    approval_id = ma.fields.String()
    model = ma.fields.String()
    version = ma.fields.String()
    role = ma.fields.String()
    area = ma.fields.String()
    decision = ma.fields.String()
    comment = ma.fields.String()
    evidence = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "evidence_id, kind and digest of each current evidence when decided"})
    artifact_sha256 = ma.fields.String()
    actor = ma.fields.String()
    decided_at = ma.fields.String()
    seq = ma.fields.Integer()
    revoked = ma.fields.Boolean()
    revoked_at = ma.fields.String(allow_none=True)
    revoked_by = ma.fields.String(allow_none=True)
    revoke_reason = ma.fields.String(allow_none=True)
    revoked_seq = ma.fields.Integer(allow_none=True)
    supersedes = ma.fields.String(allow_none=True, metadata={
        "description": "the same person's sign-off in this area that this one replaced"})
    superseded = ma.fields.Boolean()
    superseded_by = ma.fields.String(allow_none=True, metadata={
        "description": "the later sign-off by the same person in this area that replaced this one"})


class ApprovalQuery(ma.Schema):
    include_revoked = QueryBool(load_default=True, metadata={
        "description": "false: only the standing sign-offs (neither revoked nor superseded)"})


@blp.route("/models/<name>/versions/<version>/approvals")
class Approvals(MethodView):
    @require_roles(*READ_ROLES)
    @blp.arguments(ApprovalQuery, location="query")
    @blp.response(200, ApprovalOut(many=True))
    @blp.errors((404, "no such model version"))
    @blp.doc(security=SECURITY, operationId="listApprovals")
    def get(self, query, name, version):
        """Sign-offs of a version"""
        return signoffs.list_approvals(engine(), name, version, query["include_revoked"])

    @require_roles(ANY_APPROVER)
    @blp.arguments(ApprovalIn)
    @blp.response(201, ApprovalOut)
    @blp.alt_response(200, schema=ApprovalOut, description="the same sign-off again: the standing one")
    @blp.alt_response(403, description="missing approver role, or separation of duties")
    @blp.alt_response(409, description="already signed off this area on the same evidence with "
                                       "the same decision and another comment")
    @blp.errors((404, "no such model version"))
    @blp.doc(security=SECURITY, operationId="signOff")
    def post(self, data, name, version):
        """Approve or reject a version in one area (needs approver:<area>)

        A new sign-off supersedes the person's standing one in that area when
        the evidence or the decision changed since; the same sign-off again
        answers 200 with the standing one.
        """
        result = signoffs.decide(ledger(), g.principal, name, version, data["role"],
                                 data["decision"], data["comment"])
        return result, created_status(result)


@blp.route("/models/<name>/versions/<version>/approvals/<approval_id>/revoke")
class Revocation(MethodView):
    @require_roles(ANY_APPROVER, "admin")
    @blp.arguments(RevocationIn)
    @blp.response(201, ApprovalOut)
    @blp.errors((403, "the caller holds no approver role nor admin, or is neither the sign-off's author nor "
                      "an admin"),
                (404, "no such sign-off of this model version"),
                (409, "the sign-off was revoked already, or superseded (revoke its successor)"))
    @blp.doc(security=SECURITY, operationId="revokeApproval")
    def post(self, data, name, version, approval_id):
        """Revoke a sign-off (its author, or an admin); recorded as a new entry"""
        return signoffs.revoke(ledger(), g.principal, name, version, approval_id, data["reason"])
