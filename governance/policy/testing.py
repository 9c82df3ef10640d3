"""``flask policy test``: run the cases in ``policies/tests/`` (like ``opa test``).

A case file holds named base contexts and cases; each case takes a base,
applies a JSON merge patch (RFC 7386) to it, evaluates the policy set and
compares with what it expects:

```yaml
bases:
  compliant-high-risk: {now: ..., environment: prod, model: {...}, ...}
cases:
  - name: DPIA expired
    base: compliant-high-risk
    patch: {evidence: [...]}          # merge patch; lists are replaced whole
    expect:
      decision: deny
      failed: [privacy.dpia-approved] # exactly the applicable rules that fail
      messages: {privacy.dpia-approved: "expired on"}   # substrings
```
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .engine import evaluate
from .files import PolicySet


@dataclass
class CaseResult:
    """The outcome of one policy test case."""

    file: str
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def merge_patch(target, patch):
    """Apply an RFC 7386 JSON merge patch (null deletes, objects merge, the rest replaces)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def run_cases(policy_set: PolicySet, directory: str | Path) -> list[CaseResult]:
    """Run every case of every ``*.yaml`` file in ``directory``."""
    results = []
    for path in sorted(Path(directory).glob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        bases = data.get("bases") or {}
        for index, case in enumerate(data.get("cases") or []):
            name = case.get("name") or f"case {index}"
            result = CaseResult(path.name, name)
            results.append(result)
            base = bases.get(case.get("base")) if case.get("base") else {}
            if case.get("base") and base is None:
                result.problems.append(f"unknown base {case['base']!r}")
                continue
            context = merge_patch(base, case.get("patch") or {})
            if case.get("context"):
                context = merge_patch(context, case["context"])
            if "environment" in case:
                context["environment"] = case["environment"]
            _compare(result, evaluate(policy_set, context), case.get("expect") or {})
    return results


def _compare(result: CaseResult, evaluation, expect: dict) -> None:
    if "decision" in expect and evaluation.decision != expect["decision"]:
        result.problems.append(f"decision {evaluation.decision}, expected {expect['decision']}")
    failed = sorted(r.rule for r in evaluation.results if r.applicable and not r.passed)
    if "failed" in expect and failed != sorted(expect["failed"]):
        result.problems.append(f"failed rules {failed}, expected {sorted(expect['failed'])}")
    by_rule = {r.rule: r for r in evaluation.results}
    for rule, text in (expect.get("messages") or {}).items():
        found = by_rule.get(rule)
        if found is None:
            result.problems.append(f"no result for rule {rule}")
        elif text not in found.message:
            result.problems.append(f"{rule} message {found.message!r} lacks {text!r}")
    for rule in expect.get("not_applicable") or []:
        found = by_rule.get(rule)
        if found is None or found.applicable:
            result.problems.append(f"rule {rule} was expected not to apply")
