"""Audit trail API: filters, cursor pagination, CSV export, and provable rows.

The expected answer of each filter is worked out from the ledger entries
themselves (read back through ``/api/v1/ledger/entries``), not from the audit
rows under test. Inclusion proofs are checked with ``ledger.proofs`` against a
Merkle root computed here from the leaf hashes (RFC 9162 MTH, written out).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from factories import World
from ledger.errors import ProofVerificationError
from ledger.proofs import verify_inclusion

EVENTS = "/api/v1/audit/events"
CSV_COLUMNS = ["seq", "ts", "kind", "actor", "subject", "model", "version", "summary", "flagged",
               "leaf_hash"]
FORMULA_SUBJECTS = ["=SUM(A1:A9)", "+1+1", "-2-2", "@cmd", 'plain, "quoted" subject']


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 Merkle Tree Hash of a list of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def all_entries(world: World) -> list[dict]:
    """Every ledger entry through the API: canonical JSON plus leaf_hash, in seq order."""
    entries, start = [], 0
    while start is not None:
        page = world.client.get("/api/v1/ledger/entries", query_string={"from": start, "limit": 1000},
                                headers=world.auditor()).get_json()
        for item in page["entries"]:
            raw = base64.b64decode(item["canonical_b64"])
            entries.append({**json.loads(raw), "leaf_hash": item["leaf_hash"], "raw": raw})
        start = page["next_from"]
    return entries


def events(world: World, headers=None, **query) -> dict:
    response = world.client.get(EVENTS, query_string={"limit": 500, **query},
                                headers=headers or world.auditor())
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def trail(world):
    """A varied trail: two models, evidence, approvals, a revocation, formula-looking subjects."""
    world.token("audrey", "auditor")
    world.token("dave", "admin")
    world.registered_version()  # alice: dataset, dataset version, model, version
    world.dataset("claims", headers=world.author("eve"))
    world.model("fraud", risk_tier="limited", headers=world.author("eve"))
    world.version("fraud", "1", datasets=(("claims", "v1"),), headers=world.author("eve"))
    world.evidence("model_card", {"content": "# Credit"})
    world.evidence("model_card", {"content": "# Fraud"}, model="fraud", headers=world.author("eve"))
    world.version("credit-risk", "2")
    first = world.approve("bob", "privacy")
    world.approve("cid", "compliance")
    world.approve("bob", "privacy", model="fraud")
    world.client.post(f"/api/v1/models/credit-risk/versions/1/approvals/{first['approval_id']}/revoke",
                      json={"reason": "redo"}, headers=world.approver("bob", "privacy"))
    for subject in FORMULA_SUBJECTS:
        world.ledger.append("test.a_b.note", "@mallory", subject, {"note": subject})
    world.ledger.append("test.axb.note", "tester", "thing:1", {})
    return all_entries(world)


def test_every_entry_is_an_event_newest_first_with_its_leaf_hash(world, trail):
    page = events(world)
    assert page["next_cursor"] is None
    got = page["events"]
    assert [e["seq"] for e in got] == [e["seq"] for e in reversed(trail)]
    for event, entry in zip(got, reversed(trail)):
        assert (event["ts"], event["kind"], event["actor"], event["subject"]) == (
            entry["ts"], entry["kind"], entry["actor"], entry["subject"])
        assert event["leaf_hash"] == entry["leaf_hash"]
        assert event["leaf_hash"] == hashlib.sha256(b"\x00" + entry["raw"]).hexdigest()
        assert event["flagged"] is False
        assert event["proof"] == f"/api/v1/ledger/proofs/inclusion?seq={event['seq']}"
    by_kind = {e["kind"]: e for e in got}
    assert (by_kind["evidence.submitted"]["model"], by_kind["approval.revoked"]["version"]) == (
        "credit-risk", "1")
    assert by_kind["identity.token.created"]["model"] is None


def test_each_event_has_a_verifying_inclusion_proof(world, trail):
    leaves = [bytes.fromhex(e["leaf_hash"]) for e in trail]
    root = mth(leaves)
    for event in events(world)["events"]:
        response = world.client.get(event["proof"])  # proofs are public
        assert response.status_code == 200
        proof = response.get_json()
        assert proof["leaf_index"] == event["seq"]
        assert proof["tree_size"] == len(trail)
        assert proof["leaf_hash"] == event["leaf_hash"]
        assert bytes.fromhex(proof["root_hash"]) == root
        verify_inclusion(event["seq"], proof["tree_size"], bytes.fromhex(event["leaf_hash"]),
                         [bytes.fromhex(h) for h in proof["hashes"]], root)
    # and a proof does not verify another leaf
    proof = world.client.get("/api/v1/ledger/proofs/inclusion?seq=3").get_json()
    with pytest.raises(ProofVerificationError, match="root mismatch"):
        verify_inclusion(3, proof["tree_size"], leaves[4], [bytes.fromhex(h) for h in proof["hashes"]],
                         root)


def _seqs(page: dict) -> list[int]:
    return [e["seq"] for e in page["events"]]


def _expected(trail, keep) -> list[int]:
    return [e["seq"] for e in reversed(trail) if keep(e)]


def test_filters(world, trail):
    def about(model, version=None):
        def keep(e):
            subject = e["subject"]
            if version is not None:
                return subject == f"model:{model}@{version}" if model else (
                    subject.startswith("model:") and subject.endswith(f"@{version}"))
            return subject == f"model:{model}" or subject.startswith(f"model:{model}@")
        return keep

    cases = [
        ({"model": "credit-risk"}, about("credit-risk")),
        ({"model": "fraud"}, about("fraud")),
        ({"model": "credit-risk", "version": "1"}, about("credit-risk", "1")),
        ({"model": "credit-risk", "version": "2"}, about("credit-risk", "2")),
        ({"version": "1"}, about(None, "1")),
        ({"kind": "approval.decided"}, lambda e: e["kind"] == "approval.decided"),
        ({"kind": "approval.*"}, lambda e: e["kind"].startswith("approval.")),
        ({"kind": "model.*"}, lambda e: e["kind"].startswith("model.")),
        ({"kind": "identity.token.*"}, lambda e: e["kind"].startswith("identity.token.")),
        ({"kind": "test.a_b.note"}, lambda e: e["kind"] == "test.a_b.note"),
        # `_` is a LIKE wildcard: the prefix must not match test.axb.note
        ({"kind": "test.a_b.*"}, lambda e: e["kind"].startswith("test.a_b.")),
        ({"kind": "test.*"}, lambda e: e["kind"].startswith("test.")),
        ({"kind": "approval"}, lambda e: False),
        ({"actor": "bob"}, lambda e: e["actor"] == "bob"),
        ({"actor": "@mallory"}, lambda e: e["actor"] == "@mallory"),
        ({"actor": "eve", "kind": "model.*"},
         lambda e: e["actor"] == "eve" and e["kind"].startswith("model.")),
        ({"model": "credit-risk", "kind": "approval.*"},
         lambda e: about("credit-risk")(e) and e["kind"].startswith("approval.")),
        ({"flagged": "false"}, lambda e: True),  # nothing in this trail is flagged
        ({"flagged": "true"}, lambda e: False),
    ]
    for query, keep in cases:
        expected = _expected(trail, keep)
        assert _seqs(events(world, **query)) == expected, query
    # the cases are not vacuous
    assert len(_expected(trail, about("credit-risk", "1"))) == 5
    assert len(_expected(trail, lambda e: e["kind"].startswith("approval."))) == 4
    assert {e["kind"] for e in events(world, kind="test.a_b.*")["events"]} == {"test.a_b.note"}


def test_invalid_filters_are_422(world, trail):
    for query in ({"kind": "Approval"}, {"kind": "approval.**"}, {"kind": "*"}, {"model": "a b"},
                  {"flagged": "perhaps"}, {"limit": 0}, {"limit": 501}, {"format": "xml"},
                  {"kind": "test.a_*"}, {"since": "yesterday"}, {"since": "2024-01-01T00:00:00"},
                  {"until": "2024-13-01T00:00:00Z"}):
        response = world.client.get(EVENTS, query_string=query, headers=world.auditor())
        assert response.status_code == 422, (query, response.status_code)


def _shift(ts: str, hours: float = 0, micros: int = 0) -> str:
    """The same instant (plus ``micros``) written with a +hh:mm offset."""
    moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    moment += timedelta(microseconds=micros)
    return moment.astimezone(timezone(timedelta(hours=hours))).isoformat()


def test_since_is_inclusive_and_until_exclusive(world, trail):
    middle, late = trail[len(trail) // 3]["ts"], trail[2 * len(trail) // 3]["ts"]
    assert middle < late
    after_middle = _expected(trail, lambda e: e["ts"] >= middle)
    before_late = _expected(trail, lambda e: e["ts"] < late)
    between = _expected(trail, lambda e: middle <= e["ts"] < late)
    assert 0 < len(between) < len(after_middle) < len(trail)
    assert _seqs(events(world, since=middle)) == after_middle
    assert _seqs(events(world, until=late)) == before_late
    assert _seqs(events(world, since=middle, until=late)) == between
    # the same instants written in another offset mean the same
    assert _seqs(events(world, since=_shift(middle, 5.5), until=_shift(late, -3))) == between
    # one microsecond later excludes the event at `middle`
    assert _seqs(events(world, since=_shift(middle, micros=1))) == _expected(
        trail, lambda e: e["ts"] > middle)
    assert _seqs(events(world, since=middle, model="credit-risk")) == _expected(
        trail, lambda e: e["ts"] >= middle and e["subject"].startswith("model:credit-risk"))


def test_since_not_before_until_is_422(world, trail):
    ts = trail[5]["ts"]
    for since, until in ((ts, ts), (_shift(ts, micros=1), ts),
                         ("2030-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
                         (_shift(ts, 2), _shift(ts, -1))):  # equal instants, different offsets
        response = world.client.get(EVENTS, query_string={"since": since, "until": until},
                                    headers=world.auditor())
        assert response.status_code == 422, (since, until)
        assert "until" in response.get_json()["errors"]["query"]


def walk(world: World, cursor: str | None = None, **query) -> tuple[list[dict], int]:
    """Follow next_cursor (from ``cursor``) to the end; return (events, pages)."""
    collected, pages = [], 0
    while True:
        page = events(world, **query, **({"cursor": cursor} if cursor else {}))
        pages += 1
        collected.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return collected, pages


def test_cursor_pagination_has_no_duplicates_or_gaps(world, trail):
    everything = events(world)["events"]
    for limit in (1, 3, 4, len(trail) - 1, len(trail)):
        collected, pages = walk(world, limit=limit)
        assert collected == everything, limit
        assert pages == -(-len(trail) // limit)
    approvals, pages = walk(world, limit=1, kind="approval.*")
    assert approvals == events(world, kind="approval.*")["events"]
    assert pages == 4


def test_pages_stay_stable_while_entries_are_appended(world, trail):
    everything = events(world)["events"]
    first = events(world, limit=5)
    assert first["events"] == everything[:5]
    for i in range(3):
        world.ledger.append("test.note", "tester", f"late:{i}", {})
    rest, _pages = walk(world, limit=5, cursor=first["next_cursor"])
    assert first["events"] + rest == everything
    assert len(events(world)["events"]) == len(everything) + 3


def test_invalid_cursor_is_rejected(world, trail):
    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    for cursor in ("abc", "!!!", "%%", b64("x5"), b64("s-1"), b64("s1x"), b64("s" + "9" * 17),
                   "A" * 65, b64("s\u00e9")):
        response = world.client.get(EVENTS, query_string={"cursor": cursor}, headers=world.auditor())
        assert response.status_code in (400, 422), (cursor, response.status_code)
    # a well-formed cursor before the first entry is simply the end
    assert events(world, cursor=b64("s0")) == {"events": [], "next_cursor": None}
    assert _seqs(events(world, cursor=b64("s3"))) == [2, 1, 0]


def _csv(world: World, **query):
    response = world.client.get(EVENTS, query_string={"limit": 500, "format": "csv", **query},
                                headers=world.auditor())
    assert response.status_code == 200
    return response, list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))


def _cell(value) -> str:
    return "" if value is None else str(value)


def test_csv_export_has_the_same_rows_with_formulas_neutralised(world, trail):
    response, rows = _csv(world)
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "X-Next-Cursor" not in response.headers
    assert response.get_data(as_text=True).endswith("\r\n")
    assert rows[0] == CSV_COLUMNS
    expected = events(world)["events"]
    assert len(rows) == len(expected) + 1
    formula_rows = 0
    for row, event in zip(rows[1:], expected):
        assert len(row) == len(CSV_COLUMNS)
        cells = dict(zip(CSV_COLUMNS, row))
        for column in ("seq", "ts", "kind", "model", "version", "summary", "flagged", "leaf_hash"):
            assert cells[column] == _cell(event[column]), column
        if event["subject"] in FORMULA_SUBJECTS[:4]:
            formula_rows += 1
            assert cells["subject"] == "'" + event["subject"]
            assert cells["actor"] == "'@mallory"
        else:
            assert cells["subject"] == event["subject"]
            assert cells["actor"] == ("'@mallory" if event["actor"] == "@mallory" else event["actor"])
    assert formula_rows == 4
    assert not any(cell[:1] in ("=", "+", "-", "@") for row in rows for cell in row)


def test_csv_export_follows_filters_and_pages(world, trail):
    _response, rows = _csv(world, kind="approval.*")
    assert [int(r[0]) for r in rows[1:]] == _seqs(events(world, kind="approval.*"))
    response, rows = _csv(world, limit=2)
    assert [int(r[0]) for r in rows[1:]] == _seqs(events(world, limit=2))
    cursor = response.headers["X-Next-Cursor"]
    assert cursor == events(world, limit=2)["next_cursor"]
    _response, rows = _csv(world, limit=2, cursor=cursor)
    assert [int(r[0]) for r in rows[1:]] == _seqs(events(world))[2:4]
    _response, rows = _csv(world, actor="nobody")
    assert rows == [CSV_COLUMNS]


def test_only_auditors_and_admins_read_the_trail(world, trail):
    for headers in (world.auditor(), world.headers("dave", "admin")):
        assert world.client.get(EVENTS, headers=headers).status_code == 200
        assert world.client.get(EVENTS, query_string={"format": "csv"}, headers=headers).status_code == 200
    for headers in (world.author(), world.approver("bob", "privacy"), world.headers("dan", "deployer")):
        for query in ({}, {"format": "csv"}):
            response = world.client.get(EVENTS, query_string=query, headers=headers)
            assert response.status_code == 403, headers
            assert "one of auditor, admin" in response.get_json()["message"]
    assert world.client.get(EVENTS).status_code == 401
    assert world.client.get(EVENTS, query_string={"format": "csv"}).status_code == 401
