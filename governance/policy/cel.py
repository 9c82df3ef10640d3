"""The CEL runtime of the policy gate: compile once, evaluate on one activation.

CEL is evaluated by ``cel-expr-python``, the CEL project's own Python binding
of its C++ implementation (docs/policy.md says why this one). Everything CEL
sees is declared here: two variables, ``ctx`` (the documented context) and
``params`` (the environment's parameters), both ``dyn``, and one function,
``join(list, separator)``, for messages.

Expressions are type-checked when compiled, so a literal type mismatch
(``"a" + 1``) is refused when the policy is loaded, with its position; values
from the context are ``dyn`` and checked when evaluated. The binding reads
the context's Python values lazily (nothing is converted up front), which is
what makes an evaluation cost microseconds rather than the hundreds the whole
context's conversion cost with the Rust binding.

Evaluation errors come back from the library as CEL error values, not
exceptions; :class:`Program.execute` turns them into :class:`CelEvaluationError`
with a stable message (``missing field 'x'`` for an absent map key), so the
engine can fail closed with the rule id and the reason.
"""

from __future__ import annotations

import re

from cel_expr_python import cel

_DYN = cel.Type("dyn")
_ERROR = cel.Type.ERROR
_MISSING_KEY = re.compile(r'^NOT_FOUND: Key not found in map : "(.*)"$', re.S)
_STATUS_PREFIX = re.compile(r"^[A-Z_]+: ")


class CelCompileError(ValueError):
    """An expression does not parse or type-check; the text says ``<input>:line:column``."""


class CelEvaluationError(Exception):
    """An expression failed on this context (missing field, no matching overload, ...)."""


def _join(items, separator):
    return separator.join(str(item) for item in items)


_JOIN = cel.FunctionDecl("join", [cel.Overload(
    "join_list_string", cel.Type("string"), [cel.Type.List(_DYN), cel.Type("string")], impl=_join)])
_ENV = cel.NewEnv(variables={"ctx": _DYN, "params": _DYN}, functions=[_JOIN])


class Program:
    """A compiled expression."""

    __slots__ = ("source", "_expression")

    def __init__(self, source: str):
        self.source = source
        try:
            self._expression = _ENV.compile(source)
        except RuntimeError as e:  # the binding reports parse and check errors as RuntimeError
            raise CelCompileError(_status_text(str(e))) from None

    def execute(self, activation):
        """Evaluate on ``activation`` (see :func:`activation`) and return a Python value."""
        value = self._expression.eval(activation)
        result = value.value()
        # an error value reads back as its text: only a str result can be one
        if type(result) is str and value.type() == _ERROR:
            raise CelEvaluationError(_error_text(result))
        return result

    def execute_plain(self, activation):
        """Like :meth:`execute`, with lists and maps converted all the way down to Python values."""
        value = self._expression.eval(activation)
        if value.type() == _ERROR:
            raise CelEvaluationError(_error_text(value.value()))
        return value.plain_value()


def compile_expression(source: str) -> Program:
    """Compile ``source``, or raise :class:`CelCompileError`."""
    return Program(source)


def activation(context: dict, params: dict):
    """The variables of one evaluation; the values are read, never copied up front."""
    return _ENV.Activation({"ctx": context, "params": params})


def _status_text(text: str) -> str:
    return _STATUS_PREFIX.sub("", text, count=1)


def _error_text(text: str) -> str:
    missing = _MISSING_KEY.match(text)
    if missing:
        return f"missing field {missing.group(1)!r}"
    return _status_text(text)
