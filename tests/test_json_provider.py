"""Response bodies are written by orjson (ledger.http.FastJSONProvider) and say
what Flask's own provider says: the same JSON value, keys sorted, Flask's
conversions for dates, decimals, UUIDs and dataclasses."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from ledger.http import FastJSONProvider


@dataclasses.dataclass
class Point:
    x: int
    label: str


class Label(str):
    pass


VALUES = [
    {"b": 1, "a": [True, None, 2.5, -0.0, "é\u2028😀"], "c": {"z": {}, "y": []}},
    {"when": datetime(2026, 11, 26, 6, 0, 1, tzinfo=timezone.utc), "day": date(2026, 11, 26)},
    {"amount": Decimal("12.50"), "id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    {"point": Point(3, "p"), "label": Label("sub"), "points": [Point(1, "a")]},
    {2: "int keys", 1: "are written as strings"},
    {"big": 2**70, "small": -(2**63)},
    [{"rule": f"r{i}", "passed": i % 2 == 0, "message": "x" * i} for i in range(20)],
    "plain",
    17,
]


@pytest.fixture
def providers():
    app = Flask(__name__)
    return FastJSONProvider(app), DefaultJSONProvider(app)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_same_json_value_as_flasks_provider(providers, value):
    fast, flask = providers
    ours, theirs = fast.dumps(value), flask.dumps(value)
    assert json.loads(ours) == json.loads(theirs)
    if isinstance(value, dict) and all(type(k) is str for k in value):
        assert list(json.loads(ours)) == sorted(value)  # keys sorted, as Flask sorts them


def test_flask_conversions_are_kept(providers):
    fast, _ = providers
    out = json.loads(fast.dumps({"when": datetime(2026, 11, 26, 6, 0, 1, tzinfo=timezone.utc),
                                 "amount": Decimal("12.50"), "point": Point(3, "p")}))
    assert out == {"when": "Thu, 26 Nov 2026 06:00:01 GMT", "amount": "12.50", "point": {"x": 3, "label": "p"}}


def test_options_go_to_flasks_encoder(providers):
    fast, _ = providers
    assert fast.dumps({"a": 1}, indent=2) == '{\n  "a": 1\n}'


def test_unserialisable_values_fail_as_with_flask(providers):
    fast, flask = providers
    for provider in (fast, flask):
        with pytest.raises(TypeError):
            provider.dumps({"x": object()})


def test_the_app_answers_with_it(app, client):
    assert isinstance(app.json, FastJSONProvider)
    response = client.get("/healthz")
    assert response.status_code == 200 and response.is_json
    assert response.data.endswith(b"\n")
    with app.app_context():
        body = app.json.response({"b": "é", "a": 1}).get_data()
    # orjson's bytes (UTF-8, compact, sorted), not the standard library's "\\u00e9"
    assert body == '{"a":1,"b":"é"}\n'.encode()


def test_compact_separators_are_orjsons_output(providers):
    fast, flask = providers
    value = {"b": [1, 2.5, None], "a": "x"}
    assert fast.dumps(value, separators=(",", ":")) == '{"a":"x","b":[1,2.5,null]}'
    assert json.loads(flask.dumps(value, separators=(",", ":"))) == json.loads(fast.dumps(value))
