"""``evaluate`` first runs every applicable rule as one CEL program and, when
all is plainly true, builds the results from it; anything else goes rule by
rule. The two must never differ: same decision, same results, same messages.

Each test compares ``evaluate`` on a policy set with the combined program
against the same files compiled again with the combined program switched off.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from governance.policy import engine as policy_engine
from governance.policy.cel import CelCompileError, Program
from governance.policy.engine import evaluate
from governance.policy.files import PolicyFile, compile_policy_set, read_policy_dir
from governance.policy.testing import merge_patch
from policy_fixtures.gate_scenarios import REPO_POLICIES
from test_policy_files import policy


def _rule_by_rule(files):
    policy_set = compile_policy_set(files)
    for environment in policy_set.environments:
        policy_set.combined[environment] = None  # as if it had not compiled
    return policy_set


def _case_contexts():
    for path in sorted((Path(REPO_POLICIES) / "tests").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        bases = data.get("bases") or {}
        for base_name, base in bases.items():
            yield f"{path.name}:{base_name}", base
        for index, case in enumerate(data.get("cases") or []):
            context = merge_patch(bases.get(case.get("base"), {}), case.get("patch") or {})
            if "environment" in case:
                context["environment"] = case["environment"]
            yield f"{path.name}:{case.get('name') or index}", context


CONTEXTS = list(_case_contexts())


@pytest.fixture(scope="module")
def pack():
    files = read_policy_dir(REPO_POLICIES)
    return compile_policy_set(files), _rule_by_rule(files)


@pytest.mark.parametrize("name, context", CONTEXTS, ids=[name for name, _ in CONTEXTS])
def test_every_case_of_the_default_pack_gets_the_rule_by_rule_results(pack, name, context):
    fast, slow = pack
    for environment in sorted(fast.environments) + ["nowhere"]:
        ctx = {**context, "environment": environment}
        assert evaluate(fast, ctx) == evaluate(slow, ctx), (name, environment)


def test_the_default_pack_has_cases_that_pass_and_cases_that_fail(pack):
    """Otherwise the comparison above would only ever exercise one path."""
    fast, _ = pack
    decisions = {evaluate(fast, context).decision for _, context in CONTEXTS}
    assert decisions == {"allow", "deny"}


def test_an_allowed_check_is_one_cel_evaluation(pack, monkeypatch):
    fast, _ = pack
    context = dict(CONTEXTS[0][1], environment="prod")
    calls = []
    for name in ("execute", "execute_plain"):
        original = getattr(Program, name)
        monkeypatch.setattr(Program, name, lambda self, env, _o=original, _n=name: (
            calls.append(_n), _o(self, env))[1])
    assert evaluate(fast, context).decision == "allow"
    assert calls == ["execute_plain"]


POLICY = policy("edge", """\
    - id: edge.comment
      description: A comment inside an expression ends at its line.
      validations:
        - expression: "ctx.flag // a comment, no newline after it: the closing parenthesis must survive"
          message: flag is false
    - id: edge.match-not-bool
      description: A match condition that is not a boolean fails closed.
      match:
        - {name: odd, expression: "ctx.match_value"}
      validations:
        - {expression: "true", message: never}
    - id: edge.error-after-false
      description: The first failing check is reported even if a later one errors.
      validations:
        - {expression: "ctx.first", message: first is false}
        - {expression: "ctx.missing_field > 1", message: never reached}
    - id: edge.prod-only
      description: Only in prod.
      environments: [prod]
      match:
        - {name: has-a, expression: "has(ctx.a)"}
        - {name: a-positive, expression: "ctx.a > 0"}
      validations:
        - {expression: "ctx.a < 10", message: a too big}
        - {expression: "ctx.a != 5", message: a is five, messageExpression: "'a is ' + string(ctx.a)"}
""")  # the header of test_policy_files: environments prod and dev

EDGE_CONTEXTS = [
    {"flag": True, "match_value": True, "first": True, "missing_field": 2, "a": 1},
    {"flag": False, "match_value": True, "first": True, "missing_field": 2, "a": 1},
    {"flag": True, "match_value": "yes", "first": True, "missing_field": 2},
    {"flag": True, "match_value": False, "first": False},
    {"flag": True, "match_value": True, "first": True},  # missing_field absent: an error
    {"flag": True, "match_value": True, "first": True, "missing_field": 2, "a": -1},
    {"flag": True, "match_value": True, "first": True, "missing_field": 2, "a": 5},
    {"flag": True, "match_value": True, "first": True, "missing_field": 2, "a": 50},
    {"flag": True, "match_value": True, "first": True, "missing_field": 2, "a": "text"},
    {},
]


@pytest.mark.parametrize("context", EDGE_CONTEXTS)
@pytest.mark.parametrize("environment", ["prod", "dev"])
def test_errors_non_booleans_comments_and_environments_agree(context, environment):
    files = [PolicyFile("edge.yaml", POLICY.encode())]
    fast, slow = compile_policy_set(files), _rule_by_rule(files)
    ctx = {**context, "environment": environment}
    assert evaluate(fast, ctx) == evaluate(slow, ctx)


@pytest.mark.parametrize("context, environment, applicable, message", [
    (EDGE_CONTEXTS[0], "prod", [True, True, True, True], "Only in prod."),
    (EDGE_CONTEXTS[5], "prod", [True, True, True, False], "not applicable: a-positive"),
    ({**EDGE_CONTEXTS[0], "a": None, "match_value": False}, "dev", [True, False, True, False],
     "not applicable in dev"),
])
def test_passing_contexts_are_answered_by_the_combined_program_alone(context, environment, applicable,
                                                                     message):
    fast = compile_policy_set([PolicyFile("edge.yaml", POLICY.encode())])
    env = policy_engine.activation({**context, "environment": environment}, {})
    results = policy_engine._all_pass(fast, environment, env)
    assert results is not None and all(r.passed for r in results)
    assert [r.applicable for r in results] == applicable
    assert results[-1].message == message


def test_a_combined_program_that_does_not_compile_leaves_the_rule_by_rule_path(monkeypatch):
    def refuse(source):
        raise CelCompileError("<input>:1:1: refused for the test")

    monkeypatch.setattr(policy_engine, "compile_expression", refuse)
    files = [PolicyFile("edge.yaml", POLICY.encode())]
    fast, slow = compile_policy_set(files), _rule_by_rule(files)
    for context in EDGE_CONTEXTS:
        ctx = {**context, "environment": "prod"}
        assert evaluate(fast, ctx) == evaluate(slow, ctx)
    assert fast.combined == {"prod": None}
