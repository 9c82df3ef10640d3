"""RFC 8785 canonical JSON, the strict parser, and the entry envelope.

Known answers come from the text of RFC 8785 (``tests/vectors/rfc8785``); the
property tests compare ``ledger.canonical.canonical_bytes`` (orjson fast path
plus fallback) with the ``rfc8785`` reference package on generated values,
with strategies aimed at the corners where the fast path steps aside.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger import canonical
from ledger.canonical import (
    MAX_SAFE_INTEGER,
    _NORMALISE,
    _fast_path_admits,
    _fast_path_admits_py,
    canonical_bytes,
    canonical_string,
    storable_canonical_bytes,
    loads_strict,
    reference_canonical_bytes,
)
from ledger.entry import (
    KIND_PATTERN,
    MAX_ACTOR,
    MAX_KIND,
    MAX_SUBJECT,
    TS_FORMAT,
    TS_LENGTH,
    TS_PATTERN,
    EnvelopeFields,
    encode_entry,
    parse_timestamp,
    prepare_entry,
    read_envelope,
    utc_timestamp,
)
from ledger.errors import CanonicalizationError, EntryValidationError

VECTORS = Path(__file__).parent / "vectors" / "rfc8785"


def from_bits(hex16: str) -> float:
    assert re.fullmatch(r"[0-9a-f]{16}", hex16), hex16
    return struct.unpack(">d", bytes.fromhex(hex16))[0]


def bits_of(value: float) -> str:
    return struct.pack(">d", value).hex()


def decode_tagged(value):
    """Turn the vector files' {"$ieee754": hex} numbers into floats."""
    if isinstance(value, dict):
        if set(value) == {"$ieee754"}:
            return from_bits(value["$ieee754"])
        return {key: decode_tagged(child) for key, child in value.items()}
    if isinstance(value, list):
        return [decode_tagged(child) for child in value]
    return value


def same_value(a, b) -> bool:
    """Structural equality with floats compared bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return bits_of(a) == bits_of(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


# ---------------------------------------------------------------------------
# RFC 8785 known answers
# ---------------------------------------------------------------------------

NUMBER_CASES = json.loads((VECTORS / "numbers.json").read_text())["cases"]
OBJECT_CASES = json.loads((VECTORS / "objects.json").read_text())["cases"]


def test_vector_files_are_complete():
    assert len(NUMBER_CASES) == 26  # every row of Appendix B, Table 1
    assert sum(case["json"] is None for case in NUMBER_CASES) == 2
    assert [case["name"] for case in OBJECT_CASES] == [
        "section-3.2.2-sample",
        "section-3.2.3-sorting",
        "section-3.2.3-plain-english-order",
        "appendix-e-subtypes",
    ]


@pytest.mark.parametrize("case", NUMBER_CASES, ids=[c["ieee754"] for c in NUMBER_CASES])
def test_rfc8785_number_vectors(case):
    value = from_bits(case["ieee754"])
    if case["json"] is None:
        assert not math.isfinite(value)
        for wrapped in (value, [value], {"n": value}):
            with pytest.raises(CanonicalizationError, match=r"(nan|inf) is not representable"):
                canonical_bytes(wrapped)
        return
    expected = case["json"].encode("ascii")
    assert canonical_bytes(value) == expected
    # Inside containers too (the fast path looks at every member).
    assert canonical_bytes([value, 0.5]) == b"[" + expected + b",0.5]"
    assert canonical_bytes({"n": value, "m": "x"}) == b'{"m":"x","n":' + expected + b"}"


@pytest.mark.parametrize("case", OBJECT_CASES, ids=[c["name"] for c in OBJECT_CASES])
def test_rfc8785_object_vectors(case):
    value = decode_tagged(case["input"])
    # The RFC's own JSON text parses to exactly the transcribed value.
    assert same_value(loads_strict(case["input_text"]), value)
    assert same_value(loads_strict(case["input_text"].encode("utf-8")), value)
    expected = case["expected_text"].encode("utf-8")
    assert canonical_bytes(value) == expected
    assert canonical_bytes(loads_strict(case["input_text"])) == expected
    if "expected_utf8_hex" in case:
        assert canonical_bytes(value) == bytes.fromhex(case["expected_utf8_hex"].replace(" ", ""))
    if "expected_value_order" in case:
        pairs = json.loads(canonical_bytes(value), object_pairs_hook=lambda p: p)
        assert [v for _, v in pairs] == case["expected_value_order"]


def test_integers_and_whole_floats_serialise_without_fraction():
    assert canonical_bytes(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert canonical_bytes(-MAX_SAFE_INTEGER) == b"-9007199254740991"
    assert canonical_bytes(1.0) == b"1"
    assert canonical_bytes(-0.0) == b"0"
    assert canonical_bytes(1e20) == b"100000000000000000000"
    assert canonical_bytes(1e21) == b"1e+21"
    assert canonical_bytes(0.0001) == b"0.0001"
    assert canonical_bytes(0.00001) == b"0.00001"
    assert canonical_bytes(1e-6) == b"0.000001"
    assert canonical_bytes(1e-7) == b"1e-7"
    assert canonical_bytes([True, False, None, "", [], {}]) == b'[true,false,null,"",[],{}]'


WALKS = pytest.mark.parametrize("admits", [_fast_path_admits, _fast_path_admits_py], ids=["in-use", "python"])


@WALKS
def test_fast_path_steps_aside_where_documented(admits):
    """Pin the boundaries the module docstring states (both sides of each)."""
    assert admits({"k": [1, 0.5, "s", None, True]})
    assert admits(1.0001e-4) and admits(-0.5) and admits(0.99e-4)
    # orjson and JCS disagree on exactly one decade: [1e-6, 1e-5)
    assert admits(1e-5) and admits(-6e-5) and admits(9.99e-7)
    assert not admits(1e-6) and not admits(-9.999999999999999e-06)
    assert canonical_bytes([1e-5, 9.99e-7, 6e-5]) == rfc8785.dumps([1e-5, 9.99e-7, 6e-5])
    # whole floats below 2**53 are admitted once rewritten as integers
    assert admits(3.0) == admits({"a": [-0.0]}) == _NORMALISE
    assert admits([1, 2.5]) == 1
    assert canonical_bytes({"a": [3.0, -0.0, 2.5, float(MAX_SAFE_INTEGER)]}) == rfc8785.dumps(
        {"a": [3.0, -0.0, 2.5, float(MAX_SAFE_INTEGER)]})
    assert not admits(float(MAX_SAFE_INTEGER + 1)) and not admits(1e20)
    assert not admits(float("nan"))
    assert admits({"\uffff": 1, "\ue000": 2})
    assert not admits({"\U00010000": 1})
    assert not admits(MAX_SAFE_INTEGER + 1)
    assert not admits((1, 2)) and not admits({1: 2})
    deep = "leaf"
    for _ in range(70):
        deep = [deep]
    assert not admits(deep)
    assert canonical_bytes(deep) == rfc8785.dumps(deep)


def test_the_c_walk_is_built_and_in_use():
    """make setup builds ledger/_speedups.c where a compiler is; without it batched appends are ~15 % slower."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"no C compiler ({compiler}) or Python headers here: the Python walk is in use")
    assert canonical.NATIVE_WALK, "ledger._speedups is not built: run `make setup`"
    assert _fast_path_admits is not _fast_path_admits_py


def test_without_a_compiler_the_build_steps_aside_and_the_python_walk_gives_the_same_bytes(tmp_path):
    """`make setup` on a machine without a C compiler: the build says why and succeeds,
    and the ledger, without its extension, writes the same canonical bytes."""
    copy = tmp_path / "ledger"
    shutil.copytree(Path(canonical.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "http", "cli"))
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "PYTHONPATH": str(tmp_path)}
    build = subprocess.run([sys.executable, "-m", "ledger._build", "--force"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    assert "ledger._speedups not built" in build.stderr and "no-such-compiler" in build.stderr
    assert not list(copy.glob("_speedups*.so"))
    value = {"b": [1.0, 2.5, "\u00e9", None, True], "a": {"x": -(2**53 - 1)}}
    probe = ("import json, sys; from ledger import canonical; "
             "sys.stdout.write(json.dumps([canonical.NATIVE_WALK, canonical.canonical_bytes("
             f"{value!r}).decode()]))")
    walk = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert walk.returncode == 0, walk.stderr
    assert json.loads(walk.stdout) == [False, canonical_bytes(value).decode()]


class _Str(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


class _Dict(dict):
    pass


class _List(list):
    pass


def _nested(depth: int, leaf, container=list):
    value = leaf
    for _ in range(depth):
        value = [value] if container is list else {"k": value}
    return value


ODD_VALUES = [
    (1, 2), {"a": (1,)}, _Str("s"), {"a": _Str("s")}, {_Str("k"): 1}, _Int(3), [_Int(3)],
    _Float(0.5), [_Float(2.0)], _Dict(a=1), {"a": _Dict()}, _List([1]), [_List()],
    b"bytes", [bytearray(b"x")], {1, 2}, frozenset(), {1: "a"}, {None: 1}, {(1, 2): 3},
    object(), [object()], float("nan"), [float("inf")], {"a": float("-inf")}, -0.0, [0.0],
    1e-6, [9.999999999999999e-06], {"a": 1e-5}, float(MAX_SAFE_INTEGER), float(MAX_SAFE_INTEGER + 1),
    [-float(MAX_SAFE_INTEGER)], 1e300, [1e21], MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER,
    MAX_SAFE_INTEGER + 1, [-(MAX_SAFE_INTEGER + 1)], 2**64, [-(2**70)], True, [False, None],
    {"\ud800": 1}, {"\U00010000": 1}, {"a\U0010ffff": 1}, {"\uffff": [1.0, 2.5]}, {"": {}},
    "\U0001f600", ["\ud800"],
    _nested(63, 1), _nested(64, 1), _nested(65, 1), _nested(63, []), _nested(64, []),
    _nested(63, {}, dict), _nested(64, {}, dict), _nested(64, 1.0, dict), _nested(63, 2.0),
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: type(v).__name__)
def test_c_walk_gives_the_python_walks_verdict_on_odd_values(value):
    assert _fast_path_admits(value) == _fast_path_admits_py(value)


# ---------------------------------------------------------------------------
# Values with no canonical form
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), r"^nan is not representable in JCS$"),
        (float("inf"), r"^inf is not representable in JCS$"),
        (float("-inf"), r"^-inf is not representable in JCS$"),
        ({"a": [1, float("nan")]}, r"^nan is not representable"),
        (MAX_SAFE_INTEGER + 1, r"^9007199254740992 exceeds safe integer domain"),
        (-MAX_SAFE_INTEGER - 1, r"^-9007199254740992 exceeds safe integer domain"),
        (10**30, r"exceeds safe integer domain"),
        ([2**64], r"exceeds safe integer domain"),
        ("\ud800", r"non-UTF-8 codepoints"),
        ("ok \udfff ok", r"non-UTF-8 codepoints"),
        ({"k": ["\udc00"]}, r"non-UTF-8 codepoints"),
        ({1: "x"}, r"^object keys must be strings$"),
        ({None: "x"}, r"^object keys must be strings$"),
        ({"a": {True: 1}}, r"^object keys must be strings$"),
        (b"bytes", r"unsupported type"),
        ({"s": {1, 2}}, r"unsupported type"),
    ],
    ids=repr,
)
def test_canonical_bytes_rejects(value, message):
    with pytest.raises(CanonicalizationError, match=message):
        canonical_bytes(value)


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb", "\udc00"], ids=repr)
def test_canonical_bytes_rejects_lone_surrogate_in_key(key):
    """RFC 8785 §3.2.2.2: lone surrogates MUST be an error, keys included.

    The documented error is CanonicalizationError; a UnicodeEncodeError from
    the reference's UTF-16 key sort must not leak out.
    """
    with pytest.raises(CanonicalizationError, match=r"UTF-8|surrogate"):
        canonical_bytes({key: 1})
    with pytest.raises(CanonicalizationError, match=r"UTF-8|surrogate"):
        canonical_bytes({"ok": 1, key: 2})


def test_nested_too_deeply_is_an_error_not_a_crash():
    value = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(CanonicalizationError, match="^value is nested too deeply$"):
        canonical_bytes(value)


def test_canonical_string():
    assert canonical_string("a\"b\\c\n\x01\x7f\u2028\U0001f600") == rfc8785.dumps(
        "a\"b\\c\n\x01\x7f\u2028\U0001f600"
    )
    assert canonical_string("\x0f") == b'"\\u000f"'
    with pytest.raises(CanonicalizationError, match="^expected a string, got int$"):
        canonical_string(5)
    with pytest.raises(CanonicalizationError, match="^string contains a lone surrogate$"):
        canonical_string("x\ud800")


# ---------------------------------------------------------------------------
# loads_strict
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', r"^duplicate object key 'a'$"),
        ('{"a": 1, "a": 1}', r"^duplicate object key 'a'$"),
        ('{"x": {"y": [1, {"b": 1, "c": 2, "b": 3}]}}', r"^duplicate object key 'b'$"),
        ('[{"k": null, "k": null}]', r"^duplicate object key 'k'$"),
        ('{"\\u0061": 1, "a": 2}', r"^duplicate object key 'a'$"),
        ("NaN", r"^NaN is not allowed in JSON$"),
        ("[Infinity]", r"^Infinity is not allowed in JSON$"),
        ('{"a": -Infinity}', r"^-Infinity is not allowed in JSON$"),
        ("1e400", r"^number 1e400 is too large for a JSON number"),
        ("[-1e400]", r"^number -1e400 is too large for a JSON number"),
        ('"\\ud800"', r"non-UTF-8 codepoints"),
        ('"\\udc00"', r"non-UTF-8 codepoints"),
        ('"\\ud800\\u0041"', r"non-UTF-8 codepoints"),
        ('["\\ude00\\ud83d"]', r"non-UTF-8 codepoints"),
        ("9007199254740992", r"^integer 9007199254740992 is outside ±\(2\*\*53-1\); send it as a string$"),
        ("-9007199254740992", r"^integer -9007199254740992 is outside"),
        ('{"n": 123456789012345678901234567890}', r"^integer 12345678901234567890\.\.\. is outside"),
        ("1" * 5000, r"is outside ±\(2\*\*53-1\)"),
        ("{'a': 1}", r"^malformed JSON: Expecting property name enclosed in double quotes at line 1 column 2$"),
        ("[1,]", r"^malformed JSON: "),
        ("{} {}", r"^malformed JSON: Extra data"),
        ("", r"^malformed JSON: Expecting value at line 1 column 1$"),
        ("01", r"^malformed JSON: Extra data"),
        ('"\x01"', r"^malformed JSON: Invalid control character"),
        ("\ufeff{}", r"^malformed JSON: Unexpected UTF-8 BOM"),
    ],
    ids=repr,
)
def test_loads_strict_rejects(text, message):
    with pytest.raises(CanonicalizationError, match=message):
        loads_strict(text)


@pytest.mark.parametrize("text", ['{"\\ud800": 1}', '{"ok": {"\\udfff": 1}}'], ids=repr)
def test_loads_strict_rejects_lone_surrogate_in_key(text):
    with pytest.raises(CanonicalizationError, match=r"UTF-8|surrogate"):
        loads_strict(text)


@pytest.mark.parametrize(
    "data",
    [b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'{"a": "\xe2\x82"}', b"\x80"],
    ids=repr,
)
def test_loads_strict_rejects_invalid_utf8(data):
    with pytest.raises(CanonicalizationError, match=r"^JSON text is not valid UTF-8: "):
        loads_strict(data)
    with pytest.raises(CanonicalizationError, match=r"^JSON text is not valid UTF-8: "):
        loads_strict(bytearray(data))


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000], ids=["arrays", "objects"]
)
def test_loads_strict_rejects_deep_nesting_cleanly(text):
    with pytest.raises(CanonicalizationError, match=r"^JSON is nested too deeply$"):
        loads_strict(text)


def test_loads_strict_refuses_big_whole_floats_written_as_digits():
    """1e20 has a canonical form (plain digits) that reads back as an unsafe integer.

    The ledger must read back what it stores, so such numbers are refused at
    the door (and by prepare_entry), while 1e21 (exponent form) round-trips.
    """
    assert canonical_bytes(1e20) == b"100000000000000000000"  # the reference accepts it
    with pytest.raises(CanonicalizationError, match=r"whole number beyond .*send it as a string"):
        loads_strict("1e20")
    with pytest.raises(CanonicalizationError, match=r"whole number beyond"):
        storable_canonical_bytes({"a": [float(2**53)]})
    assert loads_strict(canonical_bytes(1e21)) == 1e21
    assert storable_canonical_bytes({"a": 1e21}) == b'{"a":1e+21}'
    assert storable_canonical_bytes({"a": float(MAX_SAFE_INTEGER)}) == b'{"a":9007199254740991}'


def test_loads_strict_accepts_valid_json():
    text = '{"b": [1, -2.5, 1e-7, "\\u20ac\\ud83d\\ude00", null, true, false], "a": {"": 9007199254740991}}'
    value = loads_strict(text)
    assert value == {
        "b": [1, -2.5, 1e-7, "\u20ac\U0001f600", None, True, False],
        "a": {"": MAX_SAFE_INTEGER},
    }
    assert loads_strict(text.encode()) == value
    assert canonical_bytes(value) == (
        '{"a":{"":9007199254740991},"b":[1,-2.5,1e-7,"\u20ac\U0001f600",null,true,false]}'.encode()
    )
    assert loads_strict("-9007199254740991") == -MAX_SAFE_INTEGER
    assert loads_strict("1e-400") == 0.0  # underflows to zero, as in ECMAScript
    assert loads_strict("-0") == 0


# ---------------------------------------------------------------------------
# Property tests against the rfc8785 reference
# ---------------------------------------------------------------------------

# Characters that matter: controls, quote and backslash, DEL, the top of the
# BMP (U+E000-U+FFFF, which sorts *after* surrogate pairs in UTF-16) and
# astral characters (which JCS sorts by their surrogates).
SPECIAL_CHARS = (
    "\x00\x01\x08\t\n\x0b\x0c\r\x1f \"\\/\x7f\x80\u00f6\u2028\u2029\u20ac"
    "\ud7ff\ue000\uf8ff\ufb33\ufeff\uffff\U00010000\U0001f600\U0010ffff"
)
chars = st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(SPECIAL_CHARS))
texts = st.text(chars, max_size=12)
keys = st.one_of(
    texts,
    st.text(st.sampled_from("a\ue000\uffff\U00010000\U0001f600\U0010ffff"), max_size=4),
)


def _finite(value: float) -> bool:
    return math.isfinite(value)


floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    # any bit pattern at all
    st.integers(0, 2**64 - 1).map(lambda b: struct.unpack(">d", b.to_bytes(8, "big"))[0]).filter(_finite),
    # around the fast path's 1e-4 threshold and JCS's 1e-6 / 1e-7 switches
    st.floats(min_value=0.5e-4, max_value=2e-4),
    st.floats(min_value=0.5e-5, max_value=2e-5),
    st.floats(min_value=0.5e-6, max_value=2e-6),
    st.floats(min_value=1e-7, max_value=1e-3),
    # a few ulps either side of each threshold
    st.tuples(st.sampled_from([1e-4, 1e-5, 1e-6, 1e-7, 1e-3]), st.integers(-64, 64)).map(
        lambda p: p[0] + p[1] * math.ulp(p[0])
    ),
    # tiny and huge
    st.floats(min_value=5e-324, max_value=1e-300),
    st.floats(min_value=1e300, max_value=1.7976931348623157e308),
    # whole numbers, up to and past 1e21 (JCS's switch to exponent form)
    st.integers(-(10**22), 10**22).map(float),
    st.integers(0, 75).map(lambda e: float(2**e)),
    st.sampled_from([1e21, 1e21 - 2**17, 1e21 + 2**17, 999999999999999900000.0, 1e16, 2.0**53]),
    st.just(-0.0),
)
signed_floats = st.tuples(floats, st.booleans()).map(lambda p: -p[0] if p[1] else p[0])
safe_ints = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]),
)
scalars = st.one_of(st.none(), st.booleans(), safe_ints, signed_floats, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)
# Values the reference refuses (besides lone surrogates in keys, tested above).
invalid_scalars = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.integers(MAX_SAFE_INTEGER + 1, 2**80),
    st.integers(-(2**80), -MAX_SAFE_INTEGER - 1),
    st.text(st.characters(categories=("Cs",)), min_size=1, max_size=2),
)
maybe_invalid = st.recursive(
    st.one_of(scalars, invalid_scalars),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)


def _round_trips(value) -> bool:
    """False if the canonical text would hold an integer literal beyond 2**53-1.

    A whole float beyond 2**53-1 and below 1e21 (say 1e20) is written by JCS
    as plain digits ("100000000000000000000"), an out-of-range integer when
    read back; the ledger refuses such values (see
    test_loads_strict_refuses_big_whole_floats_written_as_digits).
    """
    if isinstance(value, float):
        return not (value.is_integer() and MAX_SAFE_INTEGER < abs(value) < 1e21)
    if isinstance(value, dict):
        return all(_round_trips(v) for v in value.values())
    if isinstance(value, list):
        return all(_round_trips(v) for v in value)
    return True


def _assert_matches_reference(value):
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as e:
        with pytest.raises(CanonicalizationError, match=re.escape(str(e))):
            canonical_bytes(value)
    else:
        assert canonical_bytes(value) == expected
        assert reference_canonical_bytes(value) == expected


@settings(max_examples=400, deadline=None)
@given(json_values)
@example({"\ue000": 1, "\U0001f600": 2})
@example({"\uffff": 1, "\U00010000": 2, "a": [1e-5, 1.5e-4, 0.0001, 1e21, 1e20 + 0.0]})
@example([1e-06, 9.999999999999997e-07, 1e-7, 0.000123456789012345678])
def test_canonical_bytes_equals_reference(value):
    _assert_matches_reference(value)
    # and what is canonical parses back to the same value and the same bytes
    data = canonical_bytes(value)
    if _round_trips(value):
        assert loads_strict(data) == value
        assert canonical_bytes(loads_strict(data)) == data


@settings(max_examples=200, deadline=None)
@given(maybe_invalid)
def test_canonical_bytes_raises_exactly_when_reference_does(value):
    _assert_matches_reference(value)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, maybe_invalid, st.lists(maybe_invalid), st.dictionaries(keys, maybe_invalid)))
def test_c_walk_gives_the_python_walks_verdict(value):
    verdict = _fast_path_admits(value)
    assert verdict == _fast_path_admits_py(value)
    assert verdict in (0, 1, 2)


@settings(max_examples=300, deadline=None)
@given(signed_floats)
def test_floats_equal_reference(value):
    expected = rfc8785.dumps(value)
    assert canonical_bytes(value) == expected
    assert canonical_bytes([value]) == b"[" + expected + b"]"
    assert canonical_bytes({"\U0001f600": value, "\uffff": value}) == rfc8785.dumps(
        {"\U0001f600": value, "\uffff": value}
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, safe_ints, max_size=8))
def test_key_order_equals_reference(value):
    assert canonical_bytes(value) == rfc8785.dumps(value)
    # UTF-16 code unit order, independently of the reference:
    pairs = json.loads(canonical_bytes(value), object_pairs_hook=lambda p: p)
    order = [k for k, _ in pairs]
    assert order == sorted(value, key=lambda k: k.encode("utf-16-be"))


@settings(max_examples=200, deadline=None)
@given(texts)
def test_canonical_string_equals_reference(text):
    assert canonical_string(text) == rfc8785.dumps(text)


# ---------------------------------------------------------------------------
# Entry envelope
# ---------------------------------------------------------------------------

TRICKY = [
    "prev", "seq", "ts", "subject", "actor", "kind", "payload",
    '"prev":"', ',"prev":"', '","seq":', ',"subject":', ',"ts":"', '"}', "\\", '\\"',
    ',"prev":"' + "0" * 64 + '","seq":1,"subject":"x","ts":"2020-01-01T00:00:00.000000Z"}',
]
tricky_text = st.one_of(texts, st.sampled_from(TRICKY), st.lists(st.sampled_from(TRICKY), max_size=4).map("".join))
tricky_keys = st.one_of(keys, st.sampled_from(TRICKY))
payload_values = st.recursive(
    st.one_of(st.none(), st.booleans(), safe_ints, signed_floats, tricky_text),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(tricky_keys, children, max_size=4)
    ),
    max_leaves=15,
)
payloads = st.dictionaries(tricky_keys, payload_values, max_size=6)
kinds = st.from_regex(KIND_PATTERN, fullmatch=True).filter(lambda k: len(k) <= MAX_KIND)
_printable = st.characters(exclude_categories=("Cs", "Cc"))
names = st.one_of(
    st.text(_printable, min_size=1, max_size=40), st.sampled_from([t for t in TRICKY if t.strip()])
).filter(lambda s: s.strip())
timestamps = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
    timezones=st.just(timezone.utc),
)


@settings(max_examples=250, deadline=None)
@given(
    kinds, names, names, payloads,
    st.integers(0, MAX_SAFE_INTEGER), st.binary(min_size=32, max_size=32), timestamps,
)
@example("a.b", "prev", '","seq":', {"prev": "x", "seq": 1, "ts": '"prev":"'}, 0, bytes(32),
         datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone.utc))
def test_encode_entry_is_reference_jcs_and_reads_back(kind, actor, subject, payload, seq, prev, moment):
    ts = utc_timestamp(moment)
    assert parse_timestamp(ts) == moment
    if not _round_trips(payload):  # e.g. 1e20: refused, it would not read back
        with pytest.raises(EntryValidationError, match="whole number beyond"):
            prepare_entry(kind, actor, subject, payload)
        return
    data = encode_entry(prepare_entry(kind, actor, subject, payload), seq, prev, ts)
    assert data == rfc8785.dumps({
        "actor": actor, "kind": kind, "payload": payload, "prev": prev.hex(),
        "seq": seq, "subject": subject, "ts": ts,
    })
    assert read_envelope(data) == EnvelopeFields(seq, prev, ts)
    assert loads_strict(data)["payload"] == payload


def test_read_envelope_rejects_what_it_did_not_write():
    good = encode_entry(prepare_entry("a.b", "me", "it", {}), 7, bytes(range(32)), "2020-01-02T03:04:05.000006Z")
    assert read_envelope(good) == EnvelopeFields(7, bytes(range(32)), "2020-01-02T03:04:05.000006Z")
    cases = [
        (b"[]", "^not a ledger entry envelope$"),
        (good[:-1], "^not a ledger entry envelope$"),
        (good.replace(b"2020-01-02T03:04:05.000006Z", b"2020-01-02T03:04:05.00000xZ"), "timestamp is missing or malformed"),
        (good.replace(b',"prev":"', b',"prew":"'), "^entry has no prev field$"),
        (good.replace(b'","seq":7', b'","sek":7'), "^entry prev field is malformed$"),
        (good.replace(b'"seq":7', b'"seq":07'), "^entry seq field is malformed$"),
        (good.replace(b'"seq":7', b'"seq":-7'), "^entry seq field is malformed$"),
        (good.replace(bytes(range(32)).hex().encode(), bytes(range(32)).hex().upper().encode()), "not lowercase hex"),
        (good.replace(bytes(range(32)).hex().encode(), b"z" * 64), "^entry prev field is not hex$"),
    ]
    for data, message in cases:
        assert data != good
        with pytest.raises(EntryValidationError, match=message):
            read_envelope(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "model"}, r"^kind 'model' must be a dotted lowercase name"),
        ({"kind": "Model.version"}, r"^kind 'Model.version' must be a dotted lowercase name"),
        ({"kind": "model..version"}, r"^kind 'model..version' must be"),
        ({"kind": "model.version."}, r"^kind 'model.version.' must be"),
        ({"kind": "1model.version"}, r"^kind '1model.version' must be"),
        ({"kind": "model.ver sion"}, r"^kind 'model.ver sion' must be"),
        ({"kind": "a." + "b" * MAX_KIND}, rf"^kind is longer than {MAX_KIND} characters$"),
        ({"kind": ""}, r"^kind must not be empty$"),
        ({"kind": None}, r"^kind must be a string$"),
        ({"kind": "model.\nversion"}, r"^kind must not contain control characters$"),
        ({"actor": ""}, r"^actor must not be empty$"),
        ({"actor": "   "}, r"^actor must not be empty$"),
        ({"actor": 42}, r"^actor must be a string$"),
        ({"actor": "a" * (MAX_ACTOR + 1)}, rf"^actor is longer than {MAX_ACTOR} characters$"),
        ({"actor": "alice\n"}, r"^actor must not contain control characters$"),
        ({"actor": "al\x00ice"}, r"^actor must not contain control characters$"),
        ({"actor": "al\x7fice"}, r"^actor must not contain control characters$"),
        ({"actor": "al\ud800ice"}, r"^actor: string contains a lone surrogate$"),
        ({"subject": ""}, r"^subject must not be empty$"),
        ({"subject": "s" * (MAX_SUBJECT + 1)}, rf"^subject is longer than {MAX_SUBJECT} characters$"),
        ({"subject": "tab\there"}, r"^subject must not contain control characters$"),
        ({"payload": []}, r"^payload must be a JSON object$"),
        ({"payload": None}, r"^payload must be a JSON object$"),
        ({"payload": '{"a": 1}'}, r"^payload must be a JSON object$"),
        ({"payload": {"x": float("nan")}}, r"^payload: nan is not representable in JCS$"),
        ({"payload": {"x": 2**53}}, r"^payload: 9007199254740992 exceeds safe integer domain"),
        ({"payload": {"x": "\udc00"}}, r"^payload: input contains non-UTF-8 codepoints"),
        ({"payload": {1: "x"}}, r"^payload: object keys must be strings$"),
        ({"payload": {"x": "y" * 100}, "max_payload": 100},
         r"^payload is 108 bytes in canonical form, the limit is 100$"),
    ],
    ids=repr,
)
def test_prepare_entry_validation(kwargs, message):
    args = {"kind": "model.version.registered", "actor": "alice", "subject": "model:1", "payload": {}}
    args.update(kwargs)
    with pytest.raises(EntryValidationError, match=message):
        prepare_entry(**args)


def test_prepare_entry_rejects_lone_surrogate_in_payload_key():
    with pytest.raises(EntryValidationError, match=r"^payload: .*(UTF-8|surrogate)"):
        prepare_entry("a.b", "alice", "s", {"\ud800": 1})


def test_prepare_entry_payload_limit_is_inclusive():
    payload = {"x": "y" * 92}
    assert len(canonical_bytes(payload)) == 100
    prepared = prepare_entry("a.b", "alice", "s", payload, max_payload=100)
    assert prepared.head.endswith(b',"payload":' + canonical_bytes(payload) + b',"prev":"')
    assert prepared.kind == "a.b" and prepared.actor == "alice" and prepared.subject == "s"


def test_timestamps_are_fixed_width_utc():
    moment = datetime(2021, 3, 4, 5, 6, 7, 89, tzinfo=timezone.utc)
    assert utc_timestamp(moment) == "2021-03-04T05:06:07.000089Z"
    assert len(utc_timestamp()) == 27
    assert utc_timestamp(datetime(1, 1, 1, tzinfo=timezone.utc)) == "0001-01-01T00:00:00.000000Z"


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.sampled_from([
    timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11)),
    timezone(timedelta(0))])))
def test_timestamps_are_strftimes_text_in_utc(moment):
    """For any offset (converted to UTC first): what strftime(TS_FORMAT) writes,
    except that years before 1000 keep four digits (glibc's %Y writes "999"),
    and the text always reads back to the same moment."""
    try:
        in_utc = moment.astimezone(timezone.utc)
    except OverflowError:  # an offset pushes year 1 or 9999 out of range
        with pytest.raises(OverflowError):
            utc_timestamp(moment)
        return
    ts = utc_timestamp(moment)
    assert TS_PATTERN.match(ts.encode()) and len(ts) == TS_LENGTH
    if in_utc.year >= 1000:
        assert ts == in_utc.strftime(TS_FORMAT)
    assert parse_timestamp(ts) == moment
