"""A client generated from /api/openapi.json by openapi-python-client works against a live server.

The generator (pinned in requirements.txt) writes a package from the
document served by the app into a temporary directory; the test imports it
and, through a werkzeug server on a free port of 127.0.0.1, registers a
model and a version, submits evidence of one kind, asks the gate (a deny:
the version names no training data) and reads the decision back, and reads
refusals as the one error body. The generator
refusing or skipping any part of the document fails the test: the document
is what is wrong then.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from factories import digest
from ports import served

PACKAGE = "ledger_api_client"


@pytest.fixture
def server(app):
    with served(app) as url:
        yield url


@pytest.fixture
def generated(client, tmp_path, monkeypatch):
    """The client package generated from the app's document, imported."""
    document = tmp_path / "openapi.json"
    document.write_text(client.get("/api/openapi.json").get_data(as_text=True), encoding="utf-8")
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")  # no formatter run: nothing outside tmp_path
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document), "--meta", "none",
         "--output-path", str(tmp_path / PACKAGE), "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output and "Error" not in output, output  # nothing of the document skipped
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def endpoint(tag: str, operation: str):
    """The generated module of an operation: its tag (blueprint) and its operationId in snake case."""
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")


def test_the_generated_client_registers_checks_and_reads_a_decision(generated, server, world):
    models = importlib.import_module(f"{PACKAGE}.models")
    register_model, register_model_version, get_model = (
        endpoint("registry", name) for name in ("register_model", "register_model_version", "get_model"))
    submit_evidence = endpoint("evidence", "submit_evidence")
    check_deployment, get_decision = endpoint("gate", "check_deployment"), endpoint("gate", "get_decision")

    def as_(headers: dict):
        token = headers["Authorization"].removeprefix("Bearer ")
        return generated.AuthenticatedClient(base_url=server, token=token, raise_on_unexpected_status=True)

    author, deployer, auditor = as_(world.author()), as_(world.headers("dan", "deployer")), as_(world.auditor())

    created = register_model.sync_detailed(client=author, body=models.ModelIn(
        name="churn", owner="eve", risk_tier=models.ModelInRiskTier.MINIMAL, uses_personal_data=False))
    assert created.status_code == 201
    assert (created.parsed.name, created.parsed.risk_tier, created.parsed.created_by) == (
        "churn", "minimal", "alice")
    version = register_model_version.sync_detailed("churn", client=author, body=models.VersionIn(
        version="1", artifact_sha256=digest("churn@1")))
    assert version.status_code == 201
    assert (version.parsed.model, version.parsed.version, version.parsed.artifact_sha256) == (
        "churn", "1", digest("churn@1"))

    # evidence: the body is one schema of the discriminated oneOf, chosen by kind
    card = submit_evidence.sync_detailed("churn", "1", client=author, body=models.ModelCardEvidenceIn(
        kind=models.ModelCardEvidenceInKind.MODEL_CARD, fields=models.ModelCardFields(content="# Churn")))
    assert card.status_code == 201
    assert (card.parsed.kind, card.parsed.fields.to_dict()) == ("model_card", {"content": "# Churn",
                                                                               "sections": {}})

    decision = check_deployment.sync(client=deployer, body=models.CheckIn(
        model="churn", version="1", environment="staging"))
    assert isinstance(decision, models.DecisionOut)
    assert (decision.decision, decision.model, decision.version) == ("deny", "churn", "1")  # no training data
    assert [r.rule for r in decision.results if r.applicable and not r.passed] == [
        "lineage.training-datasets-registered"]
    read = get_decision.sync(decision.decision_id, client=auditor)
    assert isinstance(read, models.DecisionOut)
    assert read.to_dict() == {**decision.to_dict(), "deployment_id": None}
    assert [r.to_dict() for r in read.results] == [r.to_dict() for r in decision.results]

    # a refusal is parsed as the one error body, Error
    missing = get_model.sync_detailed("nothing", client=auditor)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Error)
    assert (missing.parsed.code, missing.parsed.status, missing.parsed.message) == (
        404, "Not Found", "no model 'nothing'")
    refused = register_model.sync_detailed(client=deployer, body=models.ModelIn(
        name="fraud", owner="eve", risk_tier=models.ModelInRiskTier.HIGH, uses_personal_data=True))
    assert refused.status_code == 403 and isinstance(refused.parsed, models.Error)
    assert json.loads(refused.content)["code"] == 403
