"""Canonical JSON (RFC 8785, JCS) for ledger entries.

The ``rfc8785`` package is the reference encoder. It is pure Python and is the
slowest step of an append, so :func:`canonical_bytes` first tries a fast path:
a strict type walk that admits only inputs on which ``orjson`` (sorted keys,
53-bit integers) is byte-identical to the reference, then ``orjson``. Anything
the walk does not admit goes to the reference, so the output is always the
reference's output. ``tests/test_canonical.py`` proves the two agree with
property tests over generated values, including the excluded corners.

Where the fast path steps aside, and why:
- floats from 1e-6 up to (not including) 1e-5 in magnitude, the one decade
  where orjson already writes exponent form and JCS does not, and whole
  numbers beyond 2**53 (whole floats below that are written as integers
  first: JCS writes ``1.0`` as ``1``, orjson ``1.0``);
- object keys with characters outside the Basic Multilingual Plane (JCS sorts
  keys by UTF-16 code units, orjson by code points);
- any type other than exact dict/list/str/int/float/bool/None (subclasses,
  tuples, enums: the reference decides).

The walk runs in C (``ledger/_speedups.c``, built by ``make setup``): in
Python it was a sixth of a batched append. ``_fast_path_admits_py`` is the
same walk in Python, the specification the property tests hold the C walk
to, and the fallback when the extension is not built.

:func:`loads_strict` is the matching parser for JSON text from outside: it
rejects duplicate object keys, NaN/Infinity, lone surrogates and integers
outside the interoperable range, so that what is hashed is what was sent.
"""

from __future__ import annotations

import json
import math

import orjson
import rfc8785

from .errors import CanonicalizationError

MAX_SAFE_INTEGER = 2**53 - 1
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
# The one decade where orjson writes exponent form ("1e-6") and JCS does not
# ("0.000001"); measured over random bit patterns of every magnitude.
_ORJSON_DIFFERS_FROM, _ORJSON_DIFFERS_TO = 1e-6, 1e-5
_BMP_LIMIT = "\U00010000"
_MAX_DEPTH = 64
_INFINITIES = (float("inf"), float("-inf"))


def canonical_bytes(value) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON-compatible value.

    Raises:
        CanonicalizationError: the value has no canonical form (NaN, infinity,
            an integer beyond ±(2**53-1), a lone surrogate, a non-string key,
            an unsupported type).
    """
    fast = _fast_bytes(value)
    return fast if fast is not None else reference_canonical_bytes(value)


def _fast_bytes(value) -> bytes | None:
    """orjson's bytes where the walk proves them the reference's, else None."""
    verdict = _fast_path_admits(value)
    if verdict:
        try:
            return orjson.dumps(_whole_floats_as_ints(value) if verdict == _NORMALISE else value,
                                option=_ORJSON_OPTIONS)
        except (TypeError, orjson.JSONEncodeError):
            pass  # e.g. lone surrogates: let the reference give its message
    return None


def reference_canonical_bytes(value) -> bytes:
    """Return the canonical bytes as the ``rfc8785`` reference computes them."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as e:
        raise CanonicalizationError(str(e)) from e
    except RecursionError as e:
        raise CanonicalizationError("value is nested too deeply") from e
    except UnicodeError as e:  # rfc8785 sorts keys by UTF-16: a lone surrogate fails there
        raise CanonicalizationError("input contains a lone surrogate") from e


def storable_canonical_bytes(value) -> bytes:
    """Like :func:`canonical_bytes`, for values the ledger stores and reads back.

    Also refuses whole-number floats from 2**53 up to 1e21 (``1e20``): JCS
    writes them as plain digits, which read back as integers outside the
    interoperable range and no longer have a canonical form. (From 1e21 on JCS
    uses exponent form, which reads back as the same float.) Send such numbers
    as strings.

    Raises:
        CanonicalizationError: as :func:`canonical_bytes`, or for such a float.
    """
    fast = _fast_bytes(value)
    if fast is not None:
        return fast
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float and item.is_integer() and MAX_SAFE_INTEGER < abs(item) < 1e21:
            raise CanonicalizationError(
                f"number {item!r} is a whole number beyond ±(2**53-1) written as digits; "
                "send it as a string")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return reference_canonical_bytes(value)


def canonical_string(value: str) -> bytes:
    """Return the canonical bytes of one JSON string (quotes included)."""
    if type(value) is not str:
        raise CanonicalizationError(f"expected a string, got {type(value).__name__}")
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise CanonicalizationError("string contains a lone surrogate") from e


_NORMALISE = 2  # admitted once whole-number floats are written as integers


def _fast_path_admits_py(value, depth: int = 0) -> int:
    """Truthy if orjson is known to produce the reference bytes for *value*.

    Returns ``_NORMALISE`` when the value holds whole-number floats below
    2**53 in magnitude: JCS writes ``1.0`` as ``1``, exactly as orjson writes
    the integer 1, so replacing them by integers first gives the same bytes.
    Recursive (at most ``_MAX_DEPTH`` deep), with the common scalars checked
    inline: this walk is on the hot path of every append.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if kind is float:
        if not math.isfinite(value):
            return False
        if value.is_integer():
            return _NORMALISE if abs(value) <= MAX_SAFE_INTEGER else False
        return not _ORJSON_DIFFERS_FROM <= abs(value) < _ORJSON_DIFFERS_TO
    if depth >= _MAX_DEPTH:
        return False
    if kind is dict:
        for key in value:
            if type(key) is not str or not key.isascii() and max(key, default="") >= _BMP_LIMIT:
                return False
        children = value.values()
    elif kind is list:
        children = value
    else:
        return False
    verdict = True
    for child in children:
        child_kind = type(child)
        if child_kind is str or child_kind is bool or child is None:
            continue
        if child_kind is int:
            if -MAX_SAFE_INTEGER <= child <= MAX_SAFE_INTEGER:
                continue
            return False
        if child_kind is float and not child.is_integer():  # inline: no call per float
            if child != child or child in _INFINITIES or (
                    _ORJSON_DIFFERS_FROM <= abs(child) < _ORJSON_DIFFERS_TO):
                return False
            continue
        found = _fast_path_admits_py(child, depth + 1)
        if not found:
            return False
        if found == _NORMALISE:
            verdict = _NORMALISE
    return verdict


try:  # the same walk in C; see the module docstring
    from ._speedups import admits as _fast_path_admits
except ImportError:  # not built (no compiler): same verdicts, slower
    _fast_path_admits = _fast_path_admits_py
NATIVE_WALK = _fast_path_admits is not _fast_path_admits_py


def _whole_floats_as_ints(value):
    """A copy of *value* with whole-number floats replaced by ints (for the fast path)."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is dict:
        return {key: _whole_floats_as_ints(child) for key, child in value.items()}
    if kind is list:
        return [_whole_floats_as_ints(child) for child in value]
    return value


def _reject_constant(name: str):
    raise CanonicalizationError(f"{name} is not allowed in JSON")


def _reject_duplicates(pairs):
    obj = {}
    for key, val in pairs:
        if key in obj:
            raise CanonicalizationError(f"duplicate object key {key!r}")
        obj[key] = val
    return obj


def loads_strict(text, max_depth: int = _MAX_DEPTH):
    """Parse JSON text strictly and return the Python value.

    Rejects what has no single canonical meaning: duplicate object keys,
    NaN/Infinity, lone surrogates (escaped or raw), integers beyond
    ±(2**53-1) and nesting deeper than ``max_depth``. The result always has
    canonical bytes.

    Raises:
        CanonicalizationError: the text is not acceptable JSON.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CanonicalizationError(f"JSON text is not valid UTF-8: {e.reason}") from e
    try:
        value = json.loads(
            text,
            parse_float=_parse_finite_float,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_safe_int,
        )
    except json.JSONDecodeError as e:
        raise CanonicalizationError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except RecursionError as e:
        raise CanonicalizationError("JSON is nested too deeply") from e
    if _depth(value) > max_depth:
        raise CanonicalizationError(f"JSON is nested deeper than {max_depth} levels")
    # Catches lone surrogates (json accepts "\ud800"), 1e400 (infinity), 1e20
    # and anything else the ledger could not store and read back.
    storable_canonical_bytes(value)
    return value


def _depth(value) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def _parse_finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise CanonicalizationError(f"number {text[:40]} is too large for a JSON number (IEEE 754 double)")
    return number


def _parse_safe_int(digits: str) -> int:
    if len(digits) > 17:
        raise CanonicalizationError(f"integer {digits[:20]}... is outside ±(2**53-1)")
    number = int(digits)
    if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        raise CanonicalizationError(f"integer {digits} is outside ±(2**53-1); send it as a string")
    return number
