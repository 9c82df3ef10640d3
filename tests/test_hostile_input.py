"""Hostile input: nothing a client sends may cause a 500 or write to the ledger.

Every request below is refused with a 4xx JSON error body and the ledger
keeps its size, except where the point is that odd but legitimate text
(RTL overrides, joiners, astral characters, combining marks) is stored and
returned exactly as sent.
"""

from __future__ import annotations

import json

import pytest

from factories import World, digest

API = "/api/v1"
MODEL = {"name": "fraud-score", "owner": "eve", "risk_tier": "high", "uses_personal_data": True}
SQL = "'; DROP TABLE gov_model; --"


@pytest.fixture
def populated(world):
    """A dataset version, a model and one version: real targets for every endpoint."""
    world.registered_version()
    world.author()
    return world


def version_body(**fields) -> dict:
    return {"version": "2", "artifact_sha256": digest("credit-risk@2"),
            "training_datasets": [{"name": "loans", "version": "v1"}], **fields}


def dataset_version_body(**fields) -> dict:
    return {"version": "v2", "content_sha256": digest("loans@v2"),
            "schema": [{"name": "age", "type": "int"}], **fields}


def _send(world, method: str, url: str, body, data, content_type: str, headers):
    headers = world.author() if headers is None else headers  # the token's entry comes first
    size = world.ledger_size()
    if body is not None:
        data = json.dumps(body)
    kwargs = {"headers": headers}
    if data is not None:
        kwargs.update(data=data, content_type=content_type)
    response = world.client.open(url, method=method, **kwargs)
    return response, world.ledger_size() - size


def hostile(world, method: str, url: str, *, body=None, data=None, content_type="application/json",
            headers=None, expect: tuple[int, ...] = (400, 422)) -> dict:
    """Send one hostile request; it must be refused (4xx, JSON body) and write nothing."""
    response, growth = _send(world, method, url, body, data, content_type, headers)
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    out = response.get_json(silent=True)
    assert response.status_code in expect, (response.status_code, out)
    assert isinstance(out, dict) and out["code"] == response.status_code, out
    assert growth == 0
    return out


def outcome(world, method: str, url: str, *, body=None, data=None, content_type="application/json",
            headers=None, field: str | None = None) -> tuple:
    """Return (status, ledger growth[, field named in errors.json]) of one request.

    For loops over many cases: compare a dict of outcomes with the expected
    one, so a failure lists every case that misbehaved.
    """
    response, growth = _send(world, method, url, body, data, content_type, headers)
    if field is None:
        return response.status_code, growth
    out = response.get_json(silent=True) or {}
    errors = out.get("errors") if isinstance(out.get("errors"), dict) else {}
    return response.status_code, growth, field in (errors.get("json") or {})


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# -- size -----------------------------------------------------------------------

def test_body_over_max_content_length_is_413_json(make_app):
    world = World(make_app(MAX_CONTENT_LENGTH=64 * 1024))
    world.author()
    body = json.dumps({**MODEL, "description": "x" * (64 * 1024)})
    out = hostile(world, "POST", f"{API}/models", data=body, expect=(413,))
    assert out["status"] == "Request Entity Too Large"
    # Just under the limit goes through.
    ok = world.client.post(f"{API}/models", json={**MODEL, "description": "x" * 9000}, headers=world.author())
    assert ok.status_code == 201


def test_default_max_content_length_is_enforced(populated):
    limit = populated.app.config["MAX_CONTENT_LENGTH"]
    assert limit == 6 * 1024 * 1024
    hostile(populated, "POST", f"{API}/models", data=b"[" + b" " * limit + b"]", expect=(413,))


def test_payload_over_the_ledger_canonical_limit_is_refused(populated):
    """Under MAX_CONTENT_LENGTH, over LEDGER_MAX_PAYLOAD_BYTES once canonical."""
    metrics = {f"m{i:03}": "v" * 6000 for i in range(200)}
    out = hostile(populated, "POST", f"{API}/models/credit-risk/versions", body=version_body(metrics=metrics),
                  expect=(413, 422))
    assert "the limit is 1048576" in out["message"]


def test_configured_ledger_payload_limit_is_honoured(make_app):
    world = World(make_app(LEDGER_MAX_PAYLOAD_BYTES=4096))
    world.author()
    out = hostile(world, "POST", f"{API}/models", body={**MODEL, "description": "d" * 5000}, expect=(413, 422))
    assert "the limit is 4096" in out["message"]
    assert world.client.post(f"{API}/models", json={**MODEL, "description": "d" * 3000},
                             headers=world.author()).status_code == 201


# -- nesting ----------------------------------------------------------------------

NESTED = {
    "array-10k": "[" * 10_000 + "]" * 10_000,
    "object-10k": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "array-100k": "[" * 100_000 + "]" * 100_000,
    "unclosed-10k": "[" * 10_000,
    "in-a-field-10k": '{"name": "fraud-score", "tags": ' + "[" * 10_000 + "]" * 10_000 + "}",
}


def test_deeply_nested_body_is_400(populated):
    got = {case: outcome(populated, "POST", f"{API}/models", data=text) for case, text in NESTED.items()}
    assert got == {case: (400, 0) for case in NESTED}


def _nest(levels: int):
    value = 1
    for _ in range(levels):
        value = {"k": value}
    return value


def test_deeply_nested_metrics_are_refused_but_modest_nesting_is_kept(populated):
    out = hostile(populated, "POST", f"{API}/models/credit-risk/versions",
                  data=json.dumps(version_body(metrics={"deep": _nest(100)})))
    assert "nested deeper" in out["message"]
    response = populated.client.post(f"{API}/models/credit-risk/versions",
                                     json=version_body(metrics={"deep": _nest(20)}), headers=populated.author())
    assert response.status_code == 201
    assert response.get_json()["metrics"] == {"deep": _nest(20)}


# -- malformed and ambiguous JSON -----------------------------------------------------

def _model_text(description: str) -> str:
    return ('{"name": "fraud-score", "owner": "eve", "risk_tier": "high", "uses_personal_data": true, '
            f'"description": {description}}}')


AMBIGUOUS = {
    "nan": _model_text("NaN"),
    "infinity": _model_text("Infinity"),
    "minus-infinity": _model_text("-Infinity"),
    "float-overflow": _model_text("1e400"),
    "duplicate-key": '{"name": "fraud-score", "name": "credit-risk", "owner": "eve", "risk_tier": "high", '
                     '"uses_personal_data": true}',
    "duplicate-key-nested": None,  # filled below: inside metrics
    "int-2**53+1": _model_text(str(2**53 + 1)),
    "int-minus-2**53-1": _model_text(str(-(2**53 + 1))),
    "int-400-digits": _model_text("9" * 400),
    "lone-high-surrogate": _model_text('"abc\\ud800"'),
    "lone-low-surrogate": _model_text('"\\udc00abc"'),
    "reversed-pair": _model_text('"\\ude00\\ud83d"'),
    "raw-surrogate-bytes": None,  # filled below: CESU-style bytes
    "invalid-utf8": None,
    "utf8-bom": None,
    "single-quotes": "{'name': 'fraud-score'}",
    "trailing-comma": '{"name": "fraud-score",}',
    "comment": '{"name": "fraud-score" /* x */}',
    "trailing-garbage": _model_text('"x"') + " x",
    "empty": "",
    "whitespace-only": "   ",
}


def _ambiguous_body(case: str):
    if case == "duplicate-key-nested":
        return ('{"version": "2", "artifact_sha256": "%s", "metrics": {"auc": 0.9, "auc": 0.99}}'
                % digest("credit-risk@2"))
    if case == "raw-surrogate-bytes":
        return raw(_model_text('"abc\ud800"'))
    if case == "invalid-utf8":
        return _model_text('"abc"').encode().replace(b"abc", b"a\xffc")
    if case == "utf8-bom":
        return b"\xef\xbb\xbf" + _model_text('"abc"').encode()
    return AMBIGUOUS[case]


def test_ambiguous_or_malformed_json_is_400(populated):
    for case in AMBIGUOUS:
        url = f"{API}/models/credit-risk/versions" if case == "duplicate-key-nested" else f"{API}/models"
        out = hostile(populated, "POST", url, data=_ambiguous_body(case), expect=(400,))
        assert out["status"] == "Bad Request", case


def test_safe_integers_at_the_edge_are_kept_exactly(populated):
    metrics = {"max": 2**53 - 1, "min": -(2**53 - 1), "neg_zero": -0.0, "tiny": 5e-324}
    response = populated.client.post(f"{API}/models/credit-risk/versions", json=version_body(metrics=metrics),
                                     headers=populated.author())
    assert response.status_code == 201, response.get_json()
    stored = json.loads(populated.ledger.entry(response.get_json()["seq"]).canonical)["payload"]["metrics"]
    assert stored == {"max": 2**53 - 1, "min": -(2**53 - 1), "neg_zero": 0, "tiny": 5e-324}


# -- wrong types ------------------------------------------------------------------

WRONG_TYPES = [
    # numbers and booleans as strings
    ("model", {"uses_personal_data": "true"}, "uses_personal_data"),
    ("model", {"uses_personal_data": "yes"}, "uses_personal_data"),
    ("model", {"uses_personal_data": 1}, "uses_personal_data"),
    ("model", {"risk_tier": 3}, "risk_tier"),
    ("dataset_version", {"row_count": "12"}, "row_count"),
    ("dataset_version", {"row_count": 12.5}, "row_count"),
    ("dataset_version", {"row_count": True}, "row_count"),
    ("version", {"version": 2}, "version"),
    ("version", {"artifact_sha256": 12345}, "artifact_sha256"),
    # lists as objects and objects as lists
    ("model", {"tags": {"credit": True}}, "tags"),
    ("model", {"protected_attributes": "sex"}, "protected_attributes"),
    ("version", {"training_datasets": {"name": "loans", "version": "v1"}}, "training_datasets"),
    ("version", {"metrics": [["auc", 0.9]]}, "metrics"),
    ("version", {"lineage": ["airflow", "train"]}, "lineage"),
    ("dataset_version", {"schema": {"age": "int"}}, "schema"),
    ("dataset_version", {"pii_columns": {"name": True}}, "pii_columns"),
    ("dataset", {"owner": {"name": "dana"}}, "owner"),
    # null for required and for non-nullable fields
    ("model", {"name": None}, "name"),
    ("model", {"owner": None}, "owner"),
    ("model", {"uses_personal_data": None}, "uses_personal_data"),
    ("model", {"description": None}, "description"),
    ("model", {"tags": None}, "tags"),
    ("version", {"artifact_sha256": None}, "artifact_sha256"),
    ("version", {"metrics": None}, "metrics"),
    ("version", {"training_datasets": [None]}, "training_datasets"),
    ("dataset", {"source_system": None}, "source_system"),
    ("dataset_version", {"content_sha256": None}, "content_sha256"),
    ("dataset_version", {"schema": [{"name": None, "type": "int"}]}, "schema"),
]
TARGETS = {
    "model": (f"{API}/models", lambda change: {**MODEL, **change}),
    "version": (f"{API}/models/credit-risk/versions", lambda change: version_body(**change)),
    "dataset": (f"{API}/datasets", lambda change: {"name": "cards", "owner": "dana",
                                                    "source_system": "warehouse", **change}),
    "dataset_version": (f"{API}/datasets/loans/versions", lambda change: dataset_version_body(**change)),
}


def _unique(target: str, change: dict, i: int) -> dict:
    """Give each case its own name or version, so one accepted case cannot mask the next."""
    key = {"model": "name", "version": "version", "dataset": "name", "dataset_version": "version"}[target]
    return change if key in change else {key: f"case{i}", **change}


@pytest.mark.parametrize("target", list(TARGETS))
def test_wrong_types_are_422_naming_the_field(populated, target):
    url, build = TARGETS[target]
    got, expected = {}, {}
    for i, (t, change, field) in enumerate(WRONG_TYPES):
        if t == target:
            case = f"{field}={json.dumps(change[field])}"
            got[case] = outcome(populated, "POST", url, body=build(_unique(t, change, i)), field=field)
            expected[case] = (422, 0, True)
    assert got == expected


def test_non_object_bodies_are_422(populated):
    for text in ["null", '"fraud-score"', "[]", '[{"name": "fraud-score"}]', "42", "true"]:
        out = hostile(populated, "POST", f"{API}/models", data=text, expect=(422,))
        assert out["errors"]["json"] == {"_schema": ["Invalid input type."]}, text


# -- unicode --------------------------------------------------------------------------

ODD_TEXT = {
    "rtl-override": "approved\u202e lanoitidnoc\u202c",
    "zwj-family": "team \U0001F469\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466",
    "zero-width": "a\u200bb\u200cc\u200dd\u2060e\ufeff",
    "astral": "\U0001F600 \U0001D11E \U00020000 \U0010FFFD",
    "combining": "e\u0301 a\u0308 \u0915\u094D\u0937 Z\u0351\u0352\u0357",
    "mixed-scripts": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u4f60\u597d",
    "newlines-and-tabs": "line 1\nline 2\r\n\tindented",
}


def test_unicode_text_is_stored_and_returned_exactly(populated):
    for i, (case, text) in enumerate(ODD_TEXT.items()):
        name = f"model-{i}"
        body = {**MODEL, "name": name, "description": text, "intended_use": text[::-1]}
        response = populated.client.post(f"{API}/models", json=body, headers=populated.author())
        assert response.status_code == 201, (case, response.get_json())
        created = response.get_json()
        assert (created["description"], created["intended_use"]) == (text, text[::-1]), case
        fetched = populated.client.get(f"{API}/models/{name}", headers=populated.auditor()).get_json()
        assert (fetched["description"], fetched["intended_use"]) == (text, text[::-1]), case
        canonical = populated.ledger.entry(created["seq"]).canonical
        assert json.loads(canonical)["payload"]["description"] == text, case
        # JCS writes non-ASCII as UTF-8, not \u escapes; nothing is normalised.
        if case != "newlines-and-tabs":
            assert text.encode("utf-8") in canonical, case


def test_unicode_in_labels_and_metric_keys_is_kept(populated):
    body = version_body(framework="\u0646\u0645\u0648\u0630\u062c \U0001F9EA",
                        metrics={"\U0001F600": 1.5, "\uffff": 2.5, "e\u0301": 3.5, "\u00e9": 4.5})
    response = populated.client.post(f"{API}/models/credit-risk/versions", json=body, headers=populated.author())
    assert response.status_code == 201, response.get_json()
    detail = populated.client.get(f"{API}/models/credit-risk/versions/2", headers=populated.author()).get_json()
    assert detail["framework"] == body["framework"]
    assert detail["metrics"] == body["metrics"] and len(detail["metrics"]) == 4
    canonical = populated.ledger.entry(response.get_json()["seq"]).canonical
    # RFC 8785 orders keys by UTF-16 code units: U+1F600 (D83D DE00) sorts before U+FFFF.
    assert canonical.index("\U0001F600".encode()) < canonical.index("\uffff".encode())


CONTROL = ["\x00", "\x07", "\x08", "\x1b[31mred", "\x7f", "\x0b", "\x0c"]


CONTROL_FIELDS = [("model", "description"), ("model", "owner"), ("model", "tags"),
                  ("version", "description"), ("version", "framework"), ("dataset", "source_system"),
                  ("dataset_version", "uri")]


def _control_outcomes(world, chars) -> tuple[dict, dict]:
    got, expected = {}, {}
    for n, char in enumerate(chars):
        for i, (target, field) in enumerate(CONTROL_FIELDS, start=100 * n):
            url, build = TARGETS[target]
            value = f"before{char}after"
            change = _unique(target, {field: [value] if field == "tags" else value}, i)
            case = f"U+{ord(char[0]):04X} in {target}.{field}"
            got[case] = outcome(world, "POST", url, body=build(change), field=field)
            expected[case] = (422, 0, True)
    return got, expected


def test_control_characters_are_rejected(populated):
    got, expected = _control_outcomes(populated, CONTROL)
    assert got == expected


def test_c1_control_characters_are_rejected(populated):
    """U+0080..U+009F are control characters too (U+009B is a terminal CSI)."""
    got, expected = _control_outcomes(populated, ["\x9b31m", "\x80"])
    assert got == expected


# -- SQL metacharacters --------------------------------------------------------------

NASTY_NAMES = [SQL, "%", "_", "a%", "%model%", "\\", "a\\b", "x' OR '1'='1", 'q"q', "a;b", "a b", "--",
               "name\n", "ab\x00", "\u0430dmin"]  # the last: Cyrillic a


def test_sql_metacharacters_in_names_are_rejected(populated):
    for name in NASTY_NAMES:
        hostile(populated, "POST", f"{API}/models", body={**MODEL, "name": name}, expect=(422,))
        hostile(populated, "POST", f"{API}/datasets",
                body={"name": name, "owner": "dana", "source_system": "w"}, expect=(422,))
        hostile(populated, "POST", f"{API}/models/credit-risk/versions",
                body=version_body(training_datasets=[{"name": name, "version": "v1"}]), expect=(422,))
        hostile(populated, "POST", f"{API}/models/credit-risk/versions", body=version_body(version=name),
                expect=(422,))
    listed = populated.client.get(f"{API}/models", headers=populated.author()).get_json()
    assert [m["name"] for m in listed] == ["credit-risk"]


FILTERS = [
    f"tag={SQL}", "tag=%25", "tag=_", "tag=%5C", "tag=credit%25", "tag=' OR '1'='1",
    f"risk_tier={SQL}", "risk_tier=high' OR '1'='1", "after=%25", f"after={SQL}", "after=_",
    "limit=1;DROP TABLE gov_model", "limit=-1", "limit=99999999999999999999999",
]


def test_sql_metacharacters_in_filters_are_harmless(populated):
    size = populated.ledger_size()
    for query in FILTERS:
        response = populated.client.get(f"{API}/models?{query}", headers=populated.author())
        assert response.status_code in (200, 422), (query, response.get_json())
        if response.status_code == 200:
            assert response.get_json() == [], query
    assert populated.ledger_size() == size
    listed = populated.client.get(f"{API}/models", headers=populated.author()).get_json()
    assert [m["name"] for m in listed] == ["credit-risk"]


PATHS = [
    "/models/%27%3B%20DROP%20TABLE%20gov_model%3B%20--",
    "/models/%25", "/models/_", "/models/credit%25", "/models/credit_risk", "/models/%5C",
    "/models/credit-risk/versions/%25", "/models/credit-risk/versions/_",
    "/datasets/lo__s/versions", "/datasets/%25/versions/%25", "/datasets/loans/versions/v_",
    "/models/%ff%fe", "/models/" + "m" * 5000,
    "/models/a%00b", "/models/a%00b/versions", "/models/credit-risk/versions/1%00",
    "/datasets/loans%00/versions", "/datasets/loans/versions/v1%00",
]


def _expected(path):
    # a control character in the URL is refused at the door; anything else names nothing
    return (400, 0) if "%00" in path else (404, 0)


def test_hostile_path_parameters_are_404_or_400(populated):
    got = {path: outcome(populated, "GET", API + path) for path in PATHS}
    assert got == {path: _expected(path) for path in PATHS}
    listed = populated.client.get(f"{API}/models", headers=populated.author()).get_json()
    assert [m["name"] for m in listed] == ["credit-risk"]


def test_hostile_path_parameters_on_writes_are_404_or_400(populated):
    cases = {"/models/a%00b/versions": version_body(), "/models/%25/versions": version_body(),
             "/datasets/loans%00/versions": dataset_version_body(),
             "/datasets/_/versions": dataset_version_body()}
    got = {path: outcome(populated, "POST", API + path, body=body) for path, body in cases.items()}
    assert got == {path: _expected(path) for path in cases}


# -- formats that slip past a regex ------------------------------------------------------

FORMATS = {
    "artifact-sha-newline": ("version", {"artifact_sha256": digest("credit-risk@2") + "\n"}, "artifact_sha256"),
    "content-sha-newline": ("dataset_version", {"content_sha256": digest("loans@v2") + "\n"}, "content_sha256"),
    "retention-newline": ("dataset_version", {"retention_period": "P90D\n"}, "retention_period"),
    "retention-too-long": ("dataset_version", {"retention_period": "P" + "9" * 40 + "D"}, "retention_period"),
    "version-newline": ("version", {"version": "7\n"}, "version"),
}


def test_formats_are_anchored_and_bounded(populated):
    """``$`` also matches before a final newline; a column may be shorter than the regex allows."""
    got = {}
    for i, (case, (target, change, field)) in enumerate(FORMATS.items()):
        url, build = TARGETS[target]
        got[case] = outcome(populated, "POST", url, body=build(_unique(target, change, i)))
    assert got == {case: (422, 0) for case in FORMATS}


# -- content types ----------------------------------------------------------------------

def test_non_json_content_type_is_4xx(populated):
    body = json.dumps({**MODEL})
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                         "multipart/form-data; boundary=x", None, "application/json; charset=utf-16"]:
        data = body.encode("utf-16") if content_type and "utf-16" in content_type else body
        headers = {**populated.author(), **({"Content-Type": content_type} if content_type else {})}
        size = populated.ledger_size()
        response = populated.client.post(f"{API}/models", data=data, headers=headers)
        assert 400 <= response.status_code < 500, (content_type, response.get_json())
        assert response.get_json()["code"] == response.status_code
        assert populated.ledger_size() == size


def test_hostile_bodies_need_authentication_first(populated):
    """Unauthenticated junk is a 401 before any parsing."""
    out = hostile(populated, "POST", f"{API}/models", data="[" * 10_000, headers={}, expect=(401,))
    assert out["message"].startswith("authentication required")
