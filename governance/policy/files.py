"""Policy files: YAML data shaped like Kubernetes ValidatingAdmissionPolicy.

```yaml
apiVersion: ml-governance/v1
kind: DeploymentPolicy
metadata: {name: bias, description: ...}
spec:
  params: {min_disparate_impact_ratio: 0.8}          # defaults, one namespace for the set
  environments:                                      # declared environments and their overrides
    dev: {params: {min_disparate_impact_ratio: 0.7}}
    prod: {}
  rules:
    - id: bias.disparate-impact
      description: ...
      severity: deny                                 # deny | warn
      environments: [staging, prod]                  # optional: only these
      match:                                         # optional matchConditions: all must hold
        - {name: regulated-tier, expression: 'ctx.model.risk_tier in ["high", "limited"]'}
      validations:                                   # all must hold
        - expression: '...'
          message: what is wrong
          messageExpression: '"..." + ...'           # optional, computed message
          remediation: how to fix it
```

Expressions are CEL (``cel-expr-python``, through ``cel.py``; see
docs/policy.md for why), parsed and type-checked when the set is loaded. Any
problem — YAML syntax, duplicate keys, unknown or missing fields, duplicate
rule ids, CEL syntax or type errors — rejects the whole set with file, rule and line:column,
and the previous set stays active. The set's digest is SHA-256 over the
canonical list of (file name, SHA-256 of the exact bytes), so the same files
always give the same digest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import marshmallow as ma
import yaml
from marshmallow import validate

from ledger.canonical import canonical_bytes

from ..errors import InvalidRequestError
from .cel import CelCompileError, compile_expression
from .yaml_positions import Marked, PositionLoader, mark_of, position_in_value

API_VERSION = "ml-governance/v1"
KIND = "DeploymentPolicy"
RULE_ID = r"^[a-z][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+\Z"
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+)")


class PolicyLoadError(InvalidRequestError):
    """The policy files cannot be loaded; ``problems`` says where and why."""

    location = None  # the problems are about files, not the request body

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__(f"invalid policy set: {_describe(problems[0])}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                         errors={"policies": [_describe(p) for p in problems]})


def _describe(problem: dict) -> str:
    where = ":".join(str(problem[k]) for k in ("file", "line", "column") if problem.get(k) is not None)
    where += f" rule {problem['rule']}" if problem.get("rule") else ""
    return f"{where.strip()}: {problem['message']}" if where.strip() else problem["message"]


# -- schema ---------------------------------------------------------------------

class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class MatchIn(_Strict):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=128))
    expression = ma.fields.String(required=True, validate=validate.Length(min=1, max=10_000))


class ValidationIn(_Strict):
    expression = ma.fields.String(required=True, validate=validate.Length(min=1, max=10_000))
    message = ma.fields.String(required=True, validate=validate.Length(min=1, max=2_000))
    messageExpression = ma.fields.String(validate=validate.Length(min=1, max=10_000))
    remediation = ma.fields.String(validate=validate.Length(min=1, max=2_000))


class RuleIn(_Strict):
    id = ma.fields.String(required=True, validate=validate.Regexp(RULE_ID, error="must look like area.rule-name"))
    description = ma.fields.String(required=True, validate=validate.Length(min=1, max=2_000))
    severity = ma.fields.String(load_default="deny", validate=validate.OneOf(["deny", "warn"]))
    environments = ma.fields.List(ma.fields.String(validate=validate.Length(min=1, max=64)))
    match = ma.fields.List(ma.fields.Nested(MatchIn), load_default=list)
    validations = ma.fields.List(ma.fields.Nested(ValidationIn), required=True,
                                 validate=validate.Length(min=1))


class EnvironmentIn(_Strict):
    params = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)


class SpecIn(_Strict):
    params = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)
    environments = ma.fields.Dict(keys=ma.fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_-]{0,63}\Z")),
                                  values=ma.fields.Nested(EnvironmentIn, allow_none=True), load_default=dict)
    rules = ma.fields.List(ma.fields.Nested(RuleIn), load_default=list)


class MetadataIn(_Strict):
    name = ma.fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9-]{0,63}\Z"))
    description = ma.fields.String(load_default="")


class PolicyFileIn(_Strict):
    apiVersion = ma.fields.String(required=True, validate=validate.Equal(API_VERSION))
    kind = ma.fields.String(required=True, validate=validate.Equal(KIND))
    metadata = ma.fields.Nested(MetadataIn, required=True)
    spec = ma.fields.Nested(SpecIn, required=True)


# -- compiled set -----------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One CEL validation of a rule."""

    expression: str
    message: str
    message_expression: str | None
    remediation: str | None
    program: object = field(repr=False, compare=False)
    message_program: object = field(repr=False, compare=False)


@dataclass(frozen=True)
class Rule:
    """A compiled rule."""

    id: str
    policy: str
    description: str
    severity: str
    environments: tuple[str, ...] | None
    match: tuple[tuple[str, str, object], ...]
    validations: tuple[Check, ...]


@dataclass(frozen=True)
class PolicyFile:
    """One file of the set, exactly as read."""

    name: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class PolicySet:
    """A loaded, compiled, immutable policy set."""

    digest: str
    files: tuple[PolicyFile, ...]
    rules: tuple[Rule, ...]
    params: dict
    environments: dict  # name -> param overrides
    # environment -> the rules' conditions as one CEL program, or None if it did
    # not compile (filled by engine.py on first use; not part of the set)
    combined: dict = field(default_factory=dict, compare=False, repr=False)

    def params_for(self, environment: str) -> dict:
        """The parameters in force for ``environment``."""
        return {**self.params, **(self.environments.get(environment) or {})}

    def summary(self) -> dict:
        """Rule ids per file, for diffs and the API."""
        return {"files": {f.name: f.sha256 for f in self.files},
                "rules": {r.id: _rule_fingerprint(r) for r in self.rules}}


def _rule_fingerprint(rule: Rule) -> str:
    data = {"severity": rule.severity, "environments": list(rule.environments or []),
            "match": [[n, e] for n, e, _ in rule.match],
            "validations": [[c.expression, c.message, c.message_expression, c.remediation]
                            for c in rule.validations]}
    return hashlib.sha256(canonical_bytes(data)).hexdigest()


def set_digest(files) -> str:
    """SHA-256 over the canonical list of (name, SHA-256 of bytes)."""
    listing = [[f.name, f.sha256] for f in sorted(files, key=lambda f: f.name)]
    return hashlib.sha256(canonical_bytes(listing)).hexdigest()


def read_policy_dir(directory: str | Path) -> list[PolicyFile]:
    """Read every ``*.yaml``/``*.yml`` file directly in ``directory`` (not tests/)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyLoadError([{"file": str(directory), "message": "policy directory does not exist"}])
    return [PolicyFile(p.name, p.read_bytes()) for p in sorted(directory.iterdir())
            if p.is_file() and p.suffix in (".yaml", ".yml")]


def compile_policy_set(files: list[PolicyFile]) -> PolicySet:
    """Parse, validate and compile a policy set, or raise PolicyLoadError listing every problem."""
    problems: list[dict] = []
    rules: list[Rule] = []
    params: dict = {}
    environments: dict = {}
    param_origin: dict = {}
    seen_rules: dict = {}
    raw_rules_by_id: dict = {}
    seen_names: dict = {}
    if not files:
        problems.append({"file": None, "message": "the policy set has no files: it would deny everything"})
    for policy_file in files:
        try:
            text = policy_file.content.decode("utf-8")
            raw = yaml.load(text, Loader=PositionLoader)  # noqa: S506 (a SafeLoader subclass)
        except UnicodeDecodeError as e:
            problems.append({"file": policy_file.name, "message": f"not UTF-8: {e.reason}"})
            continue
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problems.append({"file": policy_file.name, "line": mark.line + 1 if mark else None,
                             "column": mark.column + 1 if mark else None,
                             "message": f"YAML: {getattr(e, 'problem', None) or e}"})
            continue
        if not isinstance(raw, dict):
            problems.append({"file": policy_file.name, "line": 1, "column": 1,
                             "message": "a policy file must be a mapping"})
            continue
        try:
            data = PolicyFileIn().load(raw)
        except ma.ValidationError as e:
            problems.extend(_schema_problems(policy_file.name, raw, e.messages))
            continue
        name = data["metadata"]["name"]
        if name in seen_names:
            problems.append({"file": policy_file.name, "message": f"policy name {name!r} is also used by {seen_names[name]}"})
        seen_names[name] = policy_file.name
        spec = data["spec"]
        raw_params = raw["spec"].get("params")
        for key, value in spec["params"].items():
            if key in params and params[key] != value:
                line, column = mark_of(raw_params, key)
                problems.append({"file": policy_file.name, "line": line, "column": column, "message":
                                 f"param {key!r} is also set, differently, by {param_origin[key]}"})
            params[key] = value
            param_origin[key] = policy_file.name
        for env, body in spec["environments"].items():
            overrides = environments.setdefault(env, {})
            for key, value in ((body or {}).get("params") or {}).items():
                if key in overrides and overrides[key] != value:
                    problems.append({"file": policy_file.name, "message":
                                     f"environment {env} param {key!r} is set twice, differently"})
                overrides[key] = value
        raw_rules = raw["spec"].get("rules") or []
        for index, rule in enumerate(spec["rules"]):
            raw_rule = raw_rules[index]
            if rule["id"] in seen_rules:
                line, col = mark_of(raw_rule, "id")
                problems.append({"file": policy_file.name, "rule": rule["id"], "line": line, "column": col,
                                 "message": f"rule id is also used in {seen_rules[rule['id']]}"})
                continue
            seen_rules[rule["id"]] = policy_file.name
            raw_rules_by_id[rule["id"]] = raw_rule
            compiled = _compile_rule(policy_file.name, name, rule, raw_rule, problems, text)
            if compiled:
                rules.append(compiled)
    declared = set(environments)
    for rule in rules:
        for env in rule.environments or ():
            if env not in declared:
                line, column = mark_of(raw_rules_by_id.get(rule.id), "environments")
                problems.append({"file": seen_rules[rule.id], "rule": rule.id, "line": line,
                                 "column": column, "message":
                                 f"environment {env!r} is not declared in any spec.environments"})
    if files and not rules and not problems:
        problems.append({"file": None, "message": "the policy set has no rules: it would deny everything"})
    if problems:
        raise PolicyLoadError(problems)
    return PolicySet(set_digest(files), tuple(sorted(files, key=lambda f: f.name)), tuple(rules),
                     _plain(params), _plain(environments))


def _plain(value):
    """``value`` without the position-keeping mappings: CEL reads plain dicts and lists only."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


_CEL_DETAIL = re.compile(r"ERROR: <input>:\d+:\d+: (.*)")


def _compile(expression, file, rule_id, raw, key, problems, source, index=None):
    try:
        return compile_expression(expression)
    except CelCompileError as e:
        text = str(e)
        line, column = mark_of(raw, key)
        position = _CEL_POSITION.search(text)
        node = raw.nodes.get(key) if isinstance(raw, Marked) else None
        if position and node is not None:
            # the CEL position is inside the expression: point into the file
            cel_line, cel_col = int(position.group(1)), int(position.group(2))
            expression_lines = expression.split("\n")
            offset = sum(len(x) + 1 for x in expression_lines[:cel_line - 1]) + cel_col - 1
            line, column = position_in_value(source, node, offset)
        detail = _CEL_DETAIL.search(text)
        message = f"<input>:{position.group(1)}:{position.group(2)}: {detail.group(1)}" if (
            detail and position) else text.split("\n")[0]
        problems.append({"file": file, "rule": rule_id, "line": line, "column": column,
                         "message": f"CEL {key}{'' if index is None else f'[{index}]'}: {message}"})
        return None


def _compile_rule(file, policy, rule, raw_rule, problems, source) -> Rule | None:
    failed = len(problems)
    match = []
    for i, (condition, raw) in enumerate(zip(rule["match"], raw_rule.get("match") or [])):
        program = _compile(condition["expression"], file, rule["id"], raw, "expression", problems,
                           source, i)
        match.append((condition["name"], condition["expression"], program))
    checks = []
    for i, (check, raw) in enumerate(zip(rule["validations"], raw_rule.get("validations") or [])):
        program = _compile(check["expression"], file, rule["id"], raw, "expression", problems,
                           source, i)
        message_program = None
        if check.get("messageExpression"):
            message_program = _compile(check["messageExpression"], file, rule["id"], raw,
                                       "messageExpression", problems, source, i)
        checks.append(Check(check["expression"], check["message"], check.get("messageExpression"),
                            check.get("remediation"), program, message_program))
    if len(problems) > failed:
        return None
    environments = tuple(rule["environments"]) if rule.get("environments") else None
    return Rule(rule["id"], policy, rule["description"], rule["severity"], environments,
                tuple(match), tuple(checks))


def _schema_problems(file, raw, messages, path=()) -> list[dict]:
    problems = []
    for key, value in messages.items():
        here = path + (key,)
        if isinstance(value, dict):
            child = _walk(raw, here)
            problems.extend(_schema_problems(file, raw, value, here) if child is not None
                            else [{"file": file, "message": f"{'.'.join(map(str, here))}: {value}"}])
            continue
        parent = _walk(raw, path)
        line, column = (mark_of(parent, key) if isinstance(parent, Marked) and key in parent
                        else mark_of(parent))  # a missing field: point at the mapping that lacks it
        rule = _rule_id_at(raw, here)
        problems.append({"file": file, "rule": rule, "line": line, "column": column,
                         "message": f"{'.'.join(map(str, here))}: {'; '.join(map(str, value))}"})
    return problems


def _walk(raw, path):
    node = raw
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return None
    return node


def _rule_id_at(raw, path) -> str | None:
    if len(path) >= 3 and path[0] == "spec" and path[1] == "rules" and isinstance(path[2], int):
        rule = _walk(raw, path[:3])
        if isinstance(rule, dict):
            return rule.get("id")
    return None
