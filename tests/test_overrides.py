"""Break-glass overrides: an admin requests, a different approver confirms, in writing.

A confirmed, unexpired override turns a deny into an allow for one version
and environment; the decision still lists every failing rule plus a
``break-glass.override`` result, and every entry involved is flagged in the
audit trail. Expiry is tested with a later ``now`` through the gate service.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from governance.api.errors import status_of
from governance.errors import ConflictError
from governance.gate import decisions, deployments
from policy_fixtures.gate_scenarios import Gate, failed_rules, result_of

OVERRIDES = "/api/v1/deployments/overrides"
JUSTIFICATION = "regulator-mandated fix must ship tonight (INC-4711)"


@pytest.fixture
def gate(world) -> Gate:
    return Gate(world)


@pytest.fixture
def denied(gate) -> dict:
    """credit-risk@1 denied in prod: the DPIA is missing."""
    gate.compliant(evidence={"privacy_assessment": None})
    decision = gate.check()
    assert decision["decision"] == "deny"
    assert failed_rules(decision) == ["privacy.dpia-approved"]
    return decision


def request(gate: Gate, headers: dict | None = None, expect: int = 201, **fields) -> dict:
    body = {"model": "credit-risk", "version": "1", "environment": "prod",
            "justification": JUSTIFICATION, **fields}
    response = gate.client.post(OVERRIDES, json=body,
                                headers=gate.world.headers("root", "admin") if headers is None else headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def confirm(gate: Gate, override_id: str, headers: dict | None = None, expect: int = 200) -> dict:
    response = gate.client.post(f"{OVERRIDES}/{override_id}/confirm",
                                headers=gate.world.approver("olga", "model_risk") if headers is None else headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def flagged_events(gate: Gate) -> list[dict]:
    response = gate.client.get("/api/v1/audit/events", query_string={"flagged": "true"},
                               headers=gate.world.auditor())
    assert response.status_code == 200, response.get_json()
    return response.get_json()["events"]


def test_a_confirmed_override_turns_a_deny_into_a_flagged_allow(gate, denied):
    requested = request(gate)
    assert requested["override_id"] == f"ov-{requested['seq']}"
    assert (requested["requested_by"], requested["confirmed_by"], requested["active"]) == ("root", None, False)
    assert requested["justification"] == JUSTIFICATION
    requested_at = datetime.strptime(requested["requested_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires_at = datetime.strptime(requested["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert timedelta(minutes=59) < expires_at - requested_at <= timedelta(minutes=60)

    # requested but not confirmed: nothing changes
    unconfirmed = gate.check()
    assert unconfirmed["decision"] == "deny" and unconfirmed["override_id"] is None
    assert "break-glass.override" not in [r["rule"] for r in unconfirmed["results"]]
    gate.deploy(unconfirmed["decision_id"], expect=409)

    confirmed = confirm(gate, requested["override_id"])
    assert (confirmed["confirmed_by"], confirmed["active"]) == ("olga", True)
    assert confirmed["seq"] > requested["seq"]

    forced = gate.check()
    assert forced["decision"] == "allow"
    assert forced["override_id"] == requested["override_id"]
    assert failed_rules(forced) == ["privacy.dpia-approved"]  # still reported
    override = result_of(forced, "break-glass.override")
    assert override == {
        "rule": "break-glass.override", "policy": "break-glass", "severity": "deny", "applicable": True,
        "passed": True, "remediation": None,
        "message": f"break-glass override {requested['override_id']} by root and olga until "
                   f"{requested['expires_at']}: {JUSTIFICATION}"}
    deployment = gate.deploy(forced["decision_id"], reason="hotfix under INC-4711")
    assert deployment["flagged"] is True
    listed = gate.client.get("/api/v1/deployments", query_string={"model": "credit-risk"},
                             headers=gate.world.auditor()).get_json()
    assert [(d["deployment_id"], d["flagged"]) for d in listed] == [(deployment["deployment_id"], True)]

    flagged = {e["seq"]: e for e in flagged_events(gate)}
    assert set(flagged) == {requested["seq"], confirmed["seq"], forced["seq"], deployment["seq"]}
    assert flagged[requested["seq"]]["kind"] == "deployment.override.requested"
    assert flagged[confirmed["seq"]]["kind"] == "deployment.override.confirmed"
    assert flagged[forced["seq"]]["kind"] == "deployment.decision.recorded"
    assert flagged[deployment["seq"]]["kind"] == "deployment.recorded"
    assert all(e["flagged"] for e in flagged.values())
    assert "BREAK-GLASS" in flagged[requested["seq"]]["summary"]
    assert requested["override_id"] in flagged[deployment["seq"]]["summary"]
    # the plain denials are in the trail, unflagged
    unflagged = gate.client.get("/api/v1/audit/events", query_string={
        "flagged": "false", "kind": "deployment.decision.recorded"}, headers=gate.world.auditor()).get_json()
    assert {e["seq"] for e in unflagged["events"]} == {denied["seq"], unconfirmed["seq"]}

    overrides = gate.client.get(OVERRIDES, query_string={"model": "credit-risk"},
                                headers=gate.world.auditor()).get_json()
    assert overrides == [confirmed]
    gate.assert_all_replay(minimum=3)


def test_an_override_covers_only_its_version_and_environment(gate, denied):
    gate.world.version("credit-risk", "2")
    confirm(gate, request(gate)["override_id"])
    assert gate.check(environment="prod")["decision"] == "allow"
    staging = gate.check(environment="staging")
    assert staging["decision"] == "deny" and staging["override_id"] is None
    other = gate.check(version="2")
    assert other["decision"] == "deny" and other["override_id"] is None


def test_an_expired_override_denies_again_and_its_allow_cannot_be_recorded(gate, denied, app):
    requested = request(gate, expires_in_minutes=1)
    confirm(gate, requested["override_id"])
    forced = gate.check()
    assert forced["decision"] == "allow" and forced["override_id"] == requested["override_id"]

    registry = app.extensions["policies"]
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    again = decisions.check(gate.ledger, registry, "dan", "credit-risk", "1", "prod", 900, now=later)
    assert again["decision"] == "deny"
    assert again["override_id"] is None
    assert failed_rules(again) == ["privacy.dpia-approved"]
    assert "break-glass.override" not in [r["rule"] for r in again["results"]]

    with pytest.raises(ConflictError, match=rf"the break-glass override {requested['override_id']} "
                                            rf"behind {forced['decision_id']} expired") as refused:
        deployments.record_deployment(gate.ledger, registry, "dan", forced["decision_id"], now=later)
    assert status_of(refused.value) == 409
    # still within the override's minute, the same decision is recorded
    recorded = deployments.record_deployment(gate.ledger, registry, "dan", forced["decision_id"],
                                              now=datetime.now(timezone.utc))
    assert recorded["flagged"] is True
    gate.assert_all_replay(minimum=3)


def test_only_admins_request_overrides(gate, denied):
    world = gate.world
    for headers in (world.author(), gate.deployer, world.approver("olga", "model_risk"), world.auditor()):
        assert request(gate, headers=headers, expect=403)["message"].endswith("one of admin")
    assert request(gate, headers={}, expect=401)
    assert gate.client.get(OVERRIDES, headers=world.auditor()).get_json() == []


@pytest.mark.parametrize("fields, field", [
    ({"justification": "too short, really"}, "justification"),
    ({"expires_in_minutes": 0}, "expires_in_minutes"),
    ({"expires_in_minutes": 24 * 60 + 1}, "expires_in_minutes"),
    ({"environment": "Prod"}, "environment"),
    ({"reason": "unknown field"}, "reason"),
], ids=["justification-under-20", "zero-minutes", "over-a-day", "bad-environment", "unknown-field"])
def test_invalid_override_requests_are_422(gate, denied, fields, field):
    admin = gate.world.headers("root", "admin")
    size = gate.ledger.size()
    body = request(gate, headers=admin, expect=422, **fields)
    assert field in body["errors"]["json"]
    assert gate.ledger.size() == size


def test_a_justification_of_exactly_20_characters_is_enough(gate, denied):
    assert len("twenty characters ok") == 20
    assert request(gate, justification="twenty characters ok")["justification"] == "twenty characters ok"


def test_unknown_targets_and_overrides_are_404(gate, denied):
    assert request(gate, version="9", expect=404)
    assert request(gate, model="nothing", expect=404)
    assert confirm(gate, "ov-999999", expect=404)["message"] == "no override ov-999999"


def test_confirmation_needs_another_approver_who_is_not_the_author(gate, denied):
    world = gate.world
    root_approver = world.headers("root", "admin", "approver:privacy")
    requested = request(gate, headers=root_approver)
    others = (gate.deployer, world.headers("ada", "admin"), world.author("carl"), world.auditor())
    alice = world.approver("alice", "privacy")  # tokens are ledger entries: make them before counting
    size = gate.ledger.size()
    self_confirmed = confirm(gate, requested["override_id"], headers=root_approver, expect=403)
    assert self_confirmed["message"] == "the person who requested an override cannot confirm it"
    by_author = confirm(gate, requested["override_id"], headers=alice, expect=403)
    assert by_author["message"] == "the author of the version cannot confirm its override"
    for headers in others:
        confirm(gate, requested["override_id"], headers=headers, expect=403)
    confirm(gate, requested["override_id"], headers={}, expect=401)
    assert gate.ledger.size() == size
    assert gate.check()["decision"] == "deny"  # none of that confirmed anything

    confirm(gate, requested["override_id"])
    twice = confirm(gate, requested["override_id"], headers=world.approver("pia", "privacy"), expect=409)
    assert twice["message"] == f"override {requested['override_id']} was already confirmed by olga"
    assert gate.check()["decision"] == "allow"


def test_an_override_cannot_open_an_undeclared_environment(gate, denied):
    # Break-glass forces failing rules; it must not make an environment that
    # no policy declares (a typo such as "prdo") deployable.
    response = gate.client.post(OVERRIDES, json={
        "model": "credit-risk", "version": "1", "environment": "prdo", "justification": JUSTIFICATION},
        headers=gate.world.headers("root", "admin"))
    if response.status_code == 201:
        confirm(gate, response.get_json()["override_id"])
        decision = gate.check(environment="prdo")
        assert decision["decision"] == "deny", decision["results"]
        assert failed_rules(decision) == ["policy-set.environment"]
    else:
        assert response.status_code == 422, response.get_json()
        assert "prdo" in response.get_json()["message"]


def test_an_override_a_passing_version_does_not_need_is_not_behind_its_allow(gate):
    # The override only acts on a deny: an allow the rules give by themselves
    # is not a break-glass decision (no override result, not flagged, and
    # recordable after the override lapses).
    gate.compliant()
    confirm(gate, request(gate)["override_id"])
    decision = gate.check()
    assert decision["decision"] == "allow"
    assert "break-glass.override" not in [r["rule"] for r in decision["results"]]
    assert decision["override_id"] is None
    assert decision["seq"] not in {e["seq"] for e in flagged_events(gate)}
