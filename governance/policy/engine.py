"""Evaluate a policy set on one context: allow or deny, one result per rule.

Pure: the context (``ctx``) and the environment's ``params`` go in, results
come out; the same inputs give the same results, which is what makes a
recorded decision replayable. Every rule runs on one CEL activation holding
the context and the parameters (``cel.py``).

Failure is closed: an expression that errors (a missing field, a type
mismatch) or returns something other than a boolean fails its rule, with the
rule id and the error in the message. A deny-severity failure denies; a warn
failure is reported and allows. If no rule applies, the decision is deny: an
unchecked deployment never passes by accident, and neither does an
environment no policy declares.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cel import CelCompileError, CelEvaluationError, activation, compile_expression
from .files import PolicySet, Rule

ENVIRONMENT_RULE = "policy-set.environment"
COVERAGE_RULE = "policy-set.coverage"


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule."""

    rule: str
    policy: str
    severity: str
    applicable: bool
    passed: bool
    message: str
    remediation: str | None = None

    def as_json(self) -> dict:
        return {"rule": self.rule, "policy": self.policy, "severity": self.severity,
                "applicable": self.applicable, "passed": self.passed, "message": self.message,
                "remediation": self.remediation}


@dataclass(frozen=True)
class Evaluation:
    """A decision and its reasons."""

    decision: str
    results: tuple[RuleResult, ...]

    @property
    def ok(self) -> bool:
        return self.decision == "allow"

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def results_json(self) -> list[dict]:
        return [r.as_json() for r in self.results]


def evaluate(policy_set: PolicySet, context: dict) -> Evaluation:
    """Evaluate every rule of ``policy_set`` on ``context`` (which names its environment)."""
    environment = context.get("environment")
    if environment not in policy_set.environments:
        declared = ", ".join(sorted(policy_set.environments))
        return Evaluation("deny", (RuleResult(
            ENVIRONMENT_RULE, "policy-set", "deny", True, False,
            f"environment {environment!r} is not declared by the policy set (declared: {declared})",
            "deploy to a declared environment, or declare it under spec.environments of a policy"),))
    env = activation(context, policy_set.params_for(environment))
    results = _all_pass(policy_set, environment, env)
    if results is None:  # something failed, errored or is not a boolean: rule by rule, with reasons
        results = [_evaluate_rule(rule, environment, env) for rule in policy_set.rules]
    if not any(r.applicable for r in results):
        results.append(RuleResult(COVERAGE_RULE, "policy-set", "deny", True, False,
                                  f"no rule applies to this version in {environment}: an unchecked "
                                  "deployment is denied", "add a rule that applies to it"))
    denied = any(r.applicable and not r.passed and r.severity == "deny" for r in results)
    return Evaluation("deny" if denied else "allow", tuple(results))


def _combined_source(rules) -> str | None:
    """Every rule's match conditions and validations as one CEL expression.

    Per rule: ``m1 ? (m2 ? [v1, v2] : dyn(1)) : dyn(0)``, the list of the
    validations' values if every condition holds, else the index of the first
    that does not. Each expression is put on lines of its own, so that a
    ``//`` comment in it ends where it did.
    """
    parts = []
    for rule in rules:
        expression = "[" + ", ".join(f"(\n{check.expression}\n)" for check in rule.validations) + "]"
        for index in reversed(range(len(rule.match))):
            condition = rule.match[index][1]
            expression = f"((\n{condition}\n) ? {expression} : dyn({index}))"
        parts.append(expression)
    return "[" + ", ".join(parts) + "]" if parts else None


def _combined_program(policy_set: PolicySet, environment: str):
    try:
        return policy_set.combined[environment]
    except KeyError:
        pass
    rules = [rule for rule in policy_set.rules if _applies_in(rule, environment)]
    source = _combined_source(rules)
    try:
        program = compile_expression(source) if source else None
    except CelCompileError:  # e.g. a type the checker cannot unify: the rule-by-rule path serves
        program = None
    policy_set.combined[environment] = program
    return program


def _all_pass(policy_set: PolicySet, environment: str, env) -> list[RuleResult] | None:
    """The results when no rule fails, from one evaluation of the combined program.

    None whenever anything is not plainly true (a failed check, an error, a
    value that is not a boolean): the rule-by-rule path then says exactly what
    and why. Otherwise the results are those of :func:`_evaluate_rule`, whose
    expressions, in the same order, are the program's.
    """
    program = _combined_program(policy_set, environment)
    if program is None:
        return None
    try:
        outcomes = program.execute_plain(env)
    except Exception:  # noqa: BLE001 - rule by rule reports it, failing closed
        return None
    outcomes = iter(outcomes)
    results = []
    for rule in policy_set.rules:
        if not _applies_in(rule, environment):
            results.append(_not_applicable(rule, f" in {environment}"))
            continue
        outcome = next(outcomes, None)
        if type(outcome) is int and 0 <= outcome < len(rule.match):
            results.append(_not_applicable(rule, f": {rule.match[outcome][0]}"))
        elif type(outcome) is list and len(outcome) == len(rule.validations) and all(
                value is True for value in outcome):
            results.append(_passed(rule))
        else:
            return None
    return results


def _applies_in(rule: Rule, environment: str) -> bool:
    return not rule.environments or environment in rule.environments


def _not_applicable(rule: Rule, why: str) -> RuleResult:
    return RuleResult(rule.id, rule.policy, rule.severity, False, True, f"not applicable{why}")


def _passed(rule: Rule) -> RuleResult:
    return RuleResult(rule.id, rule.policy, rule.severity, True, True, rule.description)


def _evaluate_rule(rule: Rule, environment: str, env) -> RuleResult:
    def result(applicable, passed, message, remediation=None):
        return RuleResult(rule.id, rule.policy, rule.severity, applicable, passed, message, remediation)

    if not _applies_in(rule, environment):
        return _not_applicable(rule, f" in {environment}")
    for name, _expression, program in rule.match:
        try:
            matched = program.execute(env)
        except Exception as e:  # noqa: BLE001 - any CEL failure fails closed
            return result(True, False, f"{rule.id}: match condition {name!r} could not be evaluated "
                          f"({_error(e)}); failing closed")
        if matched is not True:
            if matched is False:
                return _not_applicable(rule, f": {name}")
            return result(True, False, f"{rule.id}: match condition {name!r} returned "
                          f"{type(matched).__name__}, not a boolean; failing closed")
    for check in rule.validations:
        try:
            passed = check.program.execute(env)
        except Exception as e:  # noqa: BLE001 - any CEL failure fails closed
            return result(True, False, f"{rule.id}: {check.message} (the check could not be "
                          f"evaluated: {_error(e)}; failing closed)", check.remediation)
        if passed is not True:
            if passed is not False:
                return result(True, False, f"{rule.id}: the check returned {type(passed).__name__}, "
                              "not a boolean; failing closed", check.remediation)
            return result(True, False, _message(check, env), check.remediation)
    return _passed(rule)


def _message(check, env) -> str:
    if check.message_program is not None:
        try:
            text = check.message_program.execute(env)
            if isinstance(text, str) and text:
                return text
        except Exception:  # noqa: BLE001 - fall back to the static message
            pass
    return check.message


def _error(error: Exception) -> str:
    text = str(error).split("\n")[0][:300]
    if isinstance(error, CelEvaluationError):
        return text
    return f"{type(error).__name__}: {text}"  # not expected from the library; still fails closed
