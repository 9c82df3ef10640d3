"""``GET /api/openapi.json`` describes the whole HTTP API.

Every documented path is listed with its methods; every route of the app
under ``/api/v1`` is in the document; every operation whose view is
protected by ``require_roles`` declares the ``bearerAuth`` scheme, and the
public ledger operations do not; every ``$ref`` resolves.
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
