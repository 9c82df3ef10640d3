"""How to call each operation of the API, for tests/test_contract.py.

:data:`PLANS` gives, for every ``operationId`` of the OpenAPI document, a
valid call (a fresh target each time when the call consumes one, such as an
override to confirm), a call naming a resource that does not exist when no
path parameter does, and the calls to make after the valid one: mostly the
domain's own refusals (a conflicting repeat, a separation-of-duties
refusal, a value only the domain rejects). The generic
provocations (no token, a token without the role, broken JSON, a body too
large...) are derived from the valid call by the test itself.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field, replace
from typing import Callable
from urllib.parse import quote

from factories import World, digest
from policy_fixtures.gate_scenarios import CARD, Gate, sample

API = "/api/v1"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


@dataclass(frozen=True)
class Call:
    """One request: a path template with its parameters, and what is sent."""

    method: str
    path: str
    params: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    json: object = None
    query: dict = field(default_factory=dict)
    data: bytes | None = None
    content_type: str | None = None

    def url(self) -> str:
        return API + self.path.format(**{k: quote(str(v), safe="") for k, v in self.params.items()})

    def send(self, client):
        kwargs = {"headers": self.headers, "query_string": self.query}
        if self.json is not None:
            kwargs["json"] = self.json
        elif self.data is not None:
            kwargs.update(data=self.data, content_type=self.content_type)
        return client.open(self.url(), method=self.method, **kwargs)

    def with_body(self, data: bytes, content_type: str) -> Call:
        return replace(self, json=None, data=data, content_type=content_type)


@dataclass(frozen=True)
class Plan:
    """How to call one operation: validly, on nothing, and into its domain's refusals."""

    valid: Callable[[Scene], Call]
    unknown: Callable[[Scene], Call] | None = None  # default: each path parameter unknown in turn
    then: Callable[[Scene], list[Call]] = lambda scene: []  # after the valid call, in order


class Scene:
    """A populated app: credit-risk@1 compliant for prod, churn@1 and @2 allowed everywhere."""

    def __init__(self, world: World):
        self.world = world
        self.gate = Gate(world)
        self.client = world.client
        self._numbers = itertools.count(1)
        self.gate.compliant()
        self.gate.minimal(versions=("1", "2"))
        self.author = world.author()
        self.deployer = self.gate.deployer
        self.auditor = world.auditor()
        self.admin = world.headers("root", "admin")
        self.document = self.post("/documents", None, self.author, data=b"a contract document")["sha256"]
        self.decision_id = self.allow()

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self._numbers)}"

    def post(self, path: str, body, headers: dict, expect: tuple = (200, 201), data: bytes | None = None):
        call = Call("POST", path, headers=headers, json=body, data=data,
                    content_type="application/octet-stream" if data is not None else None)
        response = call.send(self.client)
        assert response.status_code in expect, (path, response.status_code, response.get_json())
        return response.get_json()

    def allow(self, version: str = "1", environment: str = "staging") -> str:
        decision = self.post("/deployments/check", {"model": "churn", "version": version,
                                                    "environment": environment}, self.deployer)
        assert decision["decision"] == "allow", decision
        return decision["decision_id"]

    def deploy(self, version: str) -> str:
        return self.post("/deployments", {"decision_id": self.allow(version)}, self.deployer)["deployment_id"]

    def override(self, requester: dict | None = None) -> str:
        return self.post("/deployments/overrides", {
            "model": "churn", "version": "1", "environment": "prod",
            "justification": "an incident needs version 1 now"}, requester or self.admin)["override_id"]

    def sign_off(self) -> tuple[dict, dict]:
        """A fresh person's sign-off of churn@2 in a fresh area: (the approval, their headers)."""
        area = self.fresh("area")
        headers = self.world.approver(self.fresh("approver"), area)
        approval = self.post("/models/churn/versions/2/approvals",
                             {"role": area, "decision": "approve", "comment": "fine"}, headers)
        return approval, headers


def _model(scene: Scene, name: str, owner: str = "eve") -> Call:
    return Call("POST", "/models", headers=scene.author, json={
        "name": name, "owner": owner, "risk_tier": "minimal", "uses_personal_data": False})


def _version(scene: Scene, version: str, seed: str = "") -> Call:
    return Call("POST", "/models/{name}/versions", {"name": "churn"}, scene.author,
                json={"version": version, "artifact_sha256": digest(f"churn@{version}{seed}")})


def _dataset(scene: Scene, name: str, source: str = "crm") -> Call:
    return Call("POST", "/datasets", headers=scene.author,
                json={"name": name, "owner": "dana", "source_system": source})


def _dataset_version(scene: Scene, version: str, seed: str = "") -> Call:
    return Call("POST", "/datasets/{name}/versions", {"name": "loans"}, scene.author,
                json={"version": version, "content_sha256": digest(f"loans@{version}{seed}")})


def _run_event(scene: Scene, run_id: str, output: str = "loans") -> Call:
    return Call("POST", "/lineage", headers=scene.author, json={
        "eventType": "COMPLETE", "eventTime": "2024-05-01T10:00:00Z", "run": {"runId": run_id},
        "job": {"namespace": "etl", "name": "clean_loans"}, "inputs": [],
        "outputs": [{"namespace": "ml-governance", "name": output}],
        "producer": "https://example.test/producer", "schemaURL": RUN_EVENT_SCHEMA})


def _evidence(scene: Scene, supersedes: str | None = None) -> Call:
    return Call("POST", "/models/{name}/versions/{version}/evidence", {"name": "churn", "version": "1"},
                scene.author, json={"kind": "model_card", "fields": CARD, "supersedes": supersedes})


def _bias(scene: Scene, supersedes: str | None = None) -> Call:
    return Call("POST", "/models/{name}/versions/{version}/evidence/bias-report",
                {"name": "churn", "version": "1"}, scene.author,
                json={**sample({"F": 10, "M": 8}), "supersedes": supersedes})


def _sign(headers: dict, role: str, comment: str = "fine") -> Call:
    return Call("POST", "/models/{name}/versions/{version}/approvals", {"name": "churn", "version": "1"},
                headers, json={"role": role, "decision": "approve", "comment": comment})


def _revoke(approval: dict, headers: dict) -> Call:
    return Call("POST", "/models/{name}/versions/{version}/approvals/{approval_id}/revoke",
                {"name": "churn", "version": "2", "approval_id": approval["approval_id"]}, headers,
                json={"reason": "changed my mind"})


def _rollback(scene: Scene, deployment_id: str) -> Call:
    return Call("POST", "/deployments/{deployment_id}/rollback", {"deployment_id": deployment_id},
                scene.deployer, json={"reason": "latency regression"})


def _confirm(scene: Scene, override_id: str, headers: dict | None = None) -> Call:
    return Call("POST", "/deployments/overrides/{override_id}/confirm", {"override_id": override_id},
                headers or scene.world.approver("olga", "model_risk"))


def _repeated(first: Call, *then: Call) -> list[Call]:
    return [first, first, *then]


def _rolled_back(scene: Scene) -> Call:
    scene.deploy("1")
    return _rollback(scene, scene.deploy("2"))


def _approval_refusals(scene: Scene) -> list[Call]:
    erin = scene.world.approver("erin", "business")
    both = scene.world.headers("erin", "approver:business", "approver:privacy")
    return [*_repeated(_sign(erin, "business"), _sign(erin, "business", "looked again")),
            _sign(both, "privacy")]  # one person, two areas


def _revocation_refusals(scene: Scene) -> list[Call]:
    approval, headers = scene.sign_off()
    _, stranger = scene.sign_off()
    return [_revoke(approval, stranger), *_repeated(_revoke(approval, headers))]


def _superseding(make: Callable[..., Call]) -> Callable[[Scene], list[Call]]:
    def refusals(scene: Scene) -> list[Call]:
        first = make(scene).send(scene.client).get_json()["evidence_id"]
        return [make(scene, supersedes=first), make(scene, supersedes=first)]  # the second is stale
    return refusals


def _override_refusals(scene: Scene) -> list[Call]:
    both = scene.world.headers("root2", "admin", "approver:model_risk")
    confirmed = _confirm(scene, scene.override())
    return [*_repeated(confirmed), _confirm(scene, scene.override(both), both)]


PLANS: dict[str, Plan] = {
    # the first, while no checkpoint has been signed (a 404); then one is
    "getLatestCheckpoint": Plan(lambda s: Call("GET", "/ledger/checkpoint"),
                                unknown=lambda s: Call("GET", "/ledger/checkpoint"),
                                then=lambda s: [Call("POST", "/ledger/checkpoints", headers=s.admin),
                                                Call("GET", "/ledger/checkpoint")]),
    "createCheckpoint": Plan(lambda s: Call("POST", "/ledger/checkpoints", headers=s.admin)),
    "listPublicKeys": Plan(lambda s: Call("GET", "/ledger/public-keys")),
    "listEntries": Plan(lambda s: Call("GET", "/ledger/entries", headers=s.auditor, query={"limit": "5"})),
    "getEntry": Plan(lambda s: Call("GET", "/ledger/entries/{seq}", {"seq": 0}, s.auditor)),
    "getInclusionProof": Plan(
        lambda s: Call("GET", "/ledger/proofs/inclusion", query={"seq": "0"}),
        then=lambda s: [Call("GET", "/ledger/proofs/inclusion", query={"seq": str(10**9)})]),
    "getConsistencyProof": Plan(
        lambda s: Call("GET", "/ledger/proofs/consistency", query={"first": "1"}),
        then=lambda s: [Call("GET", "/ledger/proofs/consistency", query={"first": str(10**9)})]),
    "listModels": Plan(lambda s: Call("GET", "/models", headers=s.auditor)),
    "registerModel": Plan(lambda s: _model(s, s.fresh("m")),
                          then=lambda s: _repeated(_model(s, "m0"), _model(s, "m0", owner="zoe"))),
    "getModel": Plan(lambda s: Call("GET", "/models/{name}", {"name": "churn"}, s.auditor)),
    "listModelVersions": Plan(lambda s: Call("GET", "/models/{name}/versions", {"name": "churn"}, s.auditor)),
    "registerModelVersion": Plan(lambda s: _version(s, s.fresh("v")),
                                 then=lambda s: _repeated(_version(s, "v0"), _version(s, "v0", "other"))),
    "getModelVersion": Plan(lambda s: Call("GET", "/models/{name}/versions/{version}",
                                           {"name": "churn", "version": "1"}, s.auditor)),
    "listDatasets": Plan(lambda s: Call("GET", "/datasets", headers=s.auditor)),
    "registerDataset": Plan(lambda s: _dataset(s, s.fresh("d")),
                            then=lambda s: _repeated(_dataset(s, "d0"), _dataset(s, "d0", "erp"))),
    "listDatasetVersions": Plan(lambda s: Call("GET", "/datasets/{name}/versions", {"name": "loans"}, s.auditor)),
    "registerDatasetVersion": Plan(
        lambda s: _dataset_version(s, s.fresh("v")),
        then=lambda s: _repeated(_dataset_version(s, "v0"), _dataset_version(s, "v0", "other"))),
    "getDatasetVersion": Plan(lambda s: Call("GET", "/datasets/{name}/versions/{version}",
                                             {"name": "loans", "version": "v1"}, s.auditor)),
    "recordRunEvent": Plan(lambda s: _run_event(s, str(uuid.uuid4())), then=lambda s: _repeated(
        _run_event(s, "0b5ad2f6-0000-4000-8000-000000000000"),
        _run_event(s, "0b5ad2f6-0000-4000-8000-000000000000", output="loans_v2"))),
    "getVersionLineage": Plan(lambda s: Call("GET", "/models/{name}/versions/{version}/lineage",
                                             {"name": "credit-risk", "version": "1"}, s.auditor)),
    "listEvidence": Plan(lambda s: Call("GET", "/models/{name}/versions/{version}/evidence",
                                        {"name": "credit-risk", "version": "1"}, s.auditor)),
    "submitEvidence": Plan(_evidence, then=_superseding(_evidence)),
    "computeBiasReport": Plan(_bias, then=_superseding(_bias)),
    "uploadDocument": Plan(
        lambda s: Call("POST", "/documents", headers=s.author, data=s.fresh("document ").encode(),
                       content_type="application/octet-stream"),
        then=lambda s: [Call("POST", "/documents", headers=s.author, data=b"a contract document",
                                 content_type="application/pdf"),
                            Call("POST", "/documents", headers=s.author, data=b"", content_type="text/plain")]),
    "getDocument": Plan(lambda s: Call("GET", "/documents/{sha256}", {"sha256": s.document}, s.auditor),
                        then=lambda s: [Call("GET", "/documents/{sha256}", {"sha256": "abc"}, s.auditor)]),
    "listApprovals": Plan(lambda s: Call("GET", "/models/{name}/versions/{version}/approvals",
                                         {"name": "credit-risk", "version": "1"}, s.auditor)),
    "signOff": Plan(lambda s: _sign(s.world.approver(s.fresh("signer"), "risk"), "risk"),
                    then=_approval_refusals),
    "revokeApproval": Plan(lambda s: _revoke(*s.sign_off()), then=_revocation_refusals),
    "checkDeployment": Plan(
        lambda s: Call("POST", "/deployments/check", headers=s.deployer,
                       json={"model": "churn", "version": "1", "environment": "staging"}),
        unknown=lambda s: Call("POST", "/deployments/check", headers=s.deployer,
                               json={"model": "nothing", "version": "1", "environment": "staging"})),
    "listDeployments": Plan(lambda s: Call("GET", "/deployments", headers=s.auditor)),
    "recordDeployment": Plan(
        lambda s: Call("POST", "/deployments", headers=s.deployer, json={"decision_id": s.allow()}),
        unknown=lambda s: Call("POST", "/deployments", headers=s.deployer, json={"decision_id": "dc-999999"}),
        then=lambda s: _repeated(Call("POST", "/deployments", headers=s.deployer,
                                          json={"decision_id": s.allow()}))),
    "getLiveVersion": Plan(
        lambda s: Call("GET", "/deployments/live", headers=s.auditor,
                       query={"model": "churn", "environment": "staging", "at": "2099-01-01T00:00:00Z"}),
        unknown=lambda s: Call("GET", "/deployments/live", headers=s.auditor,
                               query={"model": "nothing", "environment": "staging", "at": "2099-01-01T00:00:00Z"})),
    "rollbackDeployment": Plan(_rolled_back, then=lambda s: _repeated(_rolled_back(s))),
    "listOverrides": Plan(lambda s: Call("GET", "/deployments/overrides", headers=s.auditor)),
    "requestOverride": Plan(
        lambda s: Call("POST", "/deployments/overrides", headers=s.admin, json={
            "model": "churn", "version": "1", "environment": "prod",
            "justification": "an incident needs version 1 now"}),
        unknown=lambda s: Call("POST", "/deployments/overrides", headers=s.admin, json={
            "model": "nothing", "version": "1", "environment": "prod",
            "justification": "an incident needs version 1 now"}),
        then=lambda s: [Call("POST", "/deployments/overrides", headers=s.admin, json={
            "model": "churn", "version": "1", "environment": "moon",
            "justification": "an incident needs version 1 now"})]),
    "confirmOverride": Plan(lambda s: _confirm(s, s.override()), then=_override_refusals),
    "getDecision": Plan(lambda s: Call("GET", "/decisions/{decision_id}", {"decision_id": s.decision_id},
                                       s.auditor)),
    "replayDecision": Plan(lambda s: Call("GET", "/decisions/{decision_id}/replay",
                                          {"decision_id": s.decision_id}, s.auditor)),
    "getPolicies": Plan(lambda s: Call("GET", "/policies", headers=s.auditor)),
    "reloadPolicies": Plan(lambda s: Call("POST", "/policies/reload", headers=s.admin)),
    "listAuditEvents": Plan(
        lambda s: Call("GET", "/audit/events", headers=s.auditor),
        then=lambda s: [Call("GET", "/audit/events", headers=s.auditor, query={"format": "csv"}),
                            Call("GET", "/audit/events", headers=s.auditor, query={"cursor": "not-a-cursor"})]),
}


def unknown_calls(call: Call) -> list[Call]:
    """The call with each path parameter in turn naming nothing (a well-formed name)."""
    calls = []
    for name, value in call.params.items():
        if isinstance(value, int):
            missing = 10**9
        elif name == "sha256":
            missing = "f" * 64
        elif value[:3] in ("dc-", "dp-", "ov-", "ap-", "ev-"):
            missing = value[:3] + "999999"
        else:
            missing = f"no-such-{value}"
        calls.append(replace(call, params={**call.params, name: missing}))
    return calls
