"""The registry HTTP API: models, model versions, datasets and dataset versions.

Every write answers with the ``seq`` of its ledger entry; every refused
request (401, 403, 404, 409, 422) leaves the ledger exactly as it was.
Registrations are idempotent when identical and a 409 when anything differs.
"""

from __future__ import annotations

import json
import re

import pytest

from factories import digest

API = "/api/v1"
MODEL_BODY = {"name": "credit-risk", "owner": "eve", "risk_tier": "high", "uses_personal_data": True,
              "protected_attributes": ["sex"]}
DATASET_BODY = {"name": "loans", "owner": "dana", "source_system": "warehouse"}
SCHEMA = [{"name": "age", "type": "int"}, {"name": "name", "type": "string"},
          {"name": "income", "type": "float"}]


def dataset_version_body(version: str = "v1", **fields) -> dict:
    return {"version": version, "content_sha256": digest(f"loans@{version}"), "schema": SCHEMA,
            "pii_columns": ["name"], "legal_basis": "contract", **fields}


def version_body(version: str = "1", **fields) -> dict:
    return {"version": version, "artifact_sha256": digest(f"credit-risk@{version}"),
            "training_datasets": [{"name": "loans", "version": "v1"}], **fields}


def send(world, method: str, url: str, body=None, headers=None):
    headers = world.author() if headers is None else headers
    if method == "GET":
        return world.client.get(url, headers=headers)
    return world.client.post(url, json=body, headers=headers)


def refused(world, method: str, url: str, body, code: int, message: str | None = None,
            headers=None) -> dict:
    """Send a request that must fail with ``code`` and write nothing; return the body."""
    if headers is None:
        headers = world.author()  # create the token first: its entry is not the request's
    size = world.ledger_size()
    response = send(world, method, url, body, headers)
    body_out = response.get_json()
    assert response.status_code == code, body_out
    assert body_out["code"] == code and isinstance(body_out["status"], str)
    if message is not None:
        assert re.search(message, body_out["message"]), body_out["message"]
    assert world.ledger_size() == size
    return body_out


def entry_payload(world, seq: int) -> tuple[str, str, str, dict]:
    entry = world.ledger.entry(seq)
    return entry.kind, entry.actor, entry.subject, json.loads(entry.canonical)["payload"]


# -- models -----------------------------------------------------------------------

def test_register_model(world):
    body = {**MODEL_BODY, "tags": ["retail", "credit", "retail"], "description": "PD model",
            "intended_use": "consumer loans", "protected_attributes": ["sex", "age", "sex"]}
    response = send(world, "POST", f"{API}/models", body)
    assert response.status_code == 201, response.get_json()
    model = response.get_json()
    assert model["seq"] == world.ledger_size() - 1
    expected = {"name": "credit-risk", "description": "PD model", "owner": "eve",
                "intended_use": "consumer loans", "risk_tier": "high", "uses_personal_data": True,
                "protected_attributes": ["age", "sex"], "tags": ["credit", "retail"]}
    assert {k: model[k] for k in expected} == expected
    assert model["created_by"] == "alice"
    assert entry_payload(world, model["seq"]) == ("model.registered", "alice", "model:credit-risk", expected)

    fetched = send(world, "GET", f"{API}/models/credit-risk").get_json()
    assert fetched == {**model, "versions": []}


def test_identical_model_repeat_is_200_with_the_original_seq(world):
    first = world.model()
    size = world.ledger_size()
    # Same fields; list order and duplicates do not make it different.
    response = send(world, "POST", f"{API}/models", {**MODEL_BODY, "protected_attributes": ["sex", "sex"]},
                    world.author("bob"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["seq"] == first["seq"]
    assert response.get_json()["created_by"] == "alice"
    assert world.ledger_size() == size + 1  # bob's token only


@pytest.mark.parametrize(("change", "fields"), [
    ({"owner": "mallory"}, ["owner"]),
    ({"risk_tier": "minimal", "uses_personal_data": False}, ["risk_tier", "uses_personal_data"]),
    ({"tags": ["x"]}, ["tags"]),
    ({"description": "other"}, ["description"]),
])
def test_same_model_name_with_different_fields_is_409(world, change, fields):
    original = world.model()
    body = refused(world, "POST", f"{API}/models", {**MODEL_BODY, **change}, 409,
                   f"^model credit-risk is already registered with different {', '.join(fields)}$")
    assert body["errors"]["json"] == {f: ["differs from the registered value"] for f in fields}
    assert send(world, "GET", f"{API}/models/credit-risk").get_json()["seq"] == original["seq"]
    assert send(world, "GET", f"{API}/models/credit-risk").get_json()["owner"] == "eve"


MODEL_INVALID = [
    ("missing-name", {"name": None}, "name", "Missing data for required field"),
    ("name-with-space", {"name": "credit risk"}, "name", "must be 1-128 characters"),
    ("name-leading-dot", {"name": ".hidden"}, "name", "must be 1-128 characters"),
    ("name-too-long", {"name": "m" * 129}, "name", "must be 1-128 characters"),
    ("name-not-string", {"name": 7}, "name", "Not a valid string"),
    ("risk-tier", {"risk_tier": "extreme"}, "risk_tier", "Must be one of: minimal, limited, high"),
    ("missing-personal-data", {"uses_personal_data": None}, "uses_personal_data", "Missing data"),
    ("empty-owner", {"owner": ""}, "owner", "Length must be between 1 and 256"),
    ("two-line-owner", {"owner": "eve\nmallory"}, "owner", "must be one line"),
    ("long-description", {"description": "d" * 10_001}, "description", "Length must be between 0 and 10000"),
    ("too-many-tags", {"tags": [f"t{i}" for i in range(51)]}, "tags", "Longer than maximum length 50"),
    ("unknown-field", {"colour": "red"}, "colour", "Unknown field"),
]


@pytest.mark.parametrize(("change", "field", "message"), [c[1:] for c in MODEL_INVALID],
                         ids=[c[0] for c in MODEL_INVALID])
def test_model_validation_errors_name_the_field(world, change, field, message):
    body = {k: v for k, v in {**MODEL_BODY, **change}.items() if v is not None}
    out = refused(world, "POST", f"{API}/models", body, 422, f"^validation failed: .*{field}")
    assert out["status"] == "Unprocessable Entity"
    assert set(out["errors"]) == {"json"}
    assert field in out["errors"]["json"]
    assert any(message in m for m in out["errors"]["json"][field])


def test_nested_list_errors_name_the_element(world):
    out = refused(world, "POST", f"{API}/models", {**MODEL_BODY, "protected_attributes": ["sex", ""]}, 422)
    assert out["errors"]["json"]["protected_attributes"] == {"1": ["Length must be between 1 and 64."]}


def test_get_unknown_model_is_404(world):
    out = refused(world, "GET", f"{API}/models/ghost", None, 404, "^no model 'ghost'$")
    assert set(out) == {"code", "status", "message"}
    assert out["status"] == "Not Found"


def test_model_detail_lists_its_versions(world):
    world.registered_version()
    second = world.version(version="2")
    model = send(world, "GET", f"{API}/models/credit-risk").get_json()
    assert [(v["version"], v["seq"]) for v in model["versions"]] == [
        ("1", second["seq"] - 1), ("2", second["seq"])]


# -- model lists ------------------------------------------------------------------------

@pytest.fixture
def catalogue(world):
    """Five models with different tiers and tags."""
    specs = [("alpha", "high", ["credit"]), ("bravo", "minimal", []), ("charlie", "high", ["fraud"]),
             ("delta", "limited", ["credit", "fraud"]), ("echo", "high", ["fraud"])]
    for name, tier, tags in specs:
        world.model(name, risk_tier=tier, tags=tags)
    return world


def names(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [m["name"] for m in response.get_json()]


LIST_FILTERS = [
    ("", ["alpha", "bravo", "charlie", "delta", "echo"]),
    ("?risk_tier=high", ["alpha", "charlie", "echo"]),
    ("?risk_tier=limited", ["delta"]),
    ("?tag=fraud", ["charlie", "delta", "echo"]),
    ("?tag=credit&risk_tier=high", ["alpha"]),
    ("?tag=none", []),
    ("?limit=2", ["alpha", "bravo"]),
    ("?limit=2&after=bravo", ["charlie", "delta"]),
    ("?after=echo", []),
    ("?after=b", ["bravo", "charlie", "delta", "echo"]),
    ("?risk_tier=high&after=alpha&limit=1", ["charlie"]),
]


def test_model_list_filters(catalogue):
    got = {query: names(send(catalogue, "GET", f"{API}/models{query}", headers=catalogue.auditor()))
           for query, _ in LIST_FILTERS}
    assert got == dict(LIST_FILTERS)


def test_paging_through_models_sees_each_once(catalogue):
    seen, after = [], None
    for _ in range(10):
        page = names(send(catalogue, "GET", f"{API}/models?limit=2" + (f"&after={after}" if after else "")))
        if not page:
            break
        assert len(page) <= 2
        seen += page
        after = page[-1]
    assert seen == ["alpha", "bravo", "charlie", "delta", "echo"]


TAG_PAGES = [
    ("?tag=fraud&limit=1", ["charlie"]),
    ("?tag=fraud&limit=2", ["charlie", "delta"]),
    ("?tag=credit&limit=1&after=alpha", ["delta"]),
    ("?tag=fraud&limit=1&after=delta", ["echo"]),
]


def test_tag_filter_applies_before_the_page_limit(catalogue):
    """A page of tagged models holds up to ``limit`` tagged models, not the
    tagged ones among the first ``limit`` models."""
    got = {query: names(send(catalogue, "GET", f"{API}/models{query}")) for query, _ in TAG_PAGES}
    assert got == dict(TAG_PAGES)


def test_model_list_rejects_bad_queries(world):
    for query, field in [("?risk_tier=extreme", "risk_tier"), ("?limit=0", "limit"), ("?limit=501", "limit"),
                         ("?limit=ten", "limit"), ("?after=not%20a%20name", "after"), ("?tag=", "tag")]:
        out = refused(world, "GET", f"{API}/models{query}", None, 422)
        assert field in out["errors"]["query"], query


# -- model versions ------------------------------------------------------------------

def test_register_version(world):
    dataset_version = world.dataset()
    world.model()
    body = version_body(metrics={"auc": 0.81, "ks": {"value": 0.4}}, framework="xgboost",
                        artifact_uri="s3://models/credit-risk/1", description="first",
                        lineage={"namespace": "airflow", "name": "train_credit_risk"})
    response = send(world, "POST", f"{API}/models/credit-risk/versions", body)
    assert response.status_code == 201, response.get_json()
    version = response.get_json()
    assert version["seq"] == world.ledger_size() - 1
    assert version["training_datasets"] == [
        {"name": "loans", "version": "v1", "content_sha256": dataset_version["content_sha256"]}]
    assert version["metrics"] == {"auc": 0.81, "ks": {"value": 0.4}}
    assert version["lineage"] == {"namespace": "airflow", "name": "train_credit_risk"}
    kind, actor, subject, payload = entry_payload(world, version["seq"])
    assert (kind, actor, subject) == ("model.version.registered", "alice", "model:credit-risk@1")
    assert payload["artifact_sha256"] == body["artifact_sha256"]
    assert payload["training_datasets"] == version["training_datasets"]

    listed = send(world, "GET", f"{API}/models/credit-risk/versions").get_json()
    assert listed == [version]
    detail = send(world, "GET", f"{API}/models/credit-risk/versions/1").get_json()
    assert {k: v for k, v in detail.items() if k not in ("policy_status",)} == {
        **version, "evidence": [], "approvals": [], "deployments": []}
    assert detail["policy_status"]["recorded"] is False
    assert detail["policy_status"]["environments"]["prod"]["decision"] == "deny"


def test_version_detail_includes_evidence_and_approvals(world):
    world.registered_version()
    evidence = world.evidence("model_card", {"content": "# Credit risk"}, headers=world.author("bob"))
    approval = world.approve("pat", "privacy")
    detail = send(world, "GET", f"{API}/models/credit-risk/versions/1", headers=world.auditor()).get_json()
    assert [(e["kind"], e["seq"]) for e in detail["evidence"]] == [("model_card", evidence["seq"])]
    assert [(a["area"], a["decision"], a["actor"], a["seq"]) for a in detail["approvals"]] == [
        ("privacy", "approve", "pat", approval["seq"])]


def test_identical_version_repeat_is_200_with_the_original_seq(world):
    first = world.registered_version()
    size = world.ledger_size()
    response = send(world, "POST", f"{API}/models/credit-risk/versions", version_body())
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["seq"] == first["seq"]
    assert world.ledger_size() == size


def test_version_with_a_different_artifact_is_409(world):
    first = world.registered_version()
    body = refused(world, "POST", f"{API}/models/credit-risk/versions",
                   version_body(artifact_sha256=digest("another artifact")), 409,
                   "^version credit-risk@1 is already registered with different artifact_sha256$")
    assert body["errors"]["json"] == {"artifact_sha256": ["differs from the registered value"]}
    detail = send(world, "GET", f"{API}/models/credit-risk/versions/1").get_json()
    assert (detail["artifact_sha256"], detail["seq"]) == (first["artifact_sha256"], first["seq"])


def test_version_trained_on_other_data_is_409(world):
    world.registered_version()
    world.dataset(version="v2")
    body = refused(world, "POST", f"{API}/models/credit-risk/versions",
                   version_body(training_datasets=[{"name": "loans", "version": "v2"}]), 409)
    assert set(body["errors"]["json"]) == {"training_datasets"}


@pytest.mark.parametrize(("refs", "missing"), [
    ([{"name": "loans", "version": "v9"}], ["loans@v9"]),
    ([{"name": "ghost", "version": "v1"}, {"name": "loans", "version": "v1"}], ["ghost@v1"]),
    ([{"name": "zeta", "version": "1"}, {"name": "ghost", "version": "2"}], ["ghost@2", "zeta@1"]),
])
def test_unregistered_training_dataset_is_422_naming_it(world, refs, missing):
    world.dataset()
    world.model()
    body = refused(world, "POST", f"{API}/models/credit-risk/versions", version_body(training_datasets=refs),
                   422, f"^training datasets are not registered: {re.escape(', '.join(missing))}$")
    assert body["errors"]["json"] == {"training_datasets": [f"not registered: {m}" for m in missing]}
    refused(world, "GET", f"{API}/models/credit-risk/versions/1", None, 404)


def test_duplicate_training_dataset_is_422(world):
    world.dataset()
    world.model()
    refs = [{"name": "loans", "version": "v1"}] * 2
    body = refused(world, "POST", f"{API}/models/credit-risk/versions", version_body(training_datasets=refs),
                   422, "lists a dataset version twice")
    assert body["errors"]["json"] == {"training_datasets": ["duplicate reference"]}


def test_version_of_unknown_model_is_404(world):
    world.dataset()
    refused(world, "POST", f"{API}/models/ghost/versions", version_body(), 404,
            "^no model 'ghost': register it first$")
    refused(world, "GET", f"{API}/models/ghost/versions", None, 404, "^no model 'ghost'$")
    refused(world, "GET", f"{API}/models/ghost/versions/1", None, 404, "^no model 'ghost'$")
    world.model()
    refused(world, "GET", f"{API}/models/credit-risk/versions/9", None, 404,
            "^no version '9' of model 'credit-risk'$")


VERSION_INVALID = [
    ("version-pattern", {"version": "1 2"}, "version", "must be 1-64 characters"),
    ("version-too-long", {"version": "9" * 65}, "version", "must be 1-64 characters"),
    ("sha-uppercase", {"artifact_sha256": digest("x").upper()}, "artifact_sha256", "64 lowercase hex"),
    ("sha-short", {"artifact_sha256": "ab" * 31}, "artifact_sha256", "64 lowercase hex"),
    ("missing-sha", {"artifact_sha256": None}, "artifact_sha256", "Missing data"),
    ("too-many-metrics", {"metrics": {f"m{i}": i for i in range(201)}}, "metrics", "Longer than maximum length 200"),
    ("metric-key-newline", {"metrics": {"a\nb": 1}}, "metrics", "must be one line"),
    ("dataset-ref-missing-version", {"training_datasets": [{"name": "loans"}]}, "training_datasets",
     "Missing data"),
    ("lineage-missing-name", {"lineage": {"namespace": "airflow"}}, "lineage", "Missing data"),
    ("framework-two-lines", {"framework": "a\nb"}, "framework", "must be one line"),
]


@pytest.mark.parametrize(("change", "field", "message"), [c[1:] for c in VERSION_INVALID],
                         ids=[c[0] for c in VERSION_INVALID])
def test_version_validation_errors_name_the_field(world, change, field, message):
    world.dataset()
    world.model()
    body = {k: v for k, v in version_body(**change).items() if v is not None}
    out = refused(world, "POST", f"{API}/models/credit-risk/versions", body, 422)
    assert field in out["errors"]["json"]
    assert message in json.dumps(out["errors"]["json"][field])


# -- datasets ---------------------------------------------------------------------

def test_register_dataset(world):
    response = send(world, "POST", f"{API}/datasets", {**DATASET_BODY, "description": "loan book"})
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    assert dataset["seq"] == world.ledger_size() - 1
    assert (dataset["lineage_namespace"], dataset["lineage_name"]) == ("ml-governance", "loans")
    kind, actor, subject, payload = entry_payload(world, dataset["seq"])
    assert (kind, actor, subject) == ("dataset.registered", "alice", "dataset:loans")
    assert payload["description"] == "loan book"

    size = world.ledger_size()
    repeat = send(world, "POST", f"{API}/datasets", {**DATASET_BODY, "description": "loan book"})
    assert repeat.status_code == 200 and repeat.get_json()["seq"] == dataset["seq"]
    assert world.ledger_size() == size
    assert send(world, "GET", f"{API}/datasets").get_json() == [dataset]


def test_dataset_conflicts_are_409(world):
    world.dataset()
    body = refused(world, "POST", f"{API}/datasets", {**DATASET_BODY, "owner": "mallory"}, 409,
                   "^dataset loans is already registered with different owner$")
    assert body["errors"]["json"] == {"owner": ["differs from the registered value"]}
    refused(world, "POST", f"{API}/datasets", {**DATASET_BODY, "name": "loans-copy", "lineage_name": "loans"},
            409, "^dataset loans already uses lineage identity ml-governance/loans$")


def test_dataset_paging(world):
    for name in ("d3", "d1", "d2", "d4"):
        send(world, "POST", f"{API}/datasets", {**DATASET_BODY, "name": name})
    assert names(send(world, "GET", f"{API}/datasets?limit=3")) == ["d1", "d2", "d3"]
    assert names(send(world, "GET", f"{API}/datasets?limit=3&after=d3")) == ["d4"]
    assert names(send(world, "GET", f"{API}/datasets?after=d4")) == []
    out = refused(world, "GET", f"{API}/datasets?limit=0", None, 422)
    assert "limit" in out["errors"]["query"]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"name": "loans/v1"}, "name", "must be 1-128 characters"),
    ({"source_system": None}, "source_system", "Missing data"),
    ({"owner": ["dana"]}, "owner", "Not a valid string"),
    ({"lineage_namespace": ""}, "lineage_namespace", "Length must be between 1 and 256"),
])
def test_dataset_validation_errors_name_the_field(world, change, field, message):
    body = {k: v for k, v in {**DATASET_BODY, **change}.items() if v is not None}
    out = refused(world, "POST", f"{API}/datasets", body, 422)
    assert message in json.dumps(out["errors"]["json"][field])


def test_register_dataset_version(world):
    send(world, "POST", f"{API}/datasets", DATASET_BODY)
    body = dataset_version_body(pii_columns=["name", "age", "name"], retention_period="P5Y",
                                row_count=120_000, consent_reference="DPA-7", uri="s3://data/loans/v1")
    response = send(world, "POST", f"{API}/datasets/loans/versions", body)
    assert response.status_code == 201, response.get_json()
    version = response.get_json()
    assert version["seq"] == world.ledger_size() - 1
    assert version["pii_columns"] == ["age", "name"]
    assert version["source_system"] == "warehouse"  # inherited from the dataset
    assert (version["retention_period"], version["row_count"]) == ("P5Y", 120_000)
    kind, actor, subject, payload = entry_payload(world, version["seq"])
    assert (kind, actor, subject) == ("dataset.version.registered", "alice", "dataset:loans@v1")
    assert payload["schema"] == SCHEMA

    size = world.ledger_size()
    repeat = send(world, "POST", f"{API}/datasets/loans/versions", body)
    assert repeat.status_code == 200 and repeat.get_json()["seq"] == version["seq"]
    assert world.ledger_size() == size
    assert send(world, "GET", f"{API}/datasets/loans/versions").get_json() == [version]
    assert send(world, "GET", f"{API}/datasets/loans/versions/v1").get_json() == version


def test_dataset_version_with_different_content_is_409(world):
    world.dataset()
    body = refused(world, "POST", f"{API}/datasets/loans/versions",
                   dataset_version_body(content_sha256=digest("tampered")), 409,
                   "^dataset version loans@v1 is already registered with different content_sha256$")
    assert body["errors"]["json"] == {"content_sha256": ["differs from the registered value"]}


def test_pii_columns_not_in_schema_are_422(world):
    send(world, "POST", f"{API}/datasets", DATASET_BODY)
    body = refused(world, "POST", f"{API}/datasets/loans/versions",
                   dataset_version_body(pii_columns=["name", "ssn", "email"]), 422,
                   "^PII columns not in the schema: email, ssn$")
    assert body["errors"]["json"] == {"pii_columns": ["not in schema: email", "not in schema: ssn"]}


def test_duplicate_schema_columns_are_422(world):
    send(world, "POST", f"{API}/datasets", DATASET_BODY)
    body = refused(world, "POST", f"{API}/datasets/loans/versions",
                   dataset_version_body(schema=SCHEMA + [{"name": "age", "type": "float"}]), 422,
                   "column names must be unique")
    assert body["errors"]["json"] == {"schema": ["duplicate column name"]}


def test_dataset_version_of_unknown_dataset_is_404(world):
    refused(world, "POST", f"{API}/datasets/ghost/versions", dataset_version_body(), 404,
            "^no dataset 'ghost': register it first$")
    refused(world, "GET", f"{API}/datasets/ghost/versions", None, 404, "^no dataset 'ghost'$")
    refused(world, "GET", f"{API}/datasets/ghost/versions/v1", None, 404, "^no dataset version ghost@v1$")
    world.dataset()
    refused(world, "GET", f"{API}/datasets/loans/versions/v2", None, 404, "^no dataset version loans@v2$")


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"legal_basis": "because"}, "legal_basis", "Must be one of"),
    ({"retention_period": "90 days"}, "retention_period", "ISO 8601 period"),
    ({"retention_period": "P"}, "retention_period", "ISO 8601 period"),
    ({"row_count": -1}, "row_count", "greater than or equal to 0"),
    ({"content_sha256": "g" * 64}, "content_sha256", "64 lowercase hex"),
    ({"schema": [{"name": "age"}]}, "schema", "Missing data"),
    ({"schema": [{"name": "age", "type": "int", "pii": True}]}, "schema", "Unknown field"),
    ({"version": "v/1"}, "version", "must be 1-64 characters"),
])
def test_dataset_version_validation_errors_name_the_field(world, change, field, message):
    send(world, "POST", f"{API}/datasets", DATASET_BODY)
    out = refused(world, "POST", f"{API}/datasets/loans/versions", dataset_version_body(**change), 422)
    assert message in json.dumps(out["errors"]["json"][field])


# -- authentication and roles on every endpoint --------------------------------------

ENDPOINTS = [
    ("GET", "/models", None),
    ("POST", "/models", {**MODEL_BODY, "name": "fresh-model"}),
    ("GET", "/models/credit-risk", None),
    ("GET", "/models/credit-risk/versions", None),
    ("POST", "/models/credit-risk/versions", version_body("2")),
    ("GET", "/models/credit-risk/versions/1", None),
    ("GET", "/datasets", None),
    ("POST", "/datasets", {**DATASET_BODY, "name": "fresh"}),
    ("GET", "/datasets/loans/versions", None),
    ("POST", "/datasets/loans/versions", dataset_version_body("v2")),
    ("GET", "/datasets/loans/versions/v1", None),
]
WRITES = [e for e in ENDPOINTS if e[0] == "POST"]


def _ids(endpoints):
    return [f"{m} {u}" for m, u, _ in endpoints]


@pytest.fixture
def populated(world):
    world.registered_version()
    return world


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=_ids(ENDPOINTS))
def test_every_endpoint_needs_authentication(populated, method, path, body):
    out = refused(populated, method, API + path, body, 401, "authentication required", headers={})
    assert set(out) == {"code", "status", "message"}
    # Authentication comes before validation: an invalid body is still a 401.
    if method == "POST":
        refused(populated, method, API + path, {"junk": True}, 401, headers={})
    refused(populated, method, API + path, body, 401, "unknown API token",
            headers={"Authorization": "Bearer mlg_0123456789abcdef_" + "x" * 43})


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=_ids(ENDPOINTS))
def test_every_endpoint_succeeds_for_its_role(populated, method, path, body):
    headers = populated.author("bob") if method == "POST" else populated.headers("dora", "deployer")
    size = populated.ledger_size()
    response = send(populated, method, API + path, body, headers)
    assert response.status_code == (201 if method == "POST" else 200), response.get_json()
    if method == "POST":
        assert response.get_json()["seq"] == size
        assert populated.ledger.entry(size).actor == "bob"
        assert populated.ledger_size() == size + 1


@pytest.mark.parametrize("roles", [("auditor",), ("deployer",), ("approver:privacy", "auditor")])
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=_ids(WRITES))
def test_writes_need_the_author_role(populated, method, path, body, roles):
    headers = populated.headers("mallory", *roles)
    refused(populated, method, API + path, body, 403, "^mallory lacks the role this needs: one of author$",
            headers=headers)
    refused(populated, method, API + path, {"junk": True}, 403, headers=headers)
