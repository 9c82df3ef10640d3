"""Scenario builders for the deployment gate tests (policy pack, gate API, overrides, client).

Everything goes through the real HTTP API with real tokens: datasets, models,
versions, evidence and sign-offs are registered the way a team would, then a
deployer asks ``POST /api/v1/deployments/check``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from factories import World, digest

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
FUTURE = "2099-01-01T00:00:00Z"
DPIA = {"status": "approved", "reviewer": "pat", "expires_at": FUTURE, "reference": "DPIA-7"}
EXPLANATION = {"method": "shap.TreeExplainer",
               "feature_importances": [{"feature": "income", "importance": 0.41}]}
CARD = {"content": "# Credit risk"}
SIGNERS = {"model_risk": "carol", "compliance": "dave", "privacy": "bob"}
DEFAULT_RULES = (
    "privacy.dpia-approved", "privacy.legal-basis", "bias.report-covers-protected-attributes",
    "bias.disparate-impact", "bias.demographic-parity", "signoff.required-areas",
    "signoff.distinct-people", "signoff.no-rejection", "lineage.training-datasets-registered",
    "explainability.report", "explainability.model-card", "signoff.rollback-areas",
)
# rules that apply to rollbacks only: on a check (a deployment) they say "not applicable: a rollback"
ROLLBACK_RULES = ("signoff.rollback-areas",)


def bias_attribute(attribute: str = "sex", ratio: float = 0.91, difference: float = 0.04) -> dict:
    return {"attribute": attribute, "groups": ["F", "M"],
            "metrics": {"disparate_impact_ratio": ratio, "demographic_parity_difference": difference}}


def bias_report(*attributes: dict) -> dict:
    return {"attributes": list(attributes) or [bias_attribute()]}


def default_evidence() -> dict:
    return {"privacy_assessment": dict(DPIA), "bias_report": bias_report(),
            "explainability_report": dict(EXPLANATION), "model_card": dict(CARD)}


def sample(selected: dict[str, int], size: int = 20) -> dict:
    """A labelled sample where group g has ``selected[g]`` of ``size`` predicted positive."""
    y_true, y_pred, groups = [], [], []
    for group, positives in sorted(selected.items()):
        for i in range(size):
            y_pred.append(1 if i < positives else 0)
            y_true.append(i % 2)  # both labels in every group
            groups.append(group)
    return {"y_true": y_true, "y_pred": y_pred, "sensitive_features": {"sex": groups}}


def copy_policies(destination: Path) -> Path:
    """A private copy of the default pack (with its tests/) to edit."""
    shutil.copytree(REPO_POLICIES, destination)
    return destination


class Gate:
    """A :class:`World` plus the gate: checks, deployments, rollbacks, compliant versions."""

    def __init__(self, world: World):
        self.world = world
        self.client = world.client
        self.ledger = world.ledger

    @property
    def deployer(self) -> dict:
        return self.world.headers("dan", "deployer")

    def check(self, model: str = "credit-risk", version: str = "1", environment: str = "prod",
              headers: dict | None = None, expect: int = 200) -> dict:
        response = self.client.post("/api/v1/deployments/check", json={
            "model": model, "version": version, "environment": environment},
            headers=self.deployer if headers is None else headers)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def deploy(self, decision_id: str, reason: str = "", expect: int = 201,
               headers: dict | None = None) -> dict:
        response = self.client.post("/api/v1/deployments", json={
            "decision_id": decision_id, "reason": reason},
            headers=self.deployer if headers is None else headers)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def rollback(self, deployment_id: str, reason: str = "bad release", expect: int = 201) -> dict:
        response = self.client.post(f"/api/v1/deployments/{deployment_id}/rollback",
                                    json={"reason": reason}, headers=self.deployer)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def revoke(self, approval: dict, headers: dict, reason: str = "changed my mind") -> dict:
        response = self.client.post(
            f"/api/v1/models/{approval['model']}/versions/{approval['version']}/approvals/"
            f"{approval['approval_id']}/revoke", json={"reason": reason}, headers=headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def dataset(self, pii_columns=("name",), legal_basis: str | None = "contract") -> None:
        """Register loans@v1 (as World.dataset does) unless an identical one is there already."""
        author = self.world.author()
        self.client.post("/api/v1/datasets", json={
            "name": "loans", "owner": "dana", "source_system": "warehouse"}, headers=author)
        response = self.client.post("/api/v1/datasets/loans/versions", json={
            "version": "v1", "content_sha256": digest("loans@v1"),
            "schema": [{"name": "age", "type": "int"}, {"name": "name", "type": "string"},
                       {"name": "income", "type": "float"}],
            "pii_columns": list(pii_columns), "legal_basis": legal_basis}, headers=author)
        assert response.status_code in (200, 201), response.get_json()

    def model(self, name: str, **fields) -> None:
        """Register a model unless an identical one is there already."""
        body = {"name": name, "owner": "eve", **{k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in fields.items()}}
        response = self.client.post("/api/v1/models", json=body, headers=self.world.author())
        assert response.status_code in (200, 201), response.get_json()

    def compliant(self, model: str = "credit-risk", version: str = "1", evidence: dict | None = None,
                  signers: dict | None = None, dataset: dict | None = None, datasets=None,
                  **model_fields) -> dict:
        """Register (if new) a dataset, the model and ``version``; submit evidence; sign off.

        ``evidence`` overrides the default evidence per kind (None leaves a kind
        out); ``signers`` maps area to approver (default: bob, carol, dave).
        Returns {"version": ..., "evidence": {kind: ...}, "approvals": {area: ...}}.
        """
        world = self.world
        self.dataset(**(dataset or {}))
        self.model(model, **{"risk_tier": "high", "uses_personal_data": True,
                             "protected_attributes": ("sex",), **model_fields})
        registered = world.version(model, version, **({} if datasets is None else {"datasets": datasets}))
        chosen = {**default_evidence(), **(evidence or {})}
        submitted = {kind: world.evidence(kind, body, model=model, version=version)
                     for kind, body in chosen.items() if body is not None}
        approvals = {area: world.approve(person, area, model=model, version=version)
                     for area, person in (SIGNERS if signers is None else signers).items()}
        return {"version": registered, "evidence": submitted, "approvals": approvals}

    def entries(self, kind: str) -> list[dict]:
        """Every entry of ``kind`` in the ledger, as its canonical JSON (seq, ts, actor, payload...)."""
        return [json.loads(e.canonical) for e in self.ledger.entries(0, self.ledger.size())
                if e.kind == kind]

    def minimal(self, model: str = "churn", versions=("1",), card: bool = True) -> list[dict]:
        """A minimal-risk model without personal data: allowed everywhere with no sign-off."""
        world = self.world
        self.dataset()
        self.model(model, risk_tier="minimal", uses_personal_data=False)
        registered = []
        for version in versions:
            registered.append(world.version(model, version))
            if card:
                world.evidence("model_card", dict(CARD), model=model, version=version)
        return registered

    def decision_entries(self) -> list[dict]:
        return self.entries("deployment.decision.recorded")

    def assert_all_replay(self, minimum: int = 1) -> list[dict]:
        """Replay every recorded decision through the API; each must match."""
        entries = self.decision_entries()
        assert len(entries) >= minimum
        replays = []
        for entry in entries:
            response = self.client.get(f"/api/v1/decisions/dc-{entry['seq']}/replay",
                                       headers=self.world.auditor())
            assert response.status_code == 200, response.get_json()
            body = response.get_json()
            assert body["matches"] is True and body["differences"] == [], body
            assert body["recorded_decision"] == body["replayed_decision"] == entry["payload"]["decision"]
            assert body["results"] == entry["payload"]["results"]
            replays.append(body)
        return replays


def failed_rules(decision: dict) -> list[str]:
    return sorted(r["rule"] for r in decision["results"] if r["applicable"] and not r["passed"])


def result_of(decision: dict, rule: str) -> dict:
    [result] = [r for r in decision["results"] if r["rule"] == rule]
    return result
