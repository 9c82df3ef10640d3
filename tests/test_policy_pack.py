"""The default policy pack (``policies/``), rule by rule, through the real API.

Every scenario is built the way a team would: datasets, a model and a version
registered by an author, evidence submitted, sign-offs given with approver
tokens, and then a deployer asks ``POST /api/v1/deployments/check``. Each
default rule has a passing and a failing case; a failing case asserts the
exact message of the rule's result and that its remediation is the one the
policy file gives. The pack's own case file is run with ``flask policy test``.
"""

from __future__ import annotations

import json

import pytest
import yaml

from governance.policy.engine import evaluate
from policy_fixtures.gate_scenarios import (
    DEFAULT_RULES, DPIA, REPO_POLICIES, ROLLBACK_RULES, Gate, bias_attribute, bias_report, copy_policies,
    failed_rules, result_of, sample,
)

MISSING_ALL = "Missing sign-off for high risk in prod: "


@pytest.fixture
def gate(world) -> Gate:
    return Gate(world)


@pytest.fixture
def rules(gate) -> dict:
    """rule id -> its entry in GET /api/v1/policies."""
    response = gate.client.get("/api/v1/policies", headers=gate.world.auditor())
    assert response.status_code == 200
    return {r["id"]: r for r in response.get_json()["rules"]}


def assert_only_failure(decision: dict, rule: str, message: str, rules: dict, verdict: str = "deny"):
    """``rule`` is the one applicable rule that failed, with exactly ``message`` and its remediation."""
    assert decision["decision"] == verdict, decision
    assert failed_rules(decision) == [rule], decision["results"]
    result = result_of(decision, rule)
    assert result["message"] == message
    assert result["applicable"] is True and result["passed"] is False
    assert result["severity"] == rules[rule]["severity"]
    assert result["remediation"], result
    assert result["remediation"] in [v["remediation"] for v in rules[rule]["validations"]]


# -- passing ------------------------------------------------------------------------

def test_a_compliant_high_risk_version_passes_every_default_rule(gate, rules):
    gate.compliant()
    decision = gate.check()
    assert decision["decision"] == "allow"
    assert sorted(r["rule"] for r in decision["results"]) == sorted(DEFAULT_RULES)
    assert set(rules) == set(DEFAULT_RULES)
    for result in decision["results"]:
        if result["rule"] in ROLLBACK_RULES:
            assert (result["applicable"], result["passed"], result["message"]) == (
                False, True, "not applicable: a rollback"), result
            continue
        assert (result["applicable"], result["passed"]) == (True, True), result
        assert result["message"] == rules[result["rule"]]["description"]
        assert result["remediation"] is None


@pytest.mark.parametrize("case", [
    pytest.param({"evidence": {"privacy_assessment": {**DPIA, "status": "approved_with_conditions",
                                                      "conditions": ["pseudonymise names"]}}},
                 id="dpia-approved-with-conditions"),
    pytest.param({"evidence": {"privacy_assessment": None}, "uses_personal_data": False,
                  "not_applicable": {"privacy.dpia-approved": "not applicable: uses personal data"}},
                 id="no-personal-data-needs-no-dpia"),
    pytest.param({"dataset": {"pii_columns": (), "legal_basis": None}}, id="no-pii-needs-no-legal-basis"),
    pytest.param({"risk_tier": "minimal", "evidence": {"bias_report": None, "explainability_report": None},
                  "signers": {},
                  "not_applicable": {
                      "bias.report-covers-protected-attributes": "not applicable: regulated risk tier",
                      "bias.disparate-impact": "not applicable: regulated risk tier",
                      "bias.demographic-parity": "not applicable: regulated risk tier",
                      "explainability.report": "not applicable: high risk"}},
                 id="minimal-risk-needs-no-bias-report-explanation-or-signoff"),
    pytest.param({"risk_tier": "limited", "evidence": {"explainability_report": None},
                  "signers": {"model_risk": "carol"},
                  "not_applicable": {"explainability.report": "not applicable: high risk"}},
                 id="limited-risk-needs-only-model-risk-signoff"),
    pytest.param({"signers": {}, "evidence": {"model_card": None}, "environment": "staging",
                  "not_applicable": {
                      "signoff.required-areas": "not applicable: production-like environment",
                      "signoff.distinct-people": "not applicable: production-like environment",
                      "explainability.model-card": "not applicable: production"}},
                 id="staging-needs-no-signoff-or-model-card"),
])
def test_rule_variants_that_pass(gate, case):
    case = dict(case)
    environment = case.pop("environment", "prod")
    not_applicable = case.pop("not_applicable", {})
    gate.compliant(**case)
    decision = gate.check(environment=environment)
    assert decision["decision"] == "allow", decision["results"]
    assert failed_rules(decision) == []
    for rule, message in not_applicable.items():
        result = result_of(decision, rule)
        assert (result["applicable"], result["passed"], result["message"]) == (False, True, message)
    applicable = {r["rule"] for r in decision["results"] if r["applicable"]}
    assert applicable == set(DEFAULT_RULES) - set(not_applicable) - set(ROLLBACK_RULES)


# -- failing ------------------------------------------------------------------------

@pytest.mark.parametrize("case, rule, message", [
    ({"evidence": {"privacy_assessment": None}}, "privacy.dpia-approved",
     "The model uses personal data but has no privacy assessment (DPIA)."),
    ({"evidence": {"privacy_assessment": {**DPIA, "status": "in_progress"}}}, "privacy.dpia-approved",
     "The privacy assessment (DPIA) is not approved (status: in_progress)."),
    ({"evidence": {"privacy_assessment": {**DPIA, "expires_at": "2020-01-01T00:00:00+00:00"}}},
     "privacy.dpia-approved",
     "The privacy assessment (DPIA) expired on 2020-01-01T00:00:00.000000Z; it must be reviewed again."),
    ({"dataset": {"legal_basis": None}}, "privacy.legal-basis",
     "Training datasets with PII columns but no legal basis: loans@v1"),
    ({"protected_attributes": ("sex", "age_band")}, "bias.report-covers-protected-attributes",
     "No bias report (at most 365 days old) covers: age_band"),
    ({"evidence": {"bias_report": None}}, "bias.report-covers-protected-attributes",
     "No bias report (at most 365 days old) covers: sex"),
    ({"evidence": {"bias_report": bias_report(bias_attribute(ratio=0.72))}}, "bias.disparate-impact",
     "Disparate impact ratio below 0.8 in prod (or not reported) for: sex (0.72)"),
    ({"evidence": {"bias_report": bias_report(bias_attribute(difference=0.17))}}, "bias.demographic-parity",
     "Demographic parity difference above 0.1 in prod (or not reported) for: sex (0.17)"),
    ({"signers": {"model_risk": "carol", "privacy": "bob"}}, "signoff.required-areas",
     MISSING_ALL + "approver:compliance"),
    ({"datasets": ()}, "lineage.training-datasets-registered",
     "The version declares no training datasets, so nobody can say what it was trained on."),
    ({"evidence": {"explainability_report": None}}, "explainability.report",
     "The model is high risk but has no explainability report."),
], ids=["dpia-missing", "dpia-not-approved", "dpia-expired", "legal-basis-missing",
        "bias-report-misses-an-attribute", "no-bias-report", "disparate-impact-declared",
        "demographic-parity-declared", "signoff-area-missing", "no-training-datasets",
        "explainability-missing"])
def test_failing_rule_denies_with_its_message_and_remediation(gate, rules, case, rule, message):
    gate.compliant(**case)
    decision = gate.check()
    assert_only_failure(decision, rule, message, rules)
    gate.assert_all_replay()


def test_a_missing_model_card_only_warns(gate, rules):
    gate.compliant(evidence={"model_card": None})
    decision = gate.check()
    assert_only_failure(decision, "explainability.model-card", "The version has no model card.", rules,
                        verdict="allow")
    assert result_of(decision, "explainability.model-card")["severity"] == "warn"
    # and it is a recorded, deployable allow
    assert gate.deploy(decision["decision_id"])["version"] == "1"


def test_a_standing_rejection_denies_until_it_is_revoked(gate, rules):
    gate.compliant()
    erin = gate.world.approver("erin", "business")
    rejection = gate.world._post("/api/v1/models/credit-risk/versions/1/approvals",
                                 {"role": "business", "decision": "reject", "comment": "no monitoring"},
                                 erin)
    decision = gate.check()
    assert_only_failure(decision, "signoff.no-rejection",
                        f"Rejected by erin (business, {rejection['approval_id']})", rules)
    gate.revoke(rejection, erin, reason="monitoring added")
    assert gate.check()["decision"] == "allow"


# -- bias: the computed report ----------------------------------------------------

@pytest.mark.parametrize("selected, rule, message, ratio, difference", [
    ({"F": 3, "M": 4}, "bias.disparate-impact",
     "Disparate impact ratio below 0.8 in prod (or not reported) for: sex (0.75)", 0.75, 0.05),
    ({"F": 15, "M": 18}, "bias.demographic-parity",
     "Demographic parity difference above 0.1 in prod (or not reported) for: sex (0.15)",
     0.833333333333, 0.15),
], ids=["disparate-impact", "demographic-parity"])
def test_a_computed_bias_report_is_denied_in_prod_but_allowed_in_dev(
        gate, rules, selected, rule, message, ratio, difference):
    gate.compliant(evidence={"bias_report": None}, signers={})
    response = gate.client.post("/api/v1/models/credit-risk/versions/1/evidence/bias-report",
                                json=sample(selected), headers=gate.world.author())
    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert report["kind"] == "bias_report"
    assert report["fields"]["computed_by"].startswith("service:fairlearn==")
    [attribute] = report["fields"]["attributes"]
    assert attribute["attribute"] == "sex"
    assert attribute["metrics"]["disparate_impact_ratio"] == ratio
    assert attribute["metrics"]["demographic_parity_difference"] == difference
    for area, person in {"model_risk": "carol", "compliance": "dave", "privacy": "bob"}.items():
        gate.world.approve(person, area)

    assert_only_failure(gate.check(environment="prod"), rule, message, rules)
    staging = gate.check(environment="staging")  # staging keeps the prod thresholds
    assert failed_rules(staging) == [rule]
    dev = gate.check(environment="dev")
    assert dev["decision"] == "allow", dev["results"]
    assert result_of(dev, rule)["passed"] is True
    gate.assert_all_replay(minimum=3)

    policies = gate.client.get("/api/v1/policies", headers=gate.world.auditor()).get_json()
    assert policies["environments"]["prod"]["min_disparate_impact_ratio"] == 0.8
    assert policies["environments"]["dev"]["min_disparate_impact_ratio"] == 0.6
    assert policies["environments"]["dev"]["max_demographic_parity_difference"] == 0.3


def test_a_computed_report_with_perfect_parity_passes_in_prod(gate):
    gate.compliant(evidence={"bias_report": None}, signers={})
    response = gate.client.post("/api/v1/models/credit-risk/versions/1/evidence/bias-report",
                                json=sample({"F": 6, "M": 6}), headers=gate.world.author())
    assert response.status_code == 201, response.get_json()
    metrics = response.get_json()["fields"]["attributes"][0]["metrics"]
    assert (metrics["disparate_impact_ratio"], metrics["demographic_parity_difference"]) == (1, 0)
    for area, person in {"model_risk": "carol", "compliance": "dave", "privacy": "bob"}.items():
        gate.world.approve(person, area)
    decision = gate.check()
    assert decision["decision"] == "allow", decision["results"]
    assert result_of(decision, "bias.disparate-impact")["passed"] is True
    assert result_of(decision, "bias.demographic-parity")["passed"] is True


@pytest.mark.parametrize("rule, failing, message", [
    ("bias.disparate-impact", bias_attribute("age_band", ratio=0.7),
     "Disparate impact ratio below 0.8 in prod (or not reported) for: age_band (0.7)"),
    ("bias.demographic-parity", bias_attribute("age_band", difference=0.2),
     "Demographic parity difference above 0.1 in prod (or not reported) for: age_band (0.2)"),
], ids=["disparate-impact", "demographic-parity"])
def test_one_bias_report_per_attribute_names_only_the_failing_attribute(gate, rules, rule, failing,
                                                                        message):
    # One report per protected attribute is a supported shape (the coverage
    # rule looks for each attribute in any report); the message must name the
    # failing attribute without empty entries for the reports that pass.
    gate.compliant(protected_attributes=("sex", "age_band"), evidence={"bias_report": None}, signers={})
    gate.world.evidence("bias_report", bias_report(bias_attribute("sex")))
    gate.world.evidence("bias_report", bias_report(failing))
    for area, person in {"model_risk": "carol", "compliance": "dave", "privacy": "bob"}.items():
        gate.world.approve(person, area)
    assert_only_failure(gate.check(), rule, message, rules)


# -- sign-off -----------------------------------------------------------------------

def test_a_signoff_given_before_newer_evidence_no_longer_counts(gate, rules):
    scenario = gate.compliant()
    assert gate.check()["decision"] == "allow"
    newer = gate.world.evidence("validation_report", {"passed": True, "metrics": {"auc": 0.8}})
    stale = f" (given before the latest evidence of {newer['submitted_at']})"
    decision = gate.check()
    assert_only_failure(decision, "signoff.required-areas", MISSING_ALL + ", ".join(
        f"approver:{area}{stale}" for area in ("model_risk", "compliance", "privacy")), rules)

    # each approver looks again and signs off the current evidence: one round, no revocation
    renewed = {}
    for area, approval in scenario["approvals"].items():
        again = gate.world.approve(approval["actor"], area)
        assert again["supersedes"] == approval["approval_id"]
        assert newer["evidence_id"] in [e["evidence_id"] for e in again["evidence"]]
        renewed[area] = again
    decision = gate.check()
    assert decision["decision"] == "allow", decision["results"]
    assert failed_rules(decision) == []
    # only the standing sign-offs count; the superseded ones are in the context beside them
    context = json.loads(gate.ledger.entry(decision["seq"]).canonical)["payload"]["context"]
    assert [a["id"] for a in context["approvals"]] == [a["approval_id"] for a in renewed.values()]
    assert [(a["id"], a["superseded_by"]) for a in context["superseded_approvals"]] == [
        (old["approval_id"], renewed[area]["approval_id"]) for area, old in scenario["approvals"].items()]
    assert context["revoked_approvals"] == []
    gate.assert_all_replay(minimum=3)


def test_a_revoked_signoff_no_longer_counts(gate, rules):
    scenario = gate.compliant()
    privacy = scenario["approvals"]["privacy"]
    revoked = gate.revoke(privacy, gate.world.approver("bob", "privacy"))
    assert revoked["revoked"] is True
    decision = gate.check()
    assert_only_failure(decision, "signoff.required-areas", MISSING_ALL + "approver:privacy", rules)
    context = json.loads(gate.ledger.entry(decision["seq"]).canonical)["payload"]["context"]
    assert [a["id"] for a in context["approvals"]] == [
        scenario["approvals"][a]["approval_id"] for a in ("model_risk", "compliance")]
    assert [(r["id"], r["revoked_by"]) for r in context["revoked_approvals"]] == [
        (privacy["approval_id"], "bob")]


def test_separation_of_duties_one_person_one_required_area(gate, rules, app):
    world = gate.world
    gate.compliant(signers={"model_risk": "carol", "privacy": "bob"})
    # the API refuses a second area by the same person while the first stands
    both = world.approver("bob", "privacy", "compliance")
    refused = world.client.post("/api/v1/models/credit-risk/versions/1/approvals", json={
        "role": "compliance", "decision": "approve", "comment": "also fine"}, headers=both)
    assert refused.status_code == 403
    assert "one person cannot fill two approval areas" in refused.get_json()["message"]

    # revoked and re-given in another area: bob now fills compliance only, pia privacy
    privacy = world.client.get("/api/v1/models/credit-risk/versions/1/approvals",
                               headers=world.auditor()).get_json()[-1]
    assert (privacy["actor"], privacy["area"]) == ("bob", "privacy")
    gate.revoke(privacy, world.approver("bob", "privacy"))
    world.approve("bob", "compliance")
    world.approve("pia", "privacy")
    decision = gate.check()
    assert decision["decision"] == "allow", decision["results"]
    assert result_of(decision, "signoff.distinct-people")["passed"] is True

    # the rule itself, on the recorded context of that decision with bob in two areas
    context = json.loads(gate.ledger.entry(decision["seq"]).canonical)["payload"]["context"]
    assert [(a["actor"], a["area"]) for a in context["approvals"]] == [
        ("carol", "model_risk"), ("bob", "compliance"), ("pia", "privacy")]
    for approval in context["approvals"]:
        if approval["actor"] == "pia":
            approval["actor"] = "bob"
    evaluation = evaluate(app.extensions["policies"].current(), context)
    assert evaluation.decision == "deny"
    assert [r.rule for r in evaluation.failures] == ["signoff.distinct-people"]
    [failure] = evaluation.failures
    assert failure.message == ("These people signed off more than one required area: "
                               "bob (compliance), bob (privacy)")
    assert failure.remediation == rules["signoff.distinct-people"]["validations"][0]["remediation"]


# -- the pack's own test cases --------------------------------------------------------

def case_count(directory) -> int:
    return sum(len(yaml.safe_load(p.read_text())["cases"]) for p in (directory / "tests").glob("*.yaml"))


def test_flask_policy_test_passes_every_case_of_the_default_pack(runner, app):
    digest = app.extensions["policies"].current().digest
    result = runner.invoke(args=["policy", "test", "-v"])
    assert result.exit_code == 0, result.output
    total = case_count(REPO_POLICIES)
    assert total >= 20
    lines = result.output.strip().splitlines()
    assert lines[-1] == f"{total}/{total} policy test cases passed (policy set {digest[:12]})"
    assert sum(line.startswith("PASS default-pack.yaml: ") for line in lines) == total
    assert not any(line.startswith("FAIL") for line in lines)


def test_flask_policy_check_validates_the_default_pack(runner, app):
    result = runner.invoke(args=["policy", "check"])
    assert result.exit_code == 0, result.output
    digest = app.extensions["policies"].current().digest
    assert result.output == (f"valid: 6 files, {len(DEFAULT_RULES)} rules, environments dev, prod, staging\n"
                             f"digest {digest}\n")


def test_a_broken_case_file_makes_flask_policy_test_exit_1(runner, tmp_path):
    directory = copy_policies(tmp_path / "policies")
    (directory / "tests" / "broken.yaml").write_text(
        "cases:\n"
        "  - name: an undeclared environment wrongly expected to pass\n"
        "    context: {environment: qa}\n"
        "    expect: {decision: allow, failed: []}\n"
        "  - name: a case on a base that does not exist\n"
        "    base: nowhere\n"
        "    expect: {decision: allow}\n")
    result = runner.invoke(args=["policy", "test", "--dir", str(directory)])
    assert result.exit_code == 1, result.output
    total = case_count(REPO_POLICIES) + 2
    assert result.output.splitlines() == [
        "FAIL broken.yaml: an undeclared environment wrongly expected to pass",
        "     decision deny, expected allow",
        "     failed rules ['policy-set.environment'], expected []",
        "FAIL broken.yaml: a case on a base that does not exist",
        "     unknown base 'nowhere'",
        result.output.splitlines()[-1],
    ]
    assert result.output.splitlines()[-1].startswith(f"{total - 2}/{total} policy test cases passed")


def test_a_broken_policy_file_makes_flask_policy_test_exit_1(runner, tmp_path):
    directory = copy_policies(tmp_path / "policies")
    (directory / "lineage.yaml").write_text(
        (directory / "lineage.yaml").read_text().replace("severity: deny", "severity: fatal"))
    result = runner.invoke(args=["policy", "test", "--dir", str(directory)])
    assert result.exit_code == 1
    assert "INVALID lineage.yaml" in result.output
    assert "rule lineage.training-datasets-registered" in result.output
    assert "spec.rules.0.severity: Must be one of: deny, warn." in result.output
