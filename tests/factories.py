"""Scenario builders for API tests: tokens per principal and registry objects.

Everything goes through the real HTTP API of the test app (Flask test
client), so fixtures exercise the same path as users.
"""

from __future__ import annotations

import hashlib

from governance.identity import tokens


def digest(text: str) -> str:
    """A deterministic SHA-256 hex digest for test artifacts and datasets."""
    return hashlib.sha256(text.encode()).hexdigest()


class World:
    """A test app plus helpers: ``world.headers("alice", "author")`` etc."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.ledger = app.extensions["ledger"]
        self._tokens: dict[tuple, str] = {}

    def token(self, principal: str, *roles: str) -> str:
        """Return a (cached) API token for ``principal`` with ``roles``."""
        key = (principal, tuple(sorted(roles)))
        if key not in self._tokens:
            self._tokens[key] = tokens.create_token(
                self.ledger, "operator:test", principal, list(roles))["token"]
        return self._tokens[key]

    def headers(self, principal: str, *roles: str) -> dict:
        """Authorization header for ``principal`` holding ``roles``."""
        return {"Authorization": f"Bearer {self.token(principal, *roles)}"}

    def author(self, name: str = "alice") -> dict:
        return self.headers(name, "author")

    def auditor(self, name: str = "audrey") -> dict:
        return self.headers(name, "auditor")

    def approver(self, name: str, *areas: str) -> dict:
        return self.headers(name, *[f"approver:{a}" for a in areas])

    def _post(self, url: str, body: dict, headers: dict | None, expect: int = 201):
        response = self.client.post(url, json=body, headers=headers or self.author())
        assert response.status_code == expect, (url, response.status_code, response.get_json())
        return response.get_json()

    def dataset(self, name: str = "loans", version: str = "v1", pii_columns=("name",),
                legal_basis: str | None = "contract", headers: dict | None = None, **fields) -> dict:
        """Register a dataset (if new) and one version of it; return the version."""
        self.client.post("/api/v1/datasets", json={
            "name": name, "owner": "dana", "source_system": "warehouse"}, headers=headers or self.author())
        body = {"version": version, "content_sha256": digest(f"{name}@{version}"),
                "schema": [{"name": "age", "type": "int"}, {"name": "name", "type": "string"},
                           {"name": "income", "type": "float"}],
                "pii_columns": list(pii_columns), "legal_basis": legal_basis, **fields}
        return self._post(f"/api/v1/datasets/{name}/versions", body, headers)

    def model(self, name: str = "credit-risk", risk_tier: str = "high", uses_personal_data: bool = True,
              protected_attributes=("sex",), headers: dict | None = None, **fields) -> dict:
        """Register a model; return it."""
        body = {"name": name, "owner": "eve", "risk_tier": risk_tier,
                "uses_personal_data": uses_personal_data,
                "protected_attributes": list(protected_attributes), **fields}
        return self._post("/api/v1/models", body, headers)

    def version(self, model: str = "credit-risk", version: str = "1", datasets=(("loans", "v1"),),
                headers: dict | None = None, **fields) -> dict:
        """Register a model version trained on ``datasets``; return it."""
        body = {"version": version, "artifact_sha256": digest(f"{model}@{version}"),
                "training_datasets": [{"name": n, "version": v} for n, v in datasets], **fields}
        return self._post(f"/api/v1/models/{model}/versions", body, headers)

    def registered_version(self, model: str = "credit-risk", version: str = "1", **model_fields) -> dict:
        """Dataset + model + version in one call (the usual starting point)."""
        self.dataset()
        self.model(model, **model_fields)
        return self.version(model, version)

    def evidence(self, kind: str, fields: dict, model: str = "credit-risk", version: str = "1",
                 headers: dict | None = None, **extra) -> dict:
        """Submit evidence; return it."""
        return self._post(f"/api/v1/models/{model}/versions/{version}/evidence",
                          {"kind": kind, "fields": fields, **extra}, headers)

    def approve(self, principal: str, area: str, model: str = "credit-risk", version: str = "1",
                decision: str = "approve", expect: int = 201) -> dict:
        """Sign off ``area`` as ``principal`` (who holds approver:<area>)."""
        return self._post(f"/api/v1/models/{model}/versions/{version}/approvals",
                          {"role": area, "decision": decision, "comment": f"{area} reviewed"},
                          self.approver(principal, area), expect)

    def ledger_size(self) -> int:
        return self.ledger.size()
