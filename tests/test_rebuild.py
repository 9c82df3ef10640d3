"""Projections are a pure function of the ledger, and written atomically with it.

``flask governance rebuild`` drops every projection row and replays the
ledger: on a rich scenario (tokens incl. a revoked one, datasets, models,
versions, lineage incl. a repeated event, evidence incl. superseded,
documents, approvals incl. revoked and superseded, decisions, deployments, a
denied and a break-glass rollback) the rows and the API's answers must come back identical, even after
the rows were damaged. And a projection that fails inside a write must abort
the ledger append with it.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from factories import World, digest
from governance.identity import tokens
from governance.projections import projector, tables
from policy_fixtures.gate_scenarios import Gate

V1 = "/api/v1/models/credit-risk/versions/1"
FILLED = [tables.token, tables.model, tables.dataset, tables.dataset_version, tables.model_version,
          tables.version_dataset, tables.lineage_node, tables.lineage_edge, tables.lineage_event,
          tables.evidence, tables.approval, tables.policy_set, tables.decision, tables.deployment,
          tables.override, tables.audit_event]


def snapshot(app) -> dict:
    with app.extensions["db_engine"].connect() as conn:
        return projector.snapshot(conn)


def rebuild(app) -> str:
    result = app.test_cli_runner().invoke(args=["governance", "rebuild"])
    assert result.exit_code == 0, result.output
    return result.output


def lineage_event(run_id: str, state: str, job: str, inputs, outputs, facets=None) -> dict:
    return {
        "eventType": state, "eventTime": "2024-05-01T10:00:00.000Z",
        "run": {"runId": run_id, "facets": facets or {}},
        "job": {"namespace": "etl", "name": job, "facets": {"owner": {"team": "risk"}}},
        "inputs": [{"namespace": ns, "name": n, "facets": {}} for ns, n in inputs],
        "outputs": [{"namespace": ns, "name": n, "facets": {}} for ns, n in outputs],
        "producer": "https://example.org/pipeline",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }


class Scenario:
    """Everything the service can record, through its API."""

    def __init__(self, world: World):
        self.world = world
        w, c = world, world.client
        self.auditor = w.auditor()
        self.admin = w.headers("dave", "admin")
        revoked = tokens.create_token(w.ledger, "operator:test", "mallory", ["author"])
        tokens.revoke_token(w.ledger, "operator:test", revoked["token_id"], "left the company")
        self.revoked = {"Authorization": f"Bearer {revoked['token']}"}

        w.dataset()
        w.dataset("bureau", "2024-01", pii_columns=(), legal_basis="legitimate_interests",
                  retention_period="P5Y", row_count=1200)
        assert c.post("/api/v1/datasets", headers=w.author(), json={
            "name": "scores", "owner": "dana", "source_system": "lake",
            "lineage_namespace": "s3://lake", "lineage_name": "scores"}).status_code == 201
        w.dataset("scores", "s1", headers=w.author())
        w.model(tags=["retail", "pd"])
        w.model("fraud", risk_tier="limited", uses_personal_data=False, protected_attributes=())
        w.version("credit-risk", "1", datasets=(("loans", "v1"), ("bureau", "2024-01")),
                  metrics={"auc": 0.81}, lineage={"namespace": "s3://models", "name": "credit-risk/1"})
        w.version("credit-risk", "2")
        w.version("fraud", "1", datasets=(("scores", "s1"),), headers=w.author("eve"))

        runs = [str(uuid.uuid4()) for _ in range(3)]
        events = [
            lineage_event(runs[0], "START", "extract", [("crm", "forms")], []),
            lineage_event(runs[0], "COMPLETE", "extract", [("crm", "forms")], [("s3://raw", "apps")]),
            lineage_event(runs[1], "COMPLETE", "clean", [("s3://raw", "apps")],
                          [("ml-governance", "loans")], {"custom": {"ticket": "T-1", "n": [1, 2]}}),
            lineage_event(runs[2], "COMPLETE", "train", [("ml-governance", "loans")],
                          [("s3://models", "credit-risk/1")]),
        ]
        for event in events:
            assert c.post("/api/v1/lineage", json=event, headers=w.author()).status_code == 201

        self.document = c.post("/api/v1/documents", data=b"%PDF DPIA",
                               headers={**w.author(), "Content-Type": "application/pdf"}).get_json()
        old = w.evidence("validation_report", {"passed": True, "metrics": {"auc": 0.8}})
        w.evidence("validation_report", {"passed": False}, supersedes=old["evidence_id"])
        w.evidence("privacy_assessment", {"status": "approved", "reviewer": "dpo",
                                          "expires_at": "2030-01-01T00:00:00Z"},
                   document_sha256=self.document["sha256"])
        w.evidence("model_card", {"content": "# Fraud"}, model="fraud", headers=w.author("eve"))

        first = w.approve("bob", "privacy")
        assert c.post(f"{V1}/approvals/{first['approval_id']}/revoke", json={"reason": "redo"},
                      headers=w.approver("bob", "privacy")).status_code == 201
        w.approve("bob", "privacy", decision="reject")
        cid = w.approve("cid", "compliance")
        assert c.post(f"{V1}/approvals/{cid['approval_id']}/revoke", json={"reason": "audit"},
                      headers=self.admin).status_code == 201
        w.approve("pia", "privacy", model="fraud")
        w.evidence("model_card", {"content": "# Fraud, revised"}, model="fraud", headers=w.author("eve"))
        w.approve("pia", "privacy", model="fraud")  # signed off again: supersedes the first
        assert c.post("/api/v1/lineage", json=events[3], headers=w.author()).status_code == 200  # a repeat

        # the gate: deployments, a rollback the gate denies, then one through break-glass
        gate = Gate(w)
        gate.minimal("churn", versions=("1", "2"))
        for version in ("1", "2"):
            self.live = gate.deploy(gate.check("churn", version, "staging")["decision_id"])
        w.approve("erin", "business", model="churn", version="1", decision="reject")
        gate.rollback(self.live["deployment_id"], expect=409)
        override = w._post("/api/v1/deployments/overrides", {
            "model": "churn", "version": "1", "environment": "staging",
            "justification": "version 2 corrupts scores; back to 1 now"}, self.admin)
        w._post(f"/api/v1/deployments/overrides/{override['override_id']}/confirm", {},
                w.approver("olga", "model_risk"), expect=200)
        self.rollback = gate.rollback(self.live["deployment_id"])
        w.ledger.append("operator.note", "operator:test", "ledger:maintenance", {"text": "=1+1"})
        self.answers()  # reading a version may record the policy set in force: let it happen now

    READS = [
        "/api/v1/models", "/api/v1/models/credit-risk", "/api/v1/models/fraud",
        "/api/v1/models/credit-risk/versions", V1, f"{V1}/evidence", f"{V1}/evidence?current_only=true",
        f"{V1}/approvals", f"{V1}/approvals?include_revoked=false", f"{V1}/lineage",
        "/api/v1/models/fraud/versions/1", "/api/v1/models/fraud/versions/1/lineage",
        "/api/v1/datasets", "/api/v1/datasets/loans/versions", "/api/v1/datasets/bureau/versions/2024-01",
        "/api/v1/audit/events?limit=500", "/api/v1/audit/events?kind=approval.*",
        "/api/v1/audit/events?model=credit-risk&version=1",
        "/api/v1/models/fraud/versions/1/approvals", "/api/v1/deployments?model=churn",
        "/api/v1/deployments/overrides", "/api/v1/models/churn/versions/1",
    ]

    def answers(self) -> dict:
        """What the API says, as an auditor, about everything in the scenario."""
        c = self.world.client
        result = {}
        for url in self.READS:
            response = c.get(url, headers=self.auditor)
            assert response.status_code == 200, (url, response.get_json())
            result[url] = without_clock(response.get_json())
        csv = c.get("/api/v1/audit/events?format=csv&limit=500", headers=self.auditor)
        result["csv"] = csv.get_data(as_text=True)
        doc = c.get(f"/api/v1/documents/{self.document['sha256']}", headers=self.auditor)
        result["document"] = (doc.status_code, doc.data)
        result["revoked token"] = c.get("/api/v1/models", headers=self.revoked).status_code
        for decision_id in (self.live["decision_id"], self.rollback["decision_id"]):
            response = c.get(f"/api/v1/decisions/{decision_id}", headers=self.auditor)
            assert response.status_code == 200, response.get_json()
            result[decision_id] = response.get_json()
        return result


def without_clock(value):
    """``value`` without ``evaluated_at`` (when a policy status was computed: always now)."""
    if isinstance(value, dict):
        return {k: without_clock(v) for k, v in value.items() if k != "evaluated_at"}
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    return value


@pytest.fixture
def scenario(world):
    return Scenario(world)


def test_rebuild_reproduces_every_projection_row(app, world, scenario):
    before = snapshot(app)
    assert scenario.answers() == scenario.answers()  # reads are repeatable and write nothing
    assert snapshot(app) == before
    size, root = world.ledger.root()
    # the scenario really fills the projections it is about
    for table in FILLED:
        assert before[table.name], table.name
    assert len(before["gov_audit_event"]) == size
    assert any(row for row in before["gov_evidence"] if row[9] is not None)  # superseded_by
    approval_columns = list(tables.approval.c.keys())
    approvals = [dict(zip(approval_columns, row)) for row in before["gov_approval"]]
    assert sum(1 for row in approvals if row["revoked_seq"] is not None) == 2
    assert sum(1 for row in approvals if row["superseded_by"] is not None) == 1
    deployment_columns = list(tables.deployment.c.keys())
    deployments = [dict(zip(deployment_columns, row)) for row in before["gov_deployment"]]
    assert [(d["action"], d["flagged"]) for d in sorted(deployments, key=lambda d: d["seq"])] == [
        ("deploy", False), ("deploy", False), ("rollback", True)]
    assert len(before["gov_lineage_event"]) == 4  # the repeated event is not a fifth

    output = rebuild(app)
    assert output == f"rebuilt projections from {size} ledger entries\n"
    assert snapshot(app) == before
    assert world.ledger.root() == (size, root)  # the ledger itself is untouched


def test_rebuild_repairs_damaged_projections(app, world, scenario):
    before = snapshot(app)
    answers = scenario.answers()
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(sa.delete(tables.approval))
        conn.execute(sa.delete(tables.lineage_edge))
        conn.execute(sa.update(tables.evidence).values(superseded_by=None))
        conn.execute(sa.update(tables.model).values(risk_tier="minimal"))
        conn.execute(sa.delete(tables.audit_event).where(tables.audit_event.c.seq > 5))
        conn.execute(sa.update(tables.token).values(revoked_seq=None, revoked_at=None))
    assert snapshot(app) != before
    assert scenario.answers() != answers

    rebuild(app)
    assert snapshot(app) == before
    assert scenario.answers() == answers


def test_rebuild_from_empty_projections_and_twice(app, world, scenario):
    before = snapshot(app)
    answers = scenario.answers()
    with app.extensions["db_engine"].begin() as conn:
        for table in reversed(tables.PROJECTION_TABLES_IN_ORDER):
            conn.execute(sa.delete(table))
    assert all(rows == [] for rows in snapshot(app).values())
    rebuild(app)
    rebuild(app)
    assert snapshot(app) == before
    assert scenario.answers() == answers
    # the service keeps working on rebuilt rows: tokens, SoD checks, new entries
    assert answers["revoked token"] == 401
    world.evidence("model_card", {"content": "after the rebuild"})
    response = world.client.post(f"{V1}/approvals", json={
        "role": "compliance", "decision": "approve", "comment": "x"},
        headers=world.approver("bob", "compliance"))
    assert response.status_code == 403  # bob's privacy rejection survived the rebuild
    size = world.ledger.size()
    assert len(snapshot(app)["gov_audit_event"]) == size


def test_rebuild_on_a_fresh_app_over_the_same_database(app, make_app, world, scenario):
    before = snapshot(app)
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(sa.delete(tables.evidence))
    other = make_app()
    rebuild(other)
    assert snapshot(other) == snapshot(app) == before


# -- a projection failing inside a write aborts the append -------------------------

def _payloads() -> dict:
    artifact = digest("ghost@1")
    version = {"model": "ghost", "version": "1", "artifact_sha256": artifact, "artifact_uri": "",
               "framework": "", "description": "", "metrics": {}, "lineage": None,
               "training_datasets": []}
    model = {"name": "credit-risk", "description": "", "owner": "x", "intended_use": "",
             "risk_tier": "high", "uses_personal_data": True, "protected_attributes": [], "tags": []}
    dataset = {"name": "loans-copy", "description": "", "owner": "x", "source_system": "y",
               "lineage_namespace": "ml-governance", "lineage_name": "loans"}
    evidence = {"model": "credit-risk", "version": "9", "artifact_sha256": artifact,
                "kind": "model_card", "fields": {"content": "x"}, "document": None, "supersedes": None}
    return {
        "version of an unknown model": ("model.version.registered", "model:ghost@1", version,
                                        IntegrityError, r"(?i)foreign key"),
        "model registered twice": ("model.registered", "model:credit-risk", model,
                                   IntegrityError, r"(?i)unique|duplicate key"),
        "dataset with a taken lineage identity": ("dataset.registered", "dataset:loans-copy", dataset,
                                                  IntegrityError, r"(?i)unique|duplicate key"),
        "evidence for an unknown version": ("evidence.submitted", "model:credit-risk@9", evidence,
                                            IntegrityError, r"(?i)foreign key"),
        "payload the projection cannot read": ("model.registered", "model:x", {"name": "x"},
                                               KeyError, "description"),
    }


CASES = ["version of an unknown model", "model registered twice", "dataset with a taken lineage identity",
         "evidence for an unknown version", "payload the projection cannot read"]


@pytest.mark.parametrize("case", CASES)
def test_a_failing_projection_aborts_the_ledger_append(app, world, case):
    world.registered_version()
    world.token("audrey", "auditor")
    kind, subject, payload, error, message = _payloads()[case]
    size, root = world.ledger.root()
    rows = snapshot(app)

    with pytest.raises(error, match=message):
        world.ledger.append(kind, "tester", subject, payload)
    assert world.ledger.root() == (size, root)
    assert world.ledger.size() == size
    assert snapshot(app) == rows
    with pytest.raises(error, match=message):  # the same in a batch with a good entry first
        world.ledger.append_many([
            {"kind": "test.note", "actor": "tester", "subject": "fine", "payload": {}},
            {"kind": kind, "actor": "tester", "subject": subject, "payload": payload}])
    assert world.ledger.root() == (size, root)
    assert snapshot(app) == rows

    # the next append continues the chain at the same seq, and the tree is sound
    entry = world.ledger.append("test.note", "tester", "after", {})
    assert entry.seq == size
    leaves = [e.leaf_hash for e in world.ledger.entries(0, size + 1)]
    assert hashlib.sha256(b"\x00" + world.ledger.entry(size).canonical).digest() == leaves[-1]
    assert world.ledger.root() == (size + 1, _mth(leaves))
    verify = app.test_cli_runner().invoke(args=["ledger", "verify", "--no-external"])
    assert verify.exit_code == 0, verify.output
    audit = world.client.get("/api/v1/audit/events", headers=world.auditor()).get_json()["events"]
    assert [e["seq"] for e in audit] == list(range(size, -1, -1))


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 Merkle Tree Hash of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_values_the_projection_cannot_hold_are_refused_before_the_ledger(world):
    """Found while looking for a real projection failure through the API.

    The API used to accept values the projection columns cannot hold: an
    unbounded ``retention_period`` (VARCHAR(32) in ``gov_dataset_version``) and,
    through regexes ending in ``$``, SHA-256 digests with a trailing newline (65
    characters into VARCHAR(64)). PostgreSQL then answered 500 (the projection
    insert failed and the append was rolled back) while SQLite stored them.
    Both must be a 422 with nothing written.
    """
    world.dataset()
    world.model()
    headers = world.author()
    outcomes = {}
    requests = {
        "retention_period of 42 characters": ("/api/v1/datasets/loans/versions", {
            "version": "v2", "content_sha256": digest("loans@v2"), "retention_period": "P" + "1" * 40 + "D"}),
        "artifact_sha256 with a trailing newline": ("/api/v1/models/credit-risk/versions", {
            "version": "1", "artifact_sha256": digest("credit-risk@1") + "\n"}),
        "content_sha256 with a trailing newline": ("/api/v1/datasets/loans/versions", {
            "version": "v3", "content_sha256": digest("loans@v3") + "\n"}),
    }
    for case, (url, body) in requests.items():
        before = world.ledger_size()
        response = world.client.post(url, json=body, headers=headers)
        outcomes[case] = (response.status_code, world.ledger_size() - before)
    assert outcomes == dict.fromkeys(requests, (422, 0))
