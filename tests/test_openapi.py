"""``GET /api/openapi.json`` describes the whole HTTP API.

Every documented path is listed with its methods; every route of the app
under ``/api/v1`` is in the document; every operation whose view is
protected by ``require_roles`` declares the ``bearerAuth`` scheme, and the
public ledger operations do not; every ``$ref`` resolves. Every operation
has a stable operationId and declares the errors its construction implies,
each with the one error body ``Error``; summaries and descriptions are plain
text. Whether the declared statuses are the answered ones is
tests/test_contract.py's; the evidence kinds' schemas are
tests/test_evidence_kinds.py's.
"""

from __future__ import annotations

import json
import re

import pytest

# The HTTP API as documented (README.md, docs/ledger.md, the governance API).
DOCUMENTED = {
    "/api/v1/ledger/checkpoint": {"get"},
    "/api/v1/ledger/checkpoints": {"post"},
    "/api/v1/ledger/public-keys": {"get"},
    "/api/v1/ledger/entries": {"get"},
    "/api/v1/ledger/entries/{seq}": {"get"},
    "/api/v1/ledger/proofs/inclusion": {"get"},
    "/api/v1/ledger/proofs/consistency": {"get"},
    "/api/v1/models": {"get", "post"},
    "/api/v1/models/{name}": {"get"},
    "/api/v1/models/{name}/versions": {"get", "post"},
    "/api/v1/models/{name}/versions/{version}": {"get"},
    "/api/v1/datasets": {"get", "post"},
    "/api/v1/datasets/{name}/versions": {"get", "post"},
    "/api/v1/datasets/{name}/versions/{version}": {"get"},
    "/api/v1/lineage": {"post"},
    "/api/v1/models/{name}/versions/{version}/lineage": {"get"},
    "/api/v1/models/{name}/versions/{version}/evidence": {"get", "post"},
    "/api/v1/models/{name}/versions/{version}/approvals": {"get", "post"},
    "/api/v1/audit/events": {"get"},
}
PUBLIC_LEDGER = {
    ("/api/v1/ledger/checkpoint", "get"), ("/api/v1/ledger/public-keys", "get"),
    ("/api/v1/ledger/proofs/inclusion", "get"), ("/api/v1/ledger/proofs/consistency", "get"),
}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def openapi_path(rule: str) -> str:
    """``/models/<name>/versions/<int:seq>`` -> ``/models/{name}/versions/{seq}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def api_operations(app):
    """(openapi path, method, view function) of every route under /api/v1."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted(m.lower() for m in rule.methods if m.lower() in HTTP_METHODS):
            handler = getattr(view_class, method) if view_class else view
            yield openapi_path(rule.rule), method, handler


def test_the_document_is_openapi_json(spec):
    assert spec["openapi"] == "3.0.3"
    assert spec["info"] == {"title": "ML governance ledger", "version": "v1"}
    assert isinstance(spec["paths"], dict) and spec["paths"]
    for path, item in spec["paths"].items():
        assert path.startswith("/api/v1/"), path
        for method, operation in item.items():
            if method in HTTP_METHODS:
                assert operation["responses"], (path, method)
                assert operation.get("summary"), (path, method)


def test_every_documented_path_is_listed(spec):
    missing = {path: methods - set(spec["paths"].get(path, {}))
               for path, methods in DOCUMENTED.items()}
    assert {p: m for p, m in missing.items() if m} == {}


def test_every_route_of_the_app_is_listed(app, spec):
    operations = list(api_operations(app))
    assert len(operations) >= sum(len(m) for m in DOCUMENTED.values())
    for path, method, _ in operations:
        assert method in spec["paths"].get(path, {}), (path, method)


def test_protected_operations_declare_bearer_auth(app, spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    protected = public = 0
    for path, method, handler in api_operations(app):
        operation = spec["paths"][path][method]
        if getattr(handler, "required_roles", None):
            protected += 1
            assert {"bearerAuth": []} in operation.get("security", []), (path, method)
        else:
            public += 1
            assert not operation.get("security"), (path, method)
    assert protected >= 20
    assert {(p, m) for p, m, h in api_operations(app) if not getattr(h, "required_roles", None)} >= PUBLIC_LEDGER


def test_path_parameters_are_declared(spec):
    for path, item in spec["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = {p["name"] for p in item.get("parameters", []) + operation.get("parameters", [])
                        if p.get("in") == "path"}
            assert declared == names, (path, method, declared)
            for p in item.get("parameters", []) + operation.get("parameters", []):
                if p.get("in") == "path":
                    assert p["required"] is True, (path, p)


def test_ledger_query_parameters_are_documented_with_bounds(spec):
    def params(path):
        return {p["name"]: p for p in spec["paths"][path]["get"]["parameters"] if p["in"] == "query"}

    entries = params("/api/v1/ledger/entries")
    assert set(entries) == {"from", "limit"}
    assert entries["limit"]["schema"]["minimum"] == 1 and entries["limit"]["schema"]["maximum"] == 1000
    assert entries["from"]["schema"]["minimum"] == 0
    inclusion = params("/api/v1/ledger/proofs/inclusion")
    assert set(inclusion) == {"seq", "tree_size"}
    assert inclusion["seq"]["required"] is True and inclusion["tree_size"]["required"] is False
    consistency = params("/api/v1/ledger/proofs/consistency")
    assert set(consistency) == {"first", "second"}
    assert consistency["first"]["required"] is True and consistency["first"]["schema"]["minimum"] == 1


def test_every_reference_resolves(spec):
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target = spec
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, ref
            target = target[part]


# The operationIds clients are generated with: renaming one breaks them.
OPERATION_IDS = {
    ("get", "/api/v1/ledger/checkpoint"): "getLatestCheckpoint",
    ("post", "/api/v1/ledger/checkpoints"): "createCheckpoint",
    ("get", "/api/v1/ledger/public-keys"): "listPublicKeys",
    ("get", "/api/v1/ledger/entries"): "listEntries",
    ("get", "/api/v1/ledger/entries/{seq}"): "getEntry",
    ("get", "/api/v1/ledger/proofs/inclusion"): "getInclusionProof",
    ("get", "/api/v1/ledger/proofs/consistency"): "getConsistencyProof",
    ("get", "/api/v1/models"): "listModels",
    ("post", "/api/v1/models"): "registerModel",
    ("get", "/api/v1/models/{name}"): "getModel",
    ("get", "/api/v1/models/{name}/versions"): "listModelVersions",
    ("post", "/api/v1/models/{name}/versions"): "registerModelVersion",
    ("get", "/api/v1/models/{name}/versions/{version}"): "getModelVersion",
    ("get", "/api/v1/datasets"): "listDatasets",
    ("post", "/api/v1/datasets"): "registerDataset",
    ("get", "/api/v1/datasets/{name}/versions"): "listDatasetVersions",
    ("post", "/api/v1/datasets/{name}/versions"): "registerDatasetVersion",
    ("get", "/api/v1/datasets/{name}/versions/{version}"): "getDatasetVersion",
    ("post", "/api/v1/lineage"): "recordRunEvent",
    ("get", "/api/v1/models/{name}/versions/{version}/lineage"): "getVersionLineage",
    ("get", "/api/v1/models/{name}/versions/{version}/evidence"): "listEvidence",
    ("post", "/api/v1/models/{name}/versions/{version}/evidence"): "submitEvidence",
    ("post", "/api/v1/models/{name}/versions/{version}/evidence/bias-report"): "computeBiasReport",
    ("post", "/api/v1/documents"): "uploadDocument",
    ("get", "/api/v1/documents/{sha256}"): "getDocument",
    ("get", "/api/v1/models/{name}/versions/{version}/approvals"): "listApprovals",
    ("post", "/api/v1/models/{name}/versions/{version}/approvals"): "signOff",
    ("post", "/api/v1/models/{name}/versions/{version}/approvals/{approval_id}/revoke"): "revokeApproval",
    ("post", "/api/v1/deployments/check"): "checkDeployment",
    ("get", "/api/v1/deployments"): "listDeployments",
    ("post", "/api/v1/deployments"): "recordDeployment",
    ("get", "/api/v1/deployments/live"): "getLiveVersion",
    ("post", "/api/v1/deployments/{deployment_id}/rollback"): "rollbackDeployment",
    ("get", "/api/v1/deployments/overrides"): "listOverrides",
    ("post", "/api/v1/deployments/overrides"): "requestOverride",
    ("post", "/api/v1/deployments/overrides/{override_id}/confirm"): "confirmOverride",
    ("get", "/api/v1/decisions/{decision_id}"): "getDecision",
    ("get", "/api/v1/decisions/{decision_id}/replay"): "replayDecision",
    ("get", "/api/v1/policies"): "getPolicies",
    ("post", "/api/v1/policies/reload"): "reloadPolicies",
    ("get", "/api/v1/audit/events"): "listAuditEvents",
}
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_every_operation_has_its_stable_operation_id(spec):
    ids = {(method, path): operation.get("operationId") for path, method, operation in operations(spec)}
    assert ids == OPERATION_IDS
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)+", i) for i in ids.values()), ids


def test_every_error_response_is_the_one_error_body(spec):
    assert spec["components"]["schemas"]["Error"] == {
        "type": "object",
        "properties": {
            "code": {"type": "integer", "description": "the HTTP status code"},
            "status": {"type": "string", "description": "the HTTP status phrase"},
            "message": {"type": "string", "description": "what was refused, and why"},
            "errors": {"type": "object", "additionalProperties": {}, "description": (
                "details: for a validation failure, each bad field's messages under where it was sent "
                "(json, query), as {json: {field: [message]}}")}},
        "required": ["code", "message", "status"],
        "additionalProperties": False,
    }
    for path, method, operation in operations(spec):
        statuses = set(operation["responses"])
        assert "default" not in statuses, (path, method)  # each error is declared, none is implied
        assert all(s.isdigit() for s in statuses), (path, method, statuses)
        assert any(s.startswith("2") for s in statuses), (path, method, statuses)
        for status, response in operation["responses"].items():
            assert response["description"], (path, method, status)
            if int(status) >= 400:
                assert response["content"] == ERROR_BODY, (path, method, status)


def test_every_operation_declares_the_errors_its_construction_implies(app, spec):
    for path, method, handler in api_operations(app):
        operation = spec["paths"][path][method]
        declared = {int(s) for s in operation["responses"] if int(s) >= 400}
        implied = {400, 413, 503}  # a control character in the URL, a body too large, the database down
        if getattr(handler, "required_roles", None):
            implied |= {401, 403}
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            implied |= {415, 422}
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            implied |= {422}
        assert implied <= declared, (path, method, implied - declared)


def test_operations_with_a_path_parameter_declare_404_for_a_missing_resource(spec):
    for path, method, operation in operations(spec):
        if "{" in path:
            assert "404" in operation["responses"], (path, method)


def test_summaries_and_descriptions_are_plain_text(spec):
    texts = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("summary", "description") and isinstance(value, str):
                    texts.append((where, value))
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(spec, "")
    assert len(texts) > 300
    markup = re.compile(r"``|`|:(?:class|func|meth|data|attr):|\*\*")
    assert [(where, text) for where, text in texts if markup.search(text)] == []
    assert all(text.strip() == text and text for _, text in texts)


def test_audit_events_declare_their_json_and_csv_bodies(spec):
    ok = spec["paths"]["/api/v1/audit/events"]["get"]["responses"]["200"]
    assert ok["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/EventPageOut"}},
        "text/csv": {"schema": {"type": "string"}},
    }
    assert ok["headers"]["X-Next-Cursor"]["schema"] == {"type": "string"}
    parameters = {p["name"]: p for p in spec["paths"]["/api/v1/audit/events"]["get"]["parameters"]}
    assert parameters["format"]["schema"]["enum"] == ["json", "csv"]


def test_the_policy_endpoints_declare_their_bodies(spec):
    for path, method in (("/api/v1/policies", "get"), ("/api/v1/policies/reload", "post")):
        ok = spec["paths"][path][method]["responses"]["200"]
        assert ok["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/PolicySetOut"}}}
    policy_set = spec["components"]["schemas"]["PolicySetOut"]["properties"]
    assert set(policy_set) == {"policy_digest", "loaded_at", "loaded_by", "seq", "status", "files", "params",
                               "environments", "rules"}
    assert policy_set["rules"]["items"] == {"$ref": "#/components/schemas/PolicyRuleOut"}


def test_documents_declare_their_bytes(spec):
    binary = {"schema": {"type": "string", "format": "binary"}}
    upload = spec["paths"]["/api/v1/documents"]["post"]
    assert upload["requestBody"] == {"required": True, "content": {"application/octet-stream": binary}}
    download = spec["paths"]["/api/v1/documents/{sha256}"]["get"]["responses"]["200"]
    assert download["content"] == {"application/octet-stream": binary}
