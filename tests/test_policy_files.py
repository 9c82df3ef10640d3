"""Policy files and the policy engine, as units: small in-test YAML, no app.

``compile_policy_set`` rejects a bad set with every problem located by file,
rule and line:column (1-based); the digest depends on the exact bytes and
names of the files, never on their order. ``evaluate`` is pure and fails
closed: a rule whose expression errors or returns a non-boolean fails, and no
applicable rule at all is a deny.
"""

from __future__ import annotations

import json

import pytest

from governance.policy.engine import COVERAGE_RULE, ENVIRONMENT_RULE, evaluate
from governance.policy.files import PolicyFile, PolicyLoadError, compile_policy_set, read_policy_dir
from policy_fixtures.gate_scenarios import REPO_POLICIES

HEAD = """\
apiVersion: ml-governance/v1
kind: DeploymentPolicy
metadata: {name: NAME}
spec:
  environments: {prod: {}, dev: {}}
  rules:
"""  # rules start on line 7
RULE = """\
    - id: RULE_ID
      description: Always true.
      validations:
        - {expression: "true", message: never fails}
"""


def policy(name: str = "base", rules: str = RULE.replace("RULE_ID", "base.ok"), head: str = HEAD) -> str:
    return head.replace("NAME", name) + rules


def pfile(name: str, text) -> PolicyFile:
    return PolicyFile(name, text if isinstance(text, bytes) else text.encode())


def problems(*files: PolicyFile, match: str = "invalid policy set") -> list[dict]:
    with pytest.raises(PolicyLoadError, match=match) as caught:
        compile_policy_set(list(files))
    return caught.value.problems


def only_problem(*files: PolicyFile, match: str = "invalid policy set") -> dict:
    found = problems(*files, match=match)
    assert len(found) == 1, found
    return found[0]


def test_a_valid_set_compiles():
    policy_set = compile_policy_set([pfile("a.yaml", policy("a", RULE.replace("RULE_ID", "a.one"))),
                                     pfile("b.yaml", policy("b", RULE.replace("RULE_ID", "b.two")))])
    assert [r.id for r in policy_set.rules] == ["a.one", "b.two"]
    assert [r.policy for r in policy_set.rules] == ["a", "b"]
    assert set(policy_set.environments) == {"prod", "dev"}
    assert len(policy_set.digest) == 64


# -- rejections, each located ------------------------------------------------------

def test_yaml_syntax_error():
    problem = only_problem(pfile("bad.yaml", policy(rules="    - id: a.b\n      description: [never closed\n")),
                           match=r"^invalid policy set: bad\.yaml:9:1: YAML: ")
    assert problem == {"file": "bad.yaml", "line": 9, "column": 1,
                       "message": "YAML: expected ',' or ']', but got '<stream end>'"}


def test_duplicate_yaml_key():
    text = policy(rules="    - id: a.b\n      description: one\n      description: two\n"
                        "      validations: [{expression: 'true', message: m}]\n")
    problem = only_problem(pfile("dup.yaml", text), match=r"^invalid policy set: dup\.yaml:9:7: ")
    assert problem == {"file": "dup.yaml", "line": 9, "column": 7,
                       "message": "YAML: duplicate key 'description'"}


def test_unknown_field_names_rule_and_position():
    text = policy(rules=RULE.replace("RULE_ID", "a.b") + "      severty: warn\n")
    problem = only_problem(pfile("unknown.yaml", text))
    assert (problem["file"], problem["rule"], problem["message"]) == (
        "unknown.yaml", "a.b", "spec.rules.0.severty: Unknown field.")
    assert problem["line"] == 11
    assert problem["column"] in (7, 16)  # the key or its value


def test_unknown_top_level_field():
    problem = only_problem(pfile("top.yaml", policy() + "extra: 1\n"))
    assert (problem["file"], problem["rule"], problem["message"]) == ("top.yaml", None, "extra: Unknown field.")


def test_missing_field_names_rule_and_position():
    text = policy(rules="    - id: a.b\n      validations: [{expression: 'true', message: m}]\n")
    problem = only_problem(pfile("missing.yaml", text))
    assert (problem["file"], problem["rule"], problem["message"]) == (
        "missing.yaml", "a.b", "spec.rules.0.description: Missing data for required field.")
    assert problem["line"] == 7  # the rule that lacks it
    assert problem["column"] is not None


@pytest.mark.parametrize("rule_id", ["NoDots", "privacy", "privacy.", "Privacy.dpia", "privacy.dpia\n"])
def test_bad_rule_id(rule_id):
    text = policy(rules=f"    - id: {json.dumps(rule_id)}\n      description: d\n"
                        "      validations: [{expression: 'true', message: m}]\n")
    problem = only_problem(pfile("ids.yaml", text))
    assert (problem["file"], problem["rule"], problem["message"]) == (
        "ids.yaml", rule_id, "spec.rules.0.id: must look like area.rule-name")


def test_bad_rule_id_is_located():
    text = policy(rules="    - id: NoDots\n      description: d\n"
                        "      validations: [{expression: 'true', message: m}]\n")
    problem = only_problem(pfile("ids.yaml", text), match=r"^invalid policy set: ids\.yaml:7:\d+ rule NoDots: ")
    assert (problem["line"], problem["column"]) in ((7, 7), (7, 11))


def test_bad_severity_and_api_version():
    text = policy(rules=RULE.replace("RULE_ID", "a.b") + "      severity: fatal\n").replace(
        "ml-governance/v1", "ml-governance/v2")
    found = {p["message"]: p for p in problems(pfile("x.yaml", text))}
    assert set(found) == {"apiVersion: Must be equal to ml-governance/v1.",
                          "spec.rules.0.severity: Must be one of: deny, warn."}
    assert found["spec.rules.0.severity: Must be one of: deny, warn."]["rule"] == "a.b"
    assert found["apiVersion: Must be equal to ml-governance/v1."]["rule"] is None


def test_duplicate_rule_id_across_files_is_reported_in_the_second_file():
    first = pfile("a.yaml", policy("a", RULE.replace("RULE_ID", "shared.rule")))
    second = pfile("b.yaml", policy("b", RULE.replace("RULE_ID", "shared.rule")))
    problem = only_problem(first, second)
    assert (problem["file"], problem["rule"], problem["message"]) == (
        "b.yaml", "shared.rule", "rule id is also used in a.yaml")
    assert (problem["line"], problem["column"]) in ((7, 7), (7, 11))


def test_duplicate_policy_name_across_files():
    problem = only_problem(pfile("a.yaml", policy("same", RULE.replace("RULE_ID", "a.one"))),
                           pfile("b.yaml", policy("same", RULE.replace("RULE_ID", "b.two"))))
    assert (problem["file"], problem["message"]) == ("b.yaml", "policy name 'same' is also used by a.yaml")


def _cel_rule(expression_yaml: str) -> str:
    return ("    - id: a.cel\n      description: d\n      validations:\n"
            f"        - expression: {expression_yaml}\n          message: m\n")  # expression on line 10


def test_cel_syntax_error_points_into_a_one_line_expression():
    # line 10 is "        - expression: ctx.model.name == == 'x'"; the value starts in column 23
    # and the second "==" (CEL column 19 of the expression) is in column 41 of the file
    problem = only_problem(pfile("cel.yaml", policy(rules=_cel_rule("ctx.model.name == == 'x'"))))
    assert (problem["file"], problem["rule"]) == ("cel.yaml", "a.cel")
    assert problem["message"].startswith("CEL expression[0]: ")
    assert "<input>:1:19: Syntax error: extraneous input '=='" in problem["message"]
    assert (problem["line"], problem["column"]) == (10, 41)


def test_cel_syntax_error_points_into_a_quoted_expression():
    # the quote is column 23, the expression starts in column 24
    problem = only_problem(pfile("cel.yaml", policy(rules=_cel_rule("'ctx.model.name == == \"x\"'"))))
    assert (problem["line"], problem["column"]) == (10, 24 + 19 - 1)


def test_cel_syntax_error_points_at_the_line_of_a_block_expression():
    # a literal block: the expression is on lines 11-12, indented 12; ")" is on line 12, column 12 + 6
    text = policy(rules=_cel_rule("|\n            ctx.model.name == 'x'\n              && ) true"))
    problem = only_problem(pfile("cel.yaml", text))
    assert (problem["file"], problem["rule"]) == ("cel.yaml", "a.cel")
    assert "<input>:2:6: Syntax error: extraneous input ')'" in problem["message"]
    assert (problem["line"], problem["column"]) == (12, 18)


def test_cel_syntax_error_points_into_a_folded_expression():
    # the default pack writes long expressions as folded blocks: content on line 11, indented 12
    text = policy(rules=_cel_rule(">\n            ctx.model.name == 'x' && ) true"))
    problem = only_problem(pfile("cel.yaml", text))
    assert "Syntax error: extraneous input ')'" in problem["message"]
    assert (problem["line"], problem["column"]) == (11, 12 + 26)


def test_a_type_error_the_checker_can_see_rejects_the_file_with_its_position():
    # "a" + 1 has no overload: refused at load, not at the first check; "+" is CEL column 26
    problem = only_problem(pfile("cel.yaml", policy(rules=_cel_rule("ctx.model.name == \"a\" + 1"))))
    assert (problem["file"], problem["rule"]) == ("cel.yaml", "a.cel")
    assert "<input>:1:23: found no matching overload for '_+_' applied to '(string, int)'" in problem["message"]
    assert (problem["line"], problem["column"]) == (10, 23 + 23 - 1)


def test_a_ternary_whose_branches_differ_in_type_is_rejected_at_load():
    problem = only_problem(pfile("cel.yaml", policy(rules=_cel_rule("'ctx.model.name == \"a\" ? true : 1'"))))
    assert "found no matching overload for '_?_:_'" in problem["message"]


def test_context_values_are_typed_when_evaluated_so_int_and_double_compare():
    files = [pfile("t.yaml", policy(rules=(
        "    - id: t.mixed\n      description: d\n      validations:\n"
        "        - {expression: 'ctx.model.count >= params.threshold && ctx.model.ratio < params.limit', "
        "message: m}\n"), head=HEAD.replace("spec:\n", "spec:\n  params: {threshold: 0.5, limit: 2}\n")))]
    evaluation = evaluate(compile_policy_set(files), {"environment": "prod",
                                                     "model": {"count": 1, "ratio": 1.5}})
    assert evaluation.decision == "allow", evaluation.results_json()


def test_cel_syntax_errors_in_match_and_message_expressions_are_all_reported():
    text = policy(rules="    - id: a.cel\n      description: d\n"
                        "      match: [{name: n, expression: 'ctx.x +'}]\n"
                        "      validations:\n"
                        "        - expression: 'true'\n"
                        "          message: m\n"
                        "          messageExpression: '\"a\" +'\n")
    found = problems(pfile("cel.yaml", text), match=r"\(and 1 more\)$")
    assert [(p["rule"], p["message"].split(":")[0]) for p in found] == [
        ("a.cel", "CEL expression[0]"), ("a.cel", "CEL messageExpression[0]")]
    assert [p["line"] for p in found] == [9, 13]


def test_undeclared_environment_in_a_rule():
    text = policy(rules=RULE.replace("RULE_ID", "a.b") + "      environments: [prod, qa]\n")
    problem = only_problem(pfile("env.yaml", text))
    assert (problem["file"], problem["rule"], problem["message"]) == (
        "env.yaml", "a.b", "environment 'qa' is not declared in any spec.environments")
    assert problem.get("line") == 11  # the rule's environments
    assert problem.get("column") is not None


def test_an_environment_declared_in_another_file_counts():
    other = HEAD.replace("{prod: {}, dev: {}}", "{qa: {}}")
    policy_set = compile_policy_set([
        pfile("a.yaml", policy("a", RULE.replace("RULE_ID", "a.b") + "      environments: [qa]\n")),
        pfile("b.yaml", policy("b", RULE.replace("RULE_ID", "b.c"), head=other))])
    assert set(policy_set.environments) == {"prod", "dev", "qa"}


def test_conflicting_params_name_both_files():
    params = HEAD.replace("  environments:", "  params: {threshold: 0.8}\n  environments:")
    other = HEAD.replace("  environments:", "  params:\n    threshold: 0.9\n  environments:")
    problem = only_problem(pfile("a.yaml", policy("a", head=params)),
                           pfile("b.yaml", policy("b", RULE.replace("RULE_ID", "b.c"), head=other)))
    assert (problem["file"], problem["message"]) == ("b.yaml", "param 'threshold' is also set, differently, by a.yaml")
    assert problem.get("line") == 6  # where b.yaml sets it
    assert problem.get("column") is not None


def test_equal_params_in_two_files_are_fine_and_environment_params_override():
    params = HEAD.replace("  environments: {prod: {}, dev: {}}",
                          "  params: {threshold: 0.8, tiers: [high]}\n"
                          "  environments: {prod: {}, dev: {params: {threshold: 0.6}}}")
    policy_set = compile_policy_set([pfile("a.yaml", policy("a", head=params)),
                                     pfile("b.yaml", policy("b", RULE.replace("RULE_ID", "b.c"), head=params))])
    assert policy_set.params_for("prod") == {"threshold": 0.8, "tiers": ["high"]}
    assert policy_set.params_for("dev") == {"threshold": 0.6, "tiers": ["high"]}


def test_conflicting_environment_params():
    a = HEAD.replace("{prod: {}, dev: {}}", "{dev: {params: {threshold: 0.6}}}")
    b = HEAD.replace("{prod: {}, dev: {}}", "{dev: {params: {threshold: 0.5}}}")
    problem = only_problem(pfile("a.yaml", policy("a", head=a)),
                           pfile("b.yaml", policy("b", RULE.replace("RULE_ID", "b.c"), head=b)))
    assert (problem["file"], problem["message"]) == (
        "b.yaml", "environment dev param 'threshold' is set twice, differently")


def test_an_empty_set_is_refused():
    problem = only_problem(match="no files")
    assert problem == {"file": None, "message": "the policy set has no files: it would deny everything"}


@pytest.mark.parametrize("rules", ["", "  rules: []\n"], ids=["no-rules-key", "empty-rules"])
def test_a_set_without_rules_is_refused(rules):
    problem = only_problem(pfile("a.yaml", HEAD.replace("NAME", "a").replace("  rules:\n", rules)),
                           match="no rules")
    assert problem == {"file": None, "message": "the policy set has no rules: it would deny everything"}


def test_the_empty_set_message_has_no_empty_location():
    with pytest.raises(PolicyLoadError) as caught:
        compile_policy_set([])
    assert str(caught.value) == "invalid policy set: the policy set has no files: it would deny everything"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", ""], ids=["list", "string", "number",
                                                                                    "empty"])
def test_a_file_that_is_not_a_mapping(text):
    problem = only_problem(pfile("flat.yaml", text), match=r"^invalid policy set: flat\.yaml:1:1: ")
    assert problem == {"file": "flat.yaml", "line": 1, "column": 1, "message": "a policy file must be a mapping"}


def test_a_file_that_is_not_utf8():
    problem = only_problem(pfile("latin.yaml", policy().replace("Always true.", "Toujours vrai \xe9.")
                                 .encode("latin-1")))
    assert problem["file"] == "latin.yaml"
    assert problem["message"].startswith("not UTF-8: ")


def test_every_problem_of_every_file_is_listed():
    found = problems(pfile("a.yaml", "- not a mapping\n"),
                     pfile("b.yaml", policy("b", rules="    - id: NoDots\n      description: d\n"
                                                       "      validations: [{expression: 'true', message: m}]\n")),
                     pfile("c.yaml", b"\xff\xfe"), match=r"\(and 2 more\)$")
    assert [p["file"] for p in found] == ["a.yaml", "b.yaml", "c.yaml"]


def test_the_default_pack_compiles():
    policy_set = compile_policy_set(read_policy_dir(REPO_POLICIES))
    assert len(policy_set.rules) == 12
    assert sorted(policy_set.environments) == ["dev", "prod", "staging"]


def test_read_policy_dir_takes_yaml_files_only(tmp_path):
    (tmp_path / "a.yaml").write_text(policy("a"))
    (tmp_path / "b.yml").write_text(policy("b", RULE.replace("RULE_ID", "b.c")))
    (tmp_path / "notes.txt").write_text("not policy")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "cases.yaml").write_text("cases: []\n")
    assert [f.name for f in read_policy_dir(tmp_path)] == ["a.yaml", "b.yml"]
    with pytest.raises(PolicyLoadError, match="policy directory does not exist"):
        read_policy_dir(tmp_path / "missing")


# -- the digest --------------------------------------------------------------------

def _two():
    return [pfile("a.yaml", policy("a", RULE.replace("RULE_ID", "a.one"))),
            pfile("b.yaml", policy("b", RULE.replace("RULE_ID", "b.two")))]


def test_the_same_files_give_the_same_digest_in_any_order():
    first = compile_policy_set(_two()).digest
    assert compile_policy_set(_two()).digest == first
    assert compile_policy_set(list(reversed(_two()))).digest == first
    assert [f.name for f in compile_policy_set(list(reversed(_two()))).files] == ["a.yaml", "b.yaml"]


@pytest.mark.parametrize("change", [
    lambda content: content + b"\n",
    lambda content: content.replace(b"Always true.", b"Always true!"),
    lambda content: content.replace(b"{expression:", b"{ expression:"),
    lambda content: content.replace(b"\n", b"\r\n"),
], ids=["trailing-newline", "one-character", "whitespace", "line-endings"])
def test_any_byte_change_gives_a_new_digest(change):
    files = _two()
    before = compile_policy_set(files).digest
    changed = [files[0], PolicyFile(files[1].name, change(files[1].content))]
    assert changed[1].content != files[1].content
    assert compile_policy_set(changed).digest != before


def test_renaming_a_file_gives_a_new_digest():
    files = _two()
    renamed = [files[0], PolicyFile("c.yaml", files[1].content)]
    assert compile_policy_set(renamed).digest != compile_policy_set(files).digest


# -- the engine --------------------------------------------------------------------

def _set(*rules: str, head: str = HEAD):
    return compile_policy_set([pfile("t.yaml", policy("t", "".join(rules), head=head))])


def _rule(rule_id: str, expression: str, severity: str = "deny", match: str | None = None,
          message_expression: str | None = None, environments: str | None = None) -> str:
    text = f"    - id: {rule_id}\n      description: {rule_id} holds\n      severity: {severity}\n"
    if environments:
        text += f"      environments: {environments}\n"
    if match:
        text += f"      match: [{{name: cond, expression: {match!r}}}]\n"
    text += f"      validations:\n        - expression: {expression!r}\n          message: {rule_id} failed\n"
    text += f"          remediation: fix {rule_id}\n"
    if message_expression:
        text += f"          messageExpression: {message_expression!r}\n"
    return text


def _result(evaluation, rule_id):
    [result] = [r for r in evaluation.results if r.rule == rule_id]
    return result


def test_a_missing_field_fails_closed_naming_the_rule():
    evaluation = evaluate(_set(_rule("t.ok", "true"), _rule("t.missing", "ctx.model.nope == 1")),
                          {"environment": "prod", "model": {}})
    assert evaluation.decision == "deny"
    result = _result(evaluation, "t.missing")
    assert (result.applicable, result.passed, result.remediation) == (True, False, "fix t.missing")
    assert result.message == ("t.missing: t.missing failed (the check could not be evaluated: "
                              "missing field 'nope'; failing closed)")
    assert _result(evaluation, "t.ok").passed is True


def test_a_type_error_fails_closed():
    evaluation = evaluate(_set(_rule("t.types", "ctx.n > 'x'")), {"environment": "prod", "n": 1})
    result = _result(evaluation, "t.types")
    assert evaluation.decision == "deny" and result.passed is False
    assert result.message.startswith("t.types: t.types failed (the check could not be evaluated: ")
    assert result.message.endswith("; failing closed)")


def test_a_non_boolean_result_fails_closed():
    evaluation = evaluate(_set(_rule("t.name", "ctx.name")), {"environment": "prod", "name": "m"})
    assert evaluation.decision == "deny"
    assert _result(evaluation, "t.name").message == "t.name: the check returned str, not a boolean; failing closed"


def test_a_match_condition_that_errors_or_is_not_boolean_fails_closed():
    evaluation = evaluate(_set(_rule("t.err", "true", match="ctx.nothing.here"),
                               _rule("t.str", "true", match="ctx.name")),
                          {"environment": "prod", "name": "m"})
    assert evaluation.decision == "deny"
    assert _result(evaluation, "t.err").message == (
        "t.err: match condition 'cond' could not be evaluated (missing field 'nothing'); failing closed")
    assert _result(evaluation, "t.str").message == (
        "t.str: match condition 'cond' returned str, not a boolean; failing closed")
    assert all(r.applicable and not r.passed for r in evaluation.results)


def test_a_failing_warn_rule_allows():
    evaluation = evaluate(_set(_rule("t.ok", "true"), _rule("t.soft", "false", severity="warn")),
                          {"environment": "prod"})
    assert evaluation.decision == "allow" and evaluation.ok
    result = _result(evaluation, "t.soft")
    assert (result.severity, result.applicable, result.passed, result.message) == (
        "warn", True, False, "t.soft failed")
    assert [r.rule for r in evaluation.failures] == ["t.soft"]


def test_a_failing_deny_rule_denies_and_passing_rules_report_their_description():
    evaluation = evaluate(_set(_rule("t.ok", "true"), _rule("t.hard", "false")), {"environment": "prod"})
    assert evaluation.decision == "deny" and not evaluation
    assert _result(evaluation, "t.ok").message == "t.ok holds"
    assert _result(evaluation, "t.hard").remediation == "fix t.hard"


def test_no_applicable_rule_denies():
    evaluation = evaluate(_set(_rule("t.dev", "true", environments="[dev]"),
                               _rule("t.never", "true", match="ctx.environment == 'nowhere'")),
                          {"environment": "prod"})
    assert evaluation.decision == "deny"
    assert [(r.rule, r.applicable, r.passed) for r in evaluation.results] == [
        ("t.dev", False, True), ("t.never", False, True), (COVERAGE_RULE, True, False)]
    assert _result(evaluation, COVERAGE_RULE).message == (
        "no rule applies to this version in prod: an unchecked deployment is denied")
    assert _result(evaluation, "t.dev").message == "not applicable in prod"
    assert _result(evaluation, "t.never").message == "not applicable: cond"


def test_an_undeclared_environment_denies_before_any_rule():
    evaluation = evaluate(_set(_rule("t.ok", "true")), {"environment": "qa"})
    assert evaluation.decision == "deny"
    assert [(r.rule, r.passed) for r in evaluation.results] == [(ENVIRONMENT_RULE, False)]
    assert evaluation.results[0].message == "environment 'qa' is not declared by the policy set (declared: dev, prod)"
    assert evaluate(_set(_rule("t.ok", "true")), {}).decision == "deny"


def test_message_expressions_and_their_fallback():
    evaluation = evaluate(_set(
        _rule("t.computed", "ctx.n < params.limit", message_expression="'n is ' + string(ctx.n)"),
        _rule("t.broken", "false", message_expression="ctx.nothing.x"),
        head=HEAD.replace("  environments:", "  params: {limit: 3}\n  environments:")),
        {"environment": "prod", "n": 4})
    assert _result(evaluation, "t.computed").message == "n is 4"
    assert _result(evaluation, "t.broken").message == "t.broken failed"


def test_evaluation_is_deterministic_and_uses_the_environment_params():
    head = HEAD.replace("  environments: {prod: {}, dev: {}}",
                        "  params: {limit: 3}\n  environments: {prod: {}, dev: {params: {limit: 5}}}")
    policy_set = _set(_rule("t.limit", "ctx.n <= params.limit"), head=head)
    context = {"environment": "prod", "n": 4}
    assert evaluate(policy_set, context) == evaluate(policy_set, dict(context))
    assert evaluate(policy_set, context).decision == "deny"
    assert evaluate(policy_set, {"environment": "dev", "n": 4}).decision == "allow"
    assert context == {"environment": "prod", "n": 4}  # not modified
