"""Each evidence kind has its own schema, in the OpenAPI document and in its 422s.

The body of ``POST .../evidence`` is a ``oneOf`` discriminated by ``kind``:
one schema per kind, whose ``fields`` refer to the kind's fields schema
(PrivacyAssessmentFields...), with the fields each kind requires. A body
missing one is refused with a 422 whose message names the kind's schema and
the field, in the one error body; nothing is written.
"""

from __future__ import annotations

import json

import pytest

from governance.evidence.records import EVIDENCE_KINDS

EVIDENCE = "/api/v1/models/credit-risk/versions/1/evidence"
SCHEMAS = "#/components/schemas/"
# kind -> (body schema, fields schema, the fields it requires)
KINDS = {
    "privacy_assessment": ("PrivacyAssessmentEvidenceIn", "PrivacyAssessmentFields",
                           ["expires_at", "reviewer", "status"]),
    "bias_report": ("BiasReportEvidenceIn", "BiasReportFields", ["attributes"]),
    "explainability_report": ("ExplainabilityReportEvidenceIn", "ExplainabilityReportFields",
                              ["feature_importances", "method"]),
    "validation_report": ("ValidationReportEvidenceIn", "ValidationReportFields", ["passed"]),
    "model_card": ("ModelCardEvidenceIn", "ModelCardFields", []),
}
# kind -> a body's fields lacking one required field, and that field
MISSING = {
    "privacy_assessment": ({"status": "approved", "reviewer": "pat"}, "expires_at"),
    "bias_report": ({}, "attributes"),
    "explainability_report": ({"method": "shap.TreeExplainer"}, "feature_importances"),
    "validation_report": ({"summary": "held-out set"}, "passed"),
}


@pytest.fixture
def spec(client) -> dict:
    return json.loads(client.get("/api/openapi.json").get_data(as_text=True))


def test_the_body_is_a_oneof_discriminated_by_kind(spec):
    assert set(KINDS) == set(EVIDENCE_KINDS)
    operation = spec["paths"]["/api/v1/models/{name}/versions/{version}/evidence"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": SCHEMAS + "EvidenceIn"}
    schemas = spec["components"]["schemas"]
    assert schemas["EvidenceIn"] == {
        "oneOf": [{"$ref": SCHEMAS + body} for body, _, _ in KINDS.values()],
        "discriminator": {"propertyName": "kind",
                          "mapping": {kind: SCHEMAS + body for kind, (body, _, _) in KINDS.items()}},
    }
    for kind, (body, fields, required) in KINDS.items():
        variant = schemas[body]
        assert variant["required"] == ["fields", "kind"] and variant["additionalProperties"] is False
        assert variant["properties"]["kind"] == {"type": "string", "enum": [kind]}
        assert variant["properties"]["fields"]["$ref"] == SCHEMAS + fields
        assert set(variant["properties"]) == {"kind", "fields", "document_sha256", "supersedes"}
        assert schemas[fields].get("required", []) == required, kind
        assert schemas[fields]["additionalProperties"] is False


@pytest.mark.parametrize("kind", sorted(MISSING))
def test_a_missing_field_is_a_422_naming_the_kinds_schema(world, kind):
    world.registered_version()
    headers = world.author()
    fields, missing = MISSING[kind]
    size = world.ledger_size()
    response = world.client.post(EVIDENCE, json={"kind": kind, "fields": fields}, headers=headers)
    assert response.status_code == 422
    body = response.get_json()
    schema = KINDS[kind][1]
    assert body == {"code": 422, "status": "Unprocessable Entity",
                    "message": f"validation failed: fields ({schema}): {missing}: Missing data for required field.",
                    "errors": {"json": {"fields": {missing: ["Missing data for required field."]}}}}
    assert world.ledger_size() == size


def test_a_bad_field_deep_in_a_kind_is_named_by_its_path(world):
    world.registered_version()
    response = world.client.post(EVIDENCE, headers=world.author(), json={
        "kind": "explainability_report",
        "fields": {"method": "shap", "feature_importances": [{"feature": "income", "importance": "high"}]}})
    assert response.status_code == 422
    assert response.get_json()["message"] == (
        "validation failed: fields (ExplainabilityReportFields): feature_importances.0.importance: "
        "Not a valid number.")


def test_a_model_card_with_nothing_to_read_names_its_schema(world):
    world.registered_version()
    response = world.client.post(EVIDENCE, json={"kind": "model_card", "fields": {}}, headers=world.author())
    assert response.status_code == 422
    assert response.get_json()["message"] == (
        "validation failed: fields (ModelCardFields): a model card needs content, sections or a document")


@pytest.mark.parametrize(("body", "errors"), [
    ([], {"_schema": ["Invalid input type."]}),
    ("privacy_assessment", {"_schema": ["Invalid input type."]}),
    (7, {"_schema": ["Invalid input type."]}),
    ({"fields": {}}, {"kind": ["Missing data for required field."]}),
    ({"kind": "dpia", "fields": {}}, {"kind": [
        "Must be one of: privacy_assessment, bias_report, explainability_report, validation_report, model_card."]}),
    ({"kind": ["model_card"], "fields": {}}, {"kind": [
        "Must be one of: privacy_assessment, bias_report, explainability_report, validation_report, model_card."]}),
    ({"kind": "model_card"}, {"fields": ["Missing data for required field."]}),
    ({"kind": "model_card", "fields": {"content": "x"}, "extra": 1}, {"extra": ["Unknown field."]}),
], ids=["list", "string", "number", "no kind", "unknown kind", "kind in a list", "no fields", "unknown field"])
def test_a_body_that_is_no_kind_of_evidence_is_a_422(world, body, errors):
    world.registered_version()
    size = world.ledger_size()
    response = world.client.post(EVIDENCE, json=body, headers=world.author())
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"] == {"json": errors}
    assert world.ledger_size() == size
