"""The deployment gate API: recorded decisions, replay, deployments, rollbacks, live-at, policies.

Every decision — allow and deny — is a ``deployment.decision.recorded``
ledger entry holding the policy digest, the whole context and its digest, so
it can be replayed; deployments are recorded only from a current allow.
Policy sets are files; a bad set is refused with file, rule and position and
the last good set stays active. Tests that record decisions end by replaying
every one of them through ``GET /api/v1/decisions/{id}/replay``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from factories import World
from governance.errors import ConflictError
from governance.gate import decisions, deployments
from governance.policy.files import compile_policy_set, read_policy_dir
from governance.projections import tables
from ledger.canonical import canonical_bytes
from ledger.checkpoint import parse_checkpoint_body, parse_signed_note
from ledger.entry import utc_timestamp
from ledger.merkle import leaf_hash
from ledger.proofs import verify_inclusion
from ledger.signing import verify_signature
from policy_fixtures.gate_scenarios import (
    DEFAULT_RULES, REPO_POLICIES, Gate, copy_policies, failed_rules, result_of,
)

DECISION_FIELDS = {"decision", "decision_id", "seq", "model", "version", "environment", "policy_digest",
                   "input_digest", "expires_at", "override_id", "action", "rolls_back", "results"}
RESULT_FIELDS = {"rule", "policy", "severity", "applicable", "passed", "message", "remediation"}
NOW_DERIVED = ("now", "age_days")


@pytest.fixture
def gate(world) -> Gate:
    return Gate(world)


def on(app) -> Gate:
    return Gate(World(app))


def recorded(gate: Gate, decision: dict) -> dict:
    """The canonical JSON of the ledger entry behind ``decision``."""
    return json.loads(gate.ledger.entry(decision["seq"]).canonical)


def assert_recorded(gate: Gate, decision: dict) -> dict:
    """The decision is a ledger entry holding policy digest, context and its digest; return the entry."""
    assert set(decision) == DECISION_FIELDS
    assert decision["decision_id"] == f"dc-{decision['seq']}"
    for result in decision["results"]:
        assert set(result) == RESULT_FIELDS
    entry = recorded(gate, decision)
    assert entry["kind"] == "deployment.decision.recorded"
    assert entry["actor"] == "dan"
    assert entry["subject"] == f"model:{decision['model']}@{decision['version']}"
    payload = entry["payload"]
    assert payload["decision"] == decision["decision"]
    assert payload["policy_digest"] == decision["policy_digest"]
    assert payload["input_digest"] == decision["input_digest"]
    assert payload["results"] == decision["results"]
    assert payload["expires_at"] == decision["expires_at"]
    assert (payload["action"], payload["rolls_back"]) == (decision["action"], decision["rolls_back"]) == (
        "deploy", None)
    context = payload["context"]
    assert hashlib.sha256(canonical_bytes(context)).hexdigest() == decision["input_digest"]
    assert (context["environment"], context["model"]["name"], context["version"]["version"]) == (
        decision["environment"], decision["model"], decision["version"])
    fetched = gate.client.get(f"/api/v1/decisions/{decision['decision_id']}", headers=gate.world.auditor())
    assert fetched.status_code == 200
    assert fetched.get_json() == {**decision, "deployment_id": None}
    return entry


def without_now(value):
    """A context with the fields derived from the check's ``now`` removed."""
    if isinstance(value, dict):
        return {k: without_now(v) for k, v in value.items() if k not in NOW_DERIVED}
    if isinstance(value, list):
        return [without_now(v) for v in value]
    return value


def policy_entries(gate: Gate, digest: str | None = None) -> list[dict]:
    return [e for e in gate.entries("policy.set.loaded") if digest is None or e["payload"]["digest"] == digest]


# -- decisions --------------------------------------------------------------------

def test_allow_and_deny_are_200_and_both_are_recorded(gate, app):
    gate.compliant()
    allow = gate.check()
    assert allow["decision"] == "allow"
    entry = assert_recorded(gate, allow)
    active = app.extensions["policies"].current()
    assert allow["policy_digest"] == active.digest
    assert allow["policy_digest"] == compile_policy_set(read_policy_dir(REPO_POLICIES)).digest
    assert sorted(r["rule"] for r in allow["results"]) == sorted(DEFAULT_RULES)
    decided = datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    expires = datetime.strptime(allow["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert timedelta(seconds=899) < expires - decided <= timedelta(seconds=900)
    assert entry["payload"]["state_seq"] == max(
        a["seq"] for a in gate.world.client.get("/api/v1/models/credit-risk/versions/1/approvals",
                                                headers=gate.world.auditor()).get_json())

    gate.world.evidence("model_card", {"content": "v2"})  # approvals now predate the evidence
    deny = gate.check()
    assert deny["decision"] == "deny"
    assert failed_rules(deny) == ["signoff.required-areas"]
    assert_recorded(gate, deny)
    assert deny["input_digest"] != allow["input_digest"]
    assert deny["policy_digest"] == allow["policy_digest"]

    staging = gate.check(environment="staging")  # the same version, another environment
    assert staging["decision"] == "allow"
    assert_recorded(gate, staging)
    gate.assert_all_replay(minimum=3)


def test_the_same_inputs_give_the_same_decision_and_digests(gate, app):
    gate.compliant()
    registry = app.extensions["policies"]
    now = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    first = decisions.check(gate.ledger, registry, "dan", "credit-risk", "1", "prod", 900, now=now)
    second = decisions.check(gate.ledger, registry, "dan", "credit-risk", "1", "prod", 900, now=now)
    assert first["seq"] != second["seq"]
    same = {k: v for k, v in first.items() if k not in ("decision_id", "seq")}
    assert same == {k: v for k, v in second.items() if k not in ("decision_id", "seq")}
    assert first["expires_at"] == "2030-01-02T03:19:05.678901Z"
    assert recorded(gate, first)["payload"]["context"] == recorded(gate, second)["payload"]["context"]
    assert recorded(gate, first)["payload"]["context"]["now"] == "2030-01-02T03:04:05.678901Z"

    later = decisions.check(gate.ledger, registry, "dan", "credit-risk", "1", "prod", 900,
                               now=now + timedelta(days=1))
    assert later["input_digest"] != first["input_digest"]  # the context holds now and ages
    assert (later["decision"], later["results"]) == (first["decision"], first["results"])

    # through the API, two checks differ only in what is derived from now
    one, two = gate.check(), gate.check()
    assert (one["decision"], one["results"], one["policy_digest"]) == (
        two["decision"], two["results"], two["policy_digest"])
    contexts = [recorded(gate, d)["payload"]["context"] for d in (one, two)]
    assert contexts[0]["now"] < contexts[1]["now"]
    assert without_now(contexts[0]) == without_now(contexts[1])
    assert without_now(contexts[0]) == without_now(recorded(gate, first)["payload"]["context"])
    gate.assert_all_replay(minimum=5)


def test_replay_matches_for_allow_deny_and_override_decisions(gate):
    world = gate.world
    gate.compliant()
    allow = gate.check()
    deny = gate.check(environment="qa")
    world.evidence("validation_report", {"passed": False, "metrics": {"auc": 0.51}})
    stale = gate.check()
    override = world._post("/api/v1/deployments/overrides", {
        "model": "credit-risk", "version": "1", "environment": "prod",
        "justification": "regulator-mandated fix must ship tonight"}, world.headers("root", "admin"))
    world._post(f"/api/v1/deployments/overrides/{override['override_id']}/confirm", {},
                world.approver("olga", "model_risk"), expect=200)
    forced = gate.check()
    assert [d["decision"] for d in (allow, deny, stale, forced)] == ["allow", "deny", "deny", "allow"]
    assert forced["override_id"] == override["override_id"]
    replays = {r["decision_id"]: r for r in gate.assert_all_replay(minimum=4)}
    assert set(replays) == {d["decision_id"] for d in (allow, deny, stale, forced)}
    for decision in (allow, deny, stale, forced):
        replay = replays[decision["decision_id"]]
        assert (replay["policy_digest"], replay["input_digest"]) == (
            decision["policy_digest"], decision["input_digest"])
        assert replay["results"] == decision["results"]
    assert result_of(replays[forced["decision_id"]], "break-glass.override")["passed"] is True

    missing = gate.client.get("/api/v1/decisions/dc-999999/replay", headers=world.auditor())
    assert missing.status_code == 404


def test_replay_uses_the_recorded_policy_set_after_the_files_change(make_app, tmp_path):
    directory = copy_policies(tmp_path / "policies")
    gate = on(make_app(POLICY_DIR=str(directory)))
    gate.compliant()
    before = gate.check()
    assert before["decision"] == "allow"
    # tamper with nothing but a policy file: prod now demands a ratio of 0.95
    environments = directory / "environments.yaml"
    environments.write_text(environments.read_text().replace(
        "min_disparate_impact_ratio: 0.8", "min_disparate_impact_ratio: 0.95"))
    after = gate.check()
    assert after["decision"] == "deny"
    assert failed_rules(after) == ["bias.disparate-impact"]
    assert after["policy_digest"] != before["policy_digest"]

    replay = gate.client.get(f"/api/v1/decisions/{before['decision_id']}/replay",
                             headers=gate.world.auditor()).get_json()
    assert replay["matches"] is True
    assert replay["replayed_decision"] == "allow"
    assert replay["policy_digest"] == before["policy_digest"]
    gate.assert_all_replay(minimum=2)

    # a fresh process (new registry) rebuilds the old set from its ledger entry
    fresh = on(make_app(POLICY_DIR=str(directory)))
    fresh.world._tokens = gate.world._tokens
    assert fresh.assert_all_replay(minimum=2)[0]["replayed_decision"] == "allow"


# -- deployments --------------------------------------------------------------------

def test_a_deployment_is_recorded_from_an_allow(gate):
    gate.minimal()
    decision = gate.check("churn", "1", "staging")
    size = gate.ledger.size()
    deployment = gate.deploy(decision["decision_id"], reason="release 1")
    assert gate.ledger.size() == size + 1
    assert deployment == {
        "deployment_id": f"dp-{deployment['seq']}", "model": "churn", "version": "1",
        "environment": "staging", "action": "deploy", "decision_id": decision["decision_id"],
        "previous_version": None, "rolls_back": None, "rolled_back_by": None, "reason": "release 1",
        "actor": "dan", "at": deployment["at"], "seq": deployment["seq"], "flagged": False}
    entry = json.loads(gate.ledger.entry(deployment["seq"]).canonical)
    assert entry["kind"] == "deployment.recorded" and entry["ts"] == deployment["at"]
    assert entry["payload"]["policy_digest"] == decision["policy_digest"]
    fetched = gate.client.get(f"/api/v1/decisions/{decision['decision_id']}",
                              headers=gate.world.auditor()).get_json()
    assert fetched["deployment_id"] == deployment["deployment_id"]
    gate.assert_all_replay()


def test_a_decision_row_is_written_late_with_its_entry_and_undone_with_it(gate):
    """The decision row goes in with the entries just before COMMIT (one round
    trip less on PostgreSQL): not visible inside the transaction, there after
    it, and gone with a transaction that fails."""
    gate.minimal()
    payload = recorded(gate, gate.check("churn", "1", "staging"))["payload"]
    rows = tables.decision

    def count(conn, seq):
        return conn.execute(sa.select(sa.func.count()).select_from(rows).where(
            rows.c.decision_id == f"dc-{seq}")).scalar()

    with gate.ledger.transaction() as writer:
        entry = writer.append("deployment.decision.recorded", "dan", "model:churn@1", payload)
        assert count(writer.connection, entry.seq) == 0
    with gate.ledger.store.engine.connect() as conn:
        assert count(conn, entry.seq) == 1
    fetched = gate.client.get(f"/api/v1/decisions/dc-{entry.seq}", headers=gate.world.auditor())
    assert fetched.status_code == 200 and fetched.get_json()["seq"] == entry.seq

    with pytest.raises(RuntimeError):
        with gate.ledger.transaction() as writer:
            failed = writer.append("deployment.decision.recorded", "dan", "model:churn@1", payload)
            raise RuntimeError("the caller fails after appending")
    with gate.ledger.store.engine.connect() as conn:
        assert count(conn, failed.seq) == 0
    assert gate.ledger.size() == failed.seq


def test_deny_reused_and_unknown_decisions_are_refused(gate):
    gate.minimal()
    deny = gate.check("churn", "1", "qa")
    assert deny["decision"] == "deny"
    size = gate.ledger.size()
    refused = gate.deploy(deny["decision_id"], expect=409)
    assert refused["message"] == f"decision {deny['decision_id']} was a deny: nothing may be deployed from it"
    allow = gate.check("churn", "1", "staging")
    first = gate.deploy(allow["decision_id"])
    again = gate.deploy(allow["decision_id"], expect=409)
    assert again["message"] == (f"decision {allow['decision_id']} was already used by "
                                f"{first['deployment_id']}; check again")
    assert gate.deploy("dc-999999", expect=404)["message"] == "no decision dc-999999"
    assert gate.deploy("dp-1", expect=422)["errors"]["json"]["decision_id"]
    assert gate.ledger.size() == size + 2  # the allow and the one deployment
    gate.assert_all_replay(minimum=2)


def test_an_expired_decision_is_refused(make_app):
    gate = on(make_app(GATE_DECISION_TTL_SECONDS=1))
    gate.minimal()
    decision = gate.check("churn", "1", "staging")
    time.sleep(1.05)
    refused = gate.deploy(decision["decision_id"], expect=409)
    assert refused["message"] == f"decision {decision['decision_id']} expired at {decision['expires_at']}; check again"
    assert gate.deploy(gate.check("churn", "1", "staging")["decision_id"])["version"] == "1"
    gate.assert_all_replay(minimum=2)


def test_a_decision_expires_after_its_ttl_at_a_later_now(gate, app):
    gate.minimal()
    decision = gate.check("churn", "1", "staging")
    registry = app.extensions["policies"]
    later = datetime.now(timezone.utc) + timedelta(seconds=901)
    with pytest.raises(ConflictError, match=rf"decision {decision['decision_id']} expired at "):
        deployments.record_deployment(gate.ledger, registry, "dan", decision["decision_id"], now=later)
    deployed = deployments.record_deployment(gate.ledger, registry, "dan", decision["decision_id"],
                                              now=later - timedelta(seconds=60))
    assert deployed["decision_id"] == decision["decision_id"]
    gate.assert_all_replay()


def _evidence_after(gate):
    gate.world.evidence("validation_report", {"passed": True, "metrics": {"auc": 0.7}},
                        model="churn", version="1")


def _approval_after(gate):
    gate.world.approve("erin", "business", model="churn", version="1")


def _other_version_deployed(gate):
    decision = gate.check("churn", "2", "dev")
    gate.deploy(decision["decision_id"])


def _override_requested(gate):
    gate.world._post("/api/v1/deployments/overrides", {
        "model": "churn", "version": "1", "environment": "staging",
        "justification": "just in case something goes wrong later"}, gate.world.headers("root", "admin"))


@pytest.mark.parametrize("change", [_evidence_after, _approval_after, _other_version_deployed,
                                    _override_requested],
                         ids=["evidence-added", "approval-added", "other-version-deployed",
                              "override-requested"])
def test_a_decision_is_stale_once_what_it_saw_changes(gate, change):
    gate.minimal(versions=("1", "2"))
    decision = gate.check("churn", "1", "staging")
    assert decision["decision"] == "allow"
    change(gate)
    refused = gate.deploy(decision["decision_id"], expect=409)
    assert refused["message"].startswith(f"churn@1 changed since decision {decision['decision_id']} (entry ")
    assert refused["message"].endswith(f"is newer than what it saw, "
                                       f"{recorded(gate, decision)['payload']['state_seq']}); check again")
    fresh = gate.check("churn", "1", "staging")
    assert fresh["decision"] == "allow"
    assert gate.deploy(fresh["decision_id"])["decision_id"] == fresh["decision_id"]
    gate.assert_all_replay(minimum=2)


def test_a_decision_is_stale_once_an_approval_is_revoked(gate):
    gate.minimal()
    approval = gate.world.approve("erin", "business", model="churn", version="1")
    decision = gate.check("churn", "1", "prod")
    assert decision["decision"] == "allow"
    gate.revoke(approval, gate.world.approver("erin", "business"))
    refused = gate.deploy(decision["decision_id"], expect=409)
    assert f"changed since decision {decision['decision_id']}" in refused["message"]
    fresh = gate.check("churn", "1", "prod")
    assert gate.deploy(fresh["decision_id"])["environment"] == "prod"
    gate.assert_all_replay(minimum=2)


def test_a_decision_is_stale_once_the_policy_files_change(make_app, tmp_path):
    directory = copy_policies(tmp_path / "policies")
    gate = on(make_app(POLICY_DIR=str(directory)))
    gate.minimal()
    decision = gate.check("churn", "1", "staging")
    old = decision["policy_digest"]
    RENAMED(directory)
    new = compile_policy_set(read_policy_dir(directory)).digest
    refused = gate.deploy(decision["decision_id"], expect=409)
    assert refused["message"] == (f"the policy set changed since decision {decision['decision_id']} "
                                  f"({old[:12]} -> {new[:12]}); check again")
    fresh = gate.check("churn", "1", "staging")
    assert fresh["policy_digest"] == new
    assert gate.deploy(fresh["decision_id"])["decision_id"] == fresh["decision_id"]
    gate.assert_all_replay(minimum=2)


# -- rollbacks, history, live-at -------------------------------------------------------

def deploy(gate: Gate, version: str, environment: str = "staging", model: str = "churn") -> dict:
    decision = gate.check(model, version, environment)
    assert decision["decision"] == "allow", decision["results"]
    return gate.deploy(decision["decision_id"], reason=f"release {version}")


def history(gate: Gate, **query) -> list[dict]:
    response = gate.client.get("/api/v1/deployments", query_string=query, headers=gate.world.auditor())
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_rollback_returns_to_the_previous_version_and_records_why(gate):
    gate.minimal(versions=("1", "2"))
    first = deploy(gate, "1")
    second = deploy(gate, "2")
    assert second["previous_version"] == "1"
    size = gate.ledger.size()
    nothing_before = gate.rollback(first["deployment_id"], expect=409)  # not live any more
    assert nothing_before["message"] == (f"{first['deployment_id']} is not live in staging "
                                         f"({second['deployment_id']} is); only the live deployment "
                                         "can be rolled back")
    assert gate.ledger.size() == size  # refused before the gate: not even a decision
    back = gate.rollback(second["deployment_id"], reason="latency regression")
    decision = back.pop("decision")
    assert back == {
        "deployment_id": f"dp-{back['seq']}", "model": "churn", "version": "1", "environment": "staging",
        "action": "rollback", "decision_id": f"dc-{back['seq'] - 1}", "previous_version": "2",
        "rolls_back": second["deployment_id"], "rolled_back_by": None, "reason": "latency regression",
        "actor": "dan", "at": back["at"], "seq": back["seq"], "flagged": False}
    assert gate.ledger.size() == size + 2  # the decision, then the rollback, in one transaction
    # the rollback went through the gate: a recorded allow for version 1, saying it is a rollback
    assert (decision["decision"], decision["decision_id"], decision["action"], decision["rolls_back"]) == (
        "allow", back["decision_id"], "rollback", second["deployment_id"])
    assert (decision["model"], decision["version"], decision["environment"]) == ("churn", "1", "staging")
    assert failed_rules(decision) == []
    recorded_decision = recorded(gate, decision)["payload"]
    assert (recorded_decision["action"], recorded_decision["rolls_back"]) == ("rollback", second["deployment_id"])
    assert recorded_decision["context"]["action"] == "rollback"
    assert recorded_decision["context"]["rollback"] == {
        "rolls_back": second["deployment_id"], "from_version": "2", "to_version": "1"}
    fetched = gate.client.get(f"/api/v1/decisions/{decision['decision_id']}",
                              headers=gate.world.auditor()).get_json()
    assert fetched == {**decision, "deployment_id": back["deployment_id"]}
    assert gate.deploy(decision["decision_id"], expect=409)["message"] == (
        f"decision {decision['decision_id']} was already used by {back['deployment_id']}; check again")
    entry = json.loads(gate.ledger.entry(back["seq"]).canonical)
    assert entry["kind"] == "deployment.rolled_back"
    assert entry["payload"]["reason"] == "latency regression"
    assert (entry["payload"]["decision_id"], entry["payload"]["override_id"]) == (decision["decision_id"], None)
    assert entry["subject"] == "model:churn@1"

    itself = gate.rollback(back["deployment_id"], expect=409)
    assert itself["message"] == f"{back['deployment_id']} is itself a rollback; deploy forward instead"
    assert gate.rollback(second["deployment_id"], expect=409)["message"].startswith(
        f"{second['deployment_id']} is not live in staging")
    assert gate.rollback("dp-999999", expect=404)["message"] == "no deployment dp-999999"
    assert gate.client.post(f"/api/v1/deployments/{second['deployment_id']}/rollback", json={},
                            headers=gate.deployer).status_code == 422  # a reason is required

    only = deploy(gate, "2", environment="dev")  # the first deployment in dev
    alone = gate.rollback(only["deployment_id"], expect=409)
    assert alone["message"] == f"nothing was live in dev before {only['deployment_id']}"

    # forward again after the rollback: the previous version is the rolled-back-to one
    third = deploy(gate, "2")
    assert third["previous_version"] == "1"
    gate.assert_all_replay(minimum=4)


def reject(gate: Gate, version: str, model: str = "churn") -> dict:
    """A standing rejection of ``model@version`` by erin (business): the gate denies it everywhere."""
    return gate.world.approve("erin", "business", model=model, version=version, decision="reject")


def test_a_rollback_to_a_version_denied_now_is_refused_with_the_decision(gate):
    gate.minimal(versions=("1", "2"))
    deploy(gate, "1")
    second = deploy(gate, "2")
    rejection = reject(gate, "1")  # version 1 is denied now
    size = gate.ledger.size()
    response = gate.client.post(f"/api/v1/deployments/{second['deployment_id']}/rollback",
                                json={"reason": "latency regression"}, headers=gate.deployer)
    assert response.status_code == 409, response.get_json()
    body = response.get_json()
    assert set(body) == {"code", "status", "message", "errors"}
    assert (body["code"], body["status"]) == (409, "Conflict")
    decision = body["errors"]["decision"]
    assert body["message"] == (f"the gate denied the rollback of {second['deployment_id']} to churn@1 in "
                               f"staging (decision {decision['decision_id']}): signoff.no-rejection")
    assert (decision["decision"], decision["action"], decision["rolls_back"]) == (
        "deny", "rollback", second["deployment_id"])
    assert failed_rules(decision) == ["signoff.no-rejection"]
    assert result_of(decision, "signoff.no-rejection")["message"] == (
        f"Rejected by erin (business, {rejection['approval_id']})")
    # nothing but the decision was recorded, and version 2 is still live
    assert gate.ledger.size() == size + 1
    assert recorded(gate, decision)["kind"] == "deployment.decision.recorded"
    assert [d["deployment_id"] for d in history(gate, model="churn", environment="staging")][0] == (
        second["deployment_id"])
    assert live(gate, utc_timestamp())["version"] == "2"
    assert gate.client.get(f"/api/v1/decisions/{decision['decision_id']}",
                           headers=gate.world.auditor()).get_json()["deployment_id"] is None

    # once the rejection is revoked, the same rollback passes the gate
    gate.revoke(rejection, gate.world.approver("erin", "business"))
    back = gate.rollback(second["deployment_id"])
    assert (back["version"], back["decision"]["decision"]) == ("1", "allow")
    gate.assert_all_replay(minimum=4)


def test_a_denied_rollback_can_go_through_a_confirmed_break_glass_override(gate):
    gate.minimal(versions=("1", "2"))
    deploy(gate, "1")
    second = deploy(gate, "2")
    reject(gate, "1")
    gate.rollback(second["deployment_id"], expect=409)
    override = gate.world._post("/api/v1/deployments/overrides", {
        "model": "churn", "version": "1", "environment": "staging",
        "justification": "version 2 corrupts scores; back to 1 now"}, gate.world.headers("root", "admin"))
    gate.world._post(f"/api/v1/deployments/overrides/{override['override_id']}/confirm", {},
                     gate.world.approver("olga", "model_risk"), expect=200)
    back = gate.rollback(second["deployment_id"], reason="INC-9 scores corrupted")
    decision = back.pop("decision")
    assert (back["version"], back["flagged"]) == ("1", True)
    assert (decision["decision"], decision["override_id"]) == ("allow", override["override_id"])
    assert failed_rules(decision) == ["signoff.no-rejection"]
    assert result_of(decision, "break-glass.override")["passed"] is True
    entry = json.loads(gate.ledger.entry(back["seq"]).canonical)
    assert entry["payload"]["override_id"] == override["override_id"]
    flagged = gate.client.get("/api/v1/audit/events", query_string={"flagged": "true", "kind": "deployment.*"},
                              headers=gate.world.auditor()).get_json()["events"]
    assert back["seq"] in [e["seq"] for e in flagged] and decision["seq"] in [e["seq"] for e in flagged]
    gate.assert_all_replay(minimum=4)


def test_a_rollback_may_return_to_a_version_signed_off_before_its_latest_evidence(gate):
    """The default pack says so explicitly: for a rollback, standing sign-offs count even when
    they predate the version's latest evidence; a new deployment needs them renewed."""
    gate.compliant(version="1")
    first = gate.deploy(gate.check(version="1")["decision_id"])
    gate.compliant(version="2")
    second = gate.deploy(gate.check(version="2")["decision_id"])
    assert second["previous_version"] == "1"
    gate.world.evidence("model_card", {"content": "# Credit risk, revised"}, version="1")
    forward = gate.check(version="1")
    assert failed_rules(forward) == ["signoff.required-areas"]

    back = gate.rollback(second["deployment_id"], reason="back to the version we trust")
    decision = back.pop("decision")
    assert (back["version"], decision["decision"], decision["action"]) == ("1", "allow", "rollback")
    assert result_of(decision, "signoff.required-areas") == {
        **result_of(decision, "signoff.required-areas"),
        "applicable": False, "passed": True, "message": "not applicable: a deployment, not a rollback"}
    relaxed = result_of(decision, "signoff.rollback-areas")
    assert (relaxed["applicable"], relaxed["passed"]) == (True, True)
    assert "before the version's latest evidence" in relaxed["message"]
    assert result_of(forward, "signoff.rollback-areas")["message"] == "not applicable: a rollback"
    assert first["version"] == back["version"]
    gate.assert_all_replay(minimum=4)


def test_a_rollback_still_needs_standing_sign_offs(gate):
    scenario = gate.compliant(version="1")
    gate.deploy(gate.check(version="1")["decision_id"])
    gate.compliant(version="2")
    second = gate.deploy(gate.check(version="2")["decision_id"])
    gate.revoke(scenario["approvals"]["privacy"], gate.world.approver("bob", "privacy"))
    refused = gate.rollback(second["deployment_id"], expect=409)
    decision = refused["errors"]["decision"]
    assert failed_rules(decision) == ["signoff.rollback-areas"]
    assert result_of(decision, "signoff.rollback-areas")["message"] == (
        "Missing standing sign-off for a rollback of a high risk version in prod: approver:privacy")
    gate.assert_all_replay(minimum=3)


def test_history_per_model_and_environment(gate):
    gate.minimal(versions=("1", "2"))
    gate.minimal(model="fraud", versions=("7",))
    first = deploy(gate, "1")
    second = deploy(gate, "2")
    other_env = deploy(gate, "2", environment="dev")
    other_model = deploy(gate, "7", model="fraud")
    back = gate.rollback(second["deployment_id"])
    ids = lambda rows: [r["deployment_id"] for r in rows]  # noqa: E731
    assert ids(history(gate, model="churn", environment="staging")) == [
        back["deployment_id"], second["deployment_id"], first["deployment_id"]]
    assert ids(history(gate, model="churn")) == [back["deployment_id"], other_env["deployment_id"],
                                                 second["deployment_id"], first["deployment_id"]]
    assert ids(history(gate, environment="staging")) == [
        back["deployment_id"], other_model["deployment_id"], second["deployment_id"], first["deployment_id"]]
    assert ids(history(gate, model="churn", environment="staging", limit=1)) == [back["deployment_id"]]
    assert ids(history(gate, model="churn", environment="staging", before_seq=back["seq"])) == [
        second["deployment_id"], first["deployment_id"]]
    rolled = history(gate, model="churn", environment="staging")[1]
    assert rolled["rolled_back_by"] == back["deployment_id"]
    assert history(gate, model="nothing") == []
    assert gate.client.get("/api/v1/deployments", query_string={"environment": "Prod"},
                           headers=gate.world.auditor()).status_code == 422


def assert_proved(gate: Gate, proved: dict, deployment: dict) -> None:
    """``proved`` is the entry of ``deployment`` with an inclusion proof that verifies."""
    entry, proof = proved["entry"], proved["inclusion_proof"]
    assert entry["seq"] == deployment["seq"] == proof["leaf_index"]
    canonical = base64.b64decode(entry["canonical_b64"])
    assert json.loads(canonical)["kind"] == ("deployment.rolled_back" if deployment["action"] == "rollback"
                                             else "deployment.recorded")
    assert leaf_hash(canonical).hex() == entry["leaf_hash"] == proof["leaf_hash"]
    verify_inclusion(proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["leaf_hash"]),
                     [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(proof["root_hash"]))
    assert gate.ledger.root(proof["tree_size"]) == (proof["tree_size"], bytes.fromhex(proof["root_hash"]))


def live(gate: Gate, at: str, model: str = "churn", environment: str = "staging", expect: int = 200):
    response = gate.client.get("/api/v1/deployments/live", query_string={
        "model": model, "environment": environment, "at": at}, headers=gate.world.auditor())
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def test_live_at_answers_the_version_live_at_a_time_with_proofs(gate):
    gate.world.auditor()  # tokens are ledger entries too: make them before counting
    gate.minimal(versions=("1", "2"))
    before = utc_timestamp()
    first = deploy(gate, "1")
    second = deploy(gate, "2")
    back = gate.rollback(second["deployment_id"])
    size = gate.ledger.size()

    nothing = live(gate, before)
    assert (nothing["version"], nothing["deployment"], nothing["established_by"]) == (None, None, None)
    assert nothing["at"] == before and nothing["tree_size"] == size
    assert_proved(gate, nothing["next_change"], first)

    at_first = live(gate, first["at"])  # inclusive: live from the moment it was recorded
    assert at_first["version"] == "1" and at_first["deployment"] == {**first}
    assert_proved(gate, at_first["established_by"], first)
    assert_proved(gate, at_first["next_change"], second)

    between = live(gate, second["at"])
    assert between["version"] == "2"
    assert between["deployment"]["deployment_id"] == second["deployment_id"]
    assert_proved(gate, between["established_by"], second)
    assert_proved(gate, between["next_change"], back)

    now = live(gate, utc_timestamp())
    assert now["version"] == "1"
    assert now["deployment"] == {k: v for k, v in back.items() if k != "decision"}
    assert_proved(gate, now["established_by"], back)
    assert now["next_change"] is None

    elsewhere = live(gate, utc_timestamp(), environment="prod")
    assert (elsewhere["version"], elsewhere["established_by"], elsewhere["next_change"]) == (None, None, None)
    assert live(gate, utc_timestamp(), model="nothing", expect=404)["message"] == "no model 'nothing'"
    gate.assert_all_replay(minimum=2)
    assert live(gate, "2026-01-01T00:00:00", expect=422)  # a time needs its offset
    missing = gate.client.get("/api/v1/deployments/live", query_string={"model": "churn"},
                              headers=gate.world.auditor())
    assert missing.status_code == 422


def assert_signed_by_the_ledger(gate: Gate, proof: dict) -> dict:
    """The proof names a signed checkpoint of its own tree, and the note's signature verifies."""
    checkpoint = proof["checkpoint"]
    assert checkpoint is not None, proof
    assert (checkpoint["tree_size"], checkpoint["root_hash"]) == (proof["tree_size"], proof["root_hash"])
    body, signatures = parse_signed_note(checkpoint["note"])
    parsed = parse_checkpoint_body(body)
    assert (parsed.tree_size, parsed.root_hash.hex()) == (proof["tree_size"], proof["root_hash"])
    keys = {k["key_id"]: base64.b64decode(k["public_key_b64"]) for k in
            gate.client.get("/api/v1/ledger/public-keys").get_json()["keys"]}
    [signature] = signatures
    verify_signature(keys[checkpoint["key_id"]], body.encode(), signature.signature)
    return checkpoint


def test_live_at_proofs_name_the_signed_checkpoint_they_verify_against(gate):
    gate.world.auditor()
    gate.minimal(versions=("1", "2"))
    first = deploy(gate, "1")
    second = deploy(gate, "2")
    assert gate.ledger.latest_checkpoint() is None  # nothing signed yet (no cadence in tests)

    answer = live(gate, first["at"])
    signed = assert_signed_by_the_ledger(gate, answer["established_by"]["inclusion_proof"])
    assert assert_signed_by_the_ledger(gate, answer["next_change"]["inclusion_proof"]) == signed
    assert answer["checkpoint"] == signed
    assert signed["tree_size"] == gate.ledger.size() == answer["tree_size"]
    assert gate.ledger.latest_checkpoint().tree_size == signed["tree_size"]

    # a checkpoint that covers the entries is reused, not signed again
    gate.world.evidence("model_card", {"content": "later"}, model="churn", version="2")
    again = live(gate, first["at"])
    assert again["checkpoint"] == signed
    assert again["established_by"]["inclusion_proof"]["checkpoint"] == signed
    assert again["tree_size"] == signed["tree_size"] < gate.ledger.size()

    # a change the latest checkpoint does not cover yet gets a new one, extending the old
    back = gate.rollback(second["deployment_id"])
    now = live(gate, utc_timestamp())
    newer = assert_signed_by_the_ledger(gate, now["established_by"]["inclusion_proof"])
    assert now["established_by"]["entry"]["seq"] == back["seq"] < newer["tree_size"]
    assert newer["tree_size"] > signed["tree_size"]
    assert_proved(gate, now["established_by"], back)


def test_live_at_without_a_signing_key_proves_against_the_current_tree(make_app):
    """Where no checkpoint can be had (no key configured), the proof still verifies, naming none."""
    gate = on(make_app(LEDGER_SIGNING_KEY=""))
    gate.world.auditor()
    gate.minimal()
    deployed = deploy(gate, "1")
    answer = live(gate, deployed["at"])
    assert answer["checkpoint"] is None
    assert answer["established_by"]["inclusion_proof"]["checkpoint"] is None
    assert answer["tree_size"] == gate.ledger.size()
    assert_proved(gate, answer["established_by"], deployed)


# -- roles and validation ---------------------------------------------------------------

def test_only_deployers_check_record_and_roll_back(gate):
    world = gate.world
    gate.minimal()
    deployment = deploy(gate, "1")
    allow = gate.check("churn", "1", "dev")
    others = {"author": world.author(), "auditor": world.auditor(), "admin": world.headers("root", "admin"),
              "approver": world.approver("erin", "business")}
    size = world.ledger_size()
    for name, headers in others.items():
        assert gate.check("churn", "1", "dev", headers=headers, expect=403)["message"].endswith(
            "lacks the role this needs: one of deployer"), name
        gate.deploy(allow["decision_id"], headers=headers, expect=403)
        response = gate.client.post(f"/api/v1/deployments/{deployment['deployment_id']}/rollback",
                                    json={"reason": "x"}, headers=headers)
        assert response.status_code == 403, name
    for bad in ({}, {"Authorization": "Bearer mlg_0000000000000000_" + "A" * 43}):
        assert gate.check("churn", "1", "dev", headers=bad, expect=401)
        assert gate.deploy(allow["decision_id"], headers=bad, expect=401)
        response = gate.client.post(f"/api/v1/deployments/{deployment['deployment_id']}/rollback",
                                    json={"reason": "x"}, headers=bad)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert world.ledger_size() == size
    # reading is open to every role, closed without a token
    for name, headers in others.items():
        assert gate.client.get("/api/v1/deployments", headers=headers).status_code == 200, name
        assert gate.client.get(f"/api/v1/decisions/{allow['decision_id']}", headers=headers).status_code == 200
    assert gate.client.get("/api/v1/deployments").status_code == 401
    assert gate.client.get(f"/api/v1/decisions/{allow['decision_id']}/replay").status_code == 401
    gate.assert_all_replay(minimum=2)


@pytest.mark.parametrize("body, field", [
    ({"model": "churn", "version": "1", "environment": "Prod"}, "environment"),
    ({"model": "churn", "version": "1", "environment": "prod env"}, "environment"),
    ({"model": "churn", "version": "1", "environment": "p" * 65}, "environment"),
    ({"model": "churn", "version": "1", "environment": "prod", "force": True}, "force"),
    ({"model": "churn", "version": "1"}, "environment"),
    ({"model": "churn", "version": 1, "environment": "prod"}, "version"),
], ids=["uppercase", "space", "too-long", "unknown-field", "missing", "not-a-string"])
def test_invalid_check_requests_are_422_and_record_nothing(gate, body, field):
    gate.deployer  # noqa: B018 - the token is a ledger entry: make it before counting
    gate.minimal()
    size = gate.ledger.size()
    response = gate.client.post("/api/v1/deployments/check", json=body, headers=gate.deployer)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]
    assert gate.ledger.size() == size


def test_unknown_model_or_version_is_404_and_an_undeclared_environment_is_a_deny(gate):
    gate.deployer  # noqa: B018 - the token is a ledger entry: make it before counting
    gate.minimal()
    # the first use of the policy set records it: do that before counting
    assert gate.client.get("/api/v1/policies", headers=gate.world.auditor()).status_code == 200
    size = gate.ledger.size()
    assert gate.check("nothing", "1", "prod", expect=404)["message"]
    assert gate.check("churn", "9", "prod", expect=404)["message"]
    assert gate.ledger.size() == size
    deny = gate.check("churn", "1", "qa")
    assert deny["decision"] == "deny"
    assert deny["results"] == [{
        "rule": "policy-set.environment", "policy": "policy-set", "severity": "deny", "applicable": True,
        "passed": False, "message": "environment 'qa' is not declared by the policy set "
                                    "(declared: dev, prod, staging)",
        "remediation": "deploy to a declared environment, or declare it under spec.environments of a policy"}]
    assert_recorded(gate, deny)
    gate.deploy(deny["decision_id"], expect=409)
    gate.assert_all_replay()


# -- policies ---------------------------------------------------------------------------

def test_get_policies_shows_rules_parameters_and_digest(gate, app):
    response = gate.client.get("/api/v1/policies", headers=gate.world.auditor())
    assert response.status_code == 200
    body = response.get_json()
    expected = compile_policy_set(read_policy_dir(REPO_POLICIES))
    assert body["policy_digest"] == expected.digest
    assert body["status"] == "ok"
    assert [f["name"] for f in body["files"]] == ["bias.yaml", "environments.yaml", "explainability.yaml",
                                                  "lineage.yaml", "privacy.yaml", "signoff.yaml"]
    assert {f["name"]: f["sha256"] for f in body["files"]} == {f.name: f.sha256 for f in expected.files}
    assert sorted(r["id"] for r in body["rules"]) == sorted(DEFAULT_RULES)
    card = next(r for r in body["rules"] if r["id"] == "explainability.model-card")
    assert (card["severity"], card["policy"], card["match"]) == (
        "warn", "explainability", [{"name": "production", "expression": 'ctx.environment == "prod"'}])
    assert body["environments"]["prod"]["min_disparate_impact_ratio"] == 0.8
    assert body["environments"]["dev"]["min_disparate_impact_ratio"] == 0.6
    [loaded] = policy_entries(gate)
    assert (body["seq"], body["loaded_at"], body["loaded_by"]) == (
        loaded["seq"], loaded["ts"], loaded["actor"])
    assert loaded["payload"]["digest"] == expected.digest
    assert loaded["payload"]["previous_digest"] is None
    assert [f["name"] for f in loaded["payload"]["files"]] == [f["name"] for f in body["files"]]
    assert gate.client.get("/api/v1/policies").status_code == 401


LINEAGE_RULE = "lineage.training-datasets-registered"
EXTRA = """apiVersion: ml-governance/v1
kind: DeploymentPolicy
metadata: {name: extra}
spec:
  rules:
    - id: RULE_ID
      description: A second rule.
      validations:
        - {expression: "true", message: never fails}
"""


def _replace(old: str, new: str):
    def edit(directory):
        path = directory / "lineage.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
    return edit


def _extra(rule_id: str):
    def edit(directory):
        (directory / "zz-extra.yaml").write_text(EXTRA.replace("RULE_ID", rule_id))
    return edit


def RENAMED(directory):
    """The original lineage.yaml with one validation message reworded."""
    original = (REPO_POLICIES / "lineage.yaml").read_text()
    (directory / "lineage.yaml").write_text(original.replace("so nobody can say", "so no one can say"))


BREAKAGES = {
    # name: (break, file, rule, line, columns, message, fix, files diff, rules diff)
    "yaml-syntax": (_replace("Every training dataset is", "Every training: dataset is"),
                    "lineage.yaml", None, 9, (34,), "YAML: mapping values are not allowed here",
                    RENAMED, ("changed", ["lineage.yaml"]), ("changed", [LINEAGE_RULE])),
    "unknown-field": (_replace("      severity: deny\n", "      severity: deny\n      owner: ml-platform\n"),
                      "lineage.yaml", LINEAGE_RULE, 11, (7, 14), "spec.rules.0.owner: Unknown field.",
                      RENAMED, ("changed", ["lineage.yaml"]), ("changed", [LINEAGE_RULE])),
    "cel-syntax": (_replace("size(ctx.version.training_datasets) > 0", "size(ctx.version.training_datasets) > > 0"),
                   "lineage.yaml", LINEAGE_RULE, 12, (61,), "CEL expression[0]: ",
                   RENAMED, ("changed", ["lineage.yaml"]), ("changed", [LINEAGE_RULE])),
    "duplicate-rule-id": (_extra(LINEAGE_RULE), "zz-extra.yaml", LINEAGE_RULE, 6, (7, 11),
                          "rule id is also used in lineage.yaml",
                          _extra("extra.always"), ("added", ["zz-extra.yaml"]), ("added", ["extra.always"])),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_reload_refuses_a_bad_set_naming_file_rule_and_position(make_app, tmp_path, name):
    breakage, file, rule, line, columns, message = BREAKAGES[name][:6]
    directory = copy_policies(tmp_path / "policies")
    gate = on(make_app(POLICY_DIR=str(directory)))
    admin = gate.world.headers("root", "admin")
    old = gate.client.get("/api/v1/policies", headers=gate.world.auditor()).get_json()["policy_digest"]
    breakage(directory)
    size = gate.ledger.size()
    response = gate.client.post("/api/v1/policies/reload", headers=admin)
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert gate.ledger.size() == size
    assert len(body["errors"]["policies"]) == 1
    where = [f"{file}:{line}:{column}" + (f" rule {rule}" if rule else "") for column in columns]
    assert any(body["message"].startswith(f"invalid policy set: {w}: {message}") for w in where), (
        where, body["message"])
    assert any(body["errors"]["policies"][0].startswith(f"{w}: {message}") for w in where), body
    if name == "cel-syntax":
        assert "Syntax error: extraneous input '>'" in body["message"]
    assert gate.client.get("/api/v1/policies", headers=gate.world.auditor()).get_json()["policy_digest"] == old


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_a_bad_set_leaves_the_last_good_set_active_until_fixed(make_app, tmp_path, name):
    breakage, file, rule, _line, _columns, message, fix, files_diff, rules_diff = BREAKAGES[name]
    directory = copy_policies(tmp_path / "policies")
    app = make_app(POLICY_DIR=str(directory))
    gate = on(app)
    admin = gate.world.headers("root", "admin")
    gate.minimal()
    good = gate.check("churn", "1", "staging")
    old = good["policy_digest"]

    breakage(directory)
    response = gate.client.post("/api/v1/policies/reload", headers=admin)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["message"].startswith(f"invalid policy set: {file}")
    assert (f" rule {rule}: " if rule else ": ") + message in response.get_json()["message"]

    # the old set stays active: same digest, checks work and record it, its decisions deploy
    policies = gate.client.get("/api/v1/policies", headers=gate.world.auditor()).get_json()
    assert policies["policy_digest"] == old
    assert policies["status"].startswith(f"warn: policy files rejected, serving last good set {old[:12]}: "
                                         f"invalid policy set: {file}")
    still = gate.check("churn", "1", "dev")
    assert (still["decision"], still["policy_digest"]) == ("allow", old)
    assert gate.deploy(good["decision_id"])["decision_id"] == good["decision_id"]
    ready = gate.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"
    assert ready.get_json()["checks"]["policies"].startswith("warn: policy files rejected")
    assert gate.client.post("/api/v1/policies/reload", headers=gate.deployer).status_code == 403
    assert [e["payload"]["digest"] for e in policy_entries(gate)] == [old]

    # fixed (differently): the next check uses and records the new set, once
    fix(directory)
    new = compile_policy_set(read_policy_dir(directory)).digest
    assert new != old
    checked = [gate.check("churn", "1", env) for env in ("dev", "staging", "prod")]
    assert {d["policy_digest"] for d in checked} == {new}
    second_worker = on(make_app(POLICY_DIR=str(directory)))  # another process on the same ledger
    second_worker.world._tokens = gate.world._tokens
    assert second_worker.check("churn", "1", "dev")["policy_digest"] == new
    reloaded = gate.client.post("/api/v1/policies/reload", headers=admin)
    assert reloaded.status_code == 200
    assert (reloaded.get_json()["policy_digest"], reloaded.get_json()["status"]) == (new, "ok")
    [entry] = policy_entries(gate, new)
    assert entry["actor"].startswith("system:")  # loaded on first use by the check
    assert entry["payload"]["previous_digest"] == old
    diff = entry["payload"]["diff"]
    assert diff["files"] == {"added": [], "removed": [], "changed": [], files_diff[0]: files_diff[1]}
    assert diff["rules"] == {"added": [], "removed": [], "changed": [], rules_diff[0]: rules_diff[1]}
    assert [e["payload"]["digest"] for e in policy_entries(gate)] == [old, new]
    assert gate.client.get("/readyz").get_json()["checks"]["policies"] == "ok"
    gate.assert_all_replay(minimum=6)


def test_reloading_a_changed_set_records_it_as_the_admin(make_app, tmp_path):
    directory = copy_policies(tmp_path / "policies")
    gate = on(make_app(POLICY_DIR=str(directory)))
    old = gate.client.get("/api/v1/policies", headers=gate.world.auditor()).get_json()["policy_digest"]
    RENAMED(directory)
    response = gate.client.post("/api/v1/policies/reload", headers=gate.world.headers("root", "admin"))
    assert response.status_code == 200, response.get_json()
    new = response.get_json()["policy_digest"]
    assert new != old
    [entry] = policy_entries(gate, new)
    assert entry["actor"] == "root"
    assert response.get_json()["seq"] == entry["seq"]
    assert entry["payload"]["diff"]["rules"]["changed"] == [LINEAGE_RULE]


def test_reverting_to_an_earlier_policy_set_records_it_again(make_app, tmp_path):
    directory = copy_policies(tmp_path / "policies")
    gate = on(make_app(POLICY_DIR=str(directory)))
    gate.minimal()
    first = gate.check("churn", "1", "staging")["policy_digest"]
    original = (directory / "lineage.yaml").read_bytes()
    RENAMED(directory)
    second = gate.check("churn", "1", "staging")["policy_digest"]
    assert second != first
    (directory / "lineage.yaml").write_bytes(original)  # the change is reverted
    response = gate.client.post("/api/v1/deployments/check", json={
        "model": "churn", "version": "1", "environment": "staging"}, headers=gate.deployer)
    assert response.status_code == 200, response.get_json()
    reverted = response.get_json()
    assert reverted["policy_digest"] == first
    assert gate.deploy(reverted["decision_id"])["decision_id"] == reverted["decision_id"]
    loaded = [(e["payload"]["digest"], e["payload"]["previous_digest"]) for e in policy_entries(gate)]
    assert loaded == [(first, None), (second, first), (first, second)]
    policies = gate.client.get("/api/v1/policies", headers=gate.world.auditor()).get_json()
    assert (policies["policy_digest"], policies["seq"]) == (first, gate.entries("policy.set.loaded")[-1]["seq"])
    gate.assert_all_replay(minimum=3)


def test_argument_schemas_are_built_once_not_per_request(gate, monkeypatch):
    """ledger.http.Blueprint instantiates each arguments schema when the route is
    declared: webargs, given the class, built one per request (18 µs for CheckIn)."""
    from governance.api.gate import CheckIn

    built = []
    original = CheckIn.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(CheckIn, "__init__", counting)
    gate.minimal()
    assert gate.check("churn", "1", "staging")["decision"] == "allow"
    gate.check("churn", "1", "nowhere", expect=200)
    bad = gate.client.post("/api/v1/deployments/check", json={"model": "churn"}, headers=gate.deployer)
    assert bad.status_code == 422 and "version" in bad.get_json()["errors"]["json"]
    assert built == []
