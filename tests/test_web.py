"""The web pages (``/ui/``): sign-in, sessions, CSRF, roles, hostile input,
escaping, security headers, and break-glass overrides flagged on every page.

All through the Flask test client on a real database; data is written through
the JSON API (``policy_fixtures.web_scenarios``), the pages only read.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import os
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from markupsafe import escape

from governance.audit import trail
from governance.identity import tokens
from governance.web import audit as web_audit
from governance.web import keys
from governance.web.errors import SessionKeyError
from governance.web.auth import LOGIN_FAILED
from governance.web.rendering import SECURITY_HEADERS
from policy_fixtures.gate_scenarios import Gate
from policy_fixtures.web_scenarios import (
    HOSTILE, JUSTIFICATION, break_glass, csrf_of, expired_override, rolled_back, sign_in,
)

PAGES = ("/ui/audit", "/ui/overrides", "/ui/deployments")


def esc(value: str) -> str:
    """``value`` as the pages' auto-escaping writes it."""
    return str(escape(value))


ESCAPED = esc(HOSTILE)


@pytest.fixture
def gate(world) -> Gate:
    return Gate(world)


@pytest.fixture
def scenario(gate) -> dict:
    return break_glass(gate)


@pytest.fixture
def auditor(world, app):
    """A test client signed in as audrey (auditor)."""
    client = app.test_client()
    assert sign_in(client, world.token("audrey", "auditor")).status_code == 302
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def row(page: str, row_id: str) -> str:
    """The <tr> with ``id=row_id`` (its opening tag and cells)."""
    match = re.search(rf'<tr id="{re.escape(row_id)}"[^>]*>.*?</tr>', page, re.S)
    assert match, f"no row {row_id}"
    return match.group(0)


def row_class(page: str, row_id: str) -> set[str]:
    return set(re.search(r'class="([^"]*)"', row(page, row_id)).group(1).split())


def session_of(app, client) -> dict:
    """The decoded session cookie of ``client`` ({} if it has none)."""
    cookie = client.get_cookie("mlg_session", path="/ui")
    if cookie is None:
        return {}
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


# -- signing in and out ---------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES + ("/ui/decisions/dc-1", "/ui/entries/0", "/ui/", "/ui/nowhere"))
def test_every_page_sends_a_signed_out_visitor_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/ui/login")


def test_signing_in_with_a_token_opens_the_audit_trail(app, world):
    client = app.test_client()
    response = sign_in(client, world.token("audrey", "auditor"))
    assert response.status_code == 302 and response.headers["Location"] == "/ui/"
    page = client.get("/ui/", follow_redirects=True)
    assert page.request.path == "/ui/audit"
    assert '<strong class="principal">audrey</strong>' in text(page)
    assert "created for audrey with roles auditor" in text(page)


def test_signing_in_returns_to_the_page_asked_for_but_never_off_site(app, world):
    client = app.test_client()
    token = world.token("audrey", "auditor")
    assert sign_in(client, token, "/ui/overrides?model=x").headers["Location"] == "/ui/overrides?model=x"
    for target in ("//evil.example/ui/", "https://evil.example/ui/", "/api/v1/models", "/ui/\\evil"):
        other = app.test_client()
        assert sign_in(other, token, target).headers["Location"] == "/ui/", target


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),      # wrong secret
    lambda t: "mlg_0123456789abcdef_" + t.split("_", 2)[2],  # unknown token id
    lambda t: "not a token",                                 # malformed
    lambda t: "",                                            # empty
    lambda t: t * 50,                                        # far too long
], ids=["wrong-secret", "unknown-id", "malformed", "empty", "too-long"])
def test_a_failed_sign_in_is_401_and_says_nothing_about_why(app, world, mangle):
    client = app.test_client()
    response = sign_in(client, mangle(world.token("audrey", "auditor")))
    assert response.status_code == 401
    body = text(response)
    assert LOGIN_FAILED in body
    for detail in ("malformed", "unknown", "revoked", "expired", "secret"):
        assert detail not in body.lower()
    assert "token_id" not in session_of(app, client)
    assert client.get("/ui/audit").status_code == 302


def test_a_revoked_token_cannot_sign_in_and_gets_the_same_answer(app, world):
    token = world.token("audrey", "auditor")
    tokens.revoke_token(world.ledger, "root", token.split("_")[1])
    response = sign_in(app.test_client(), token)
    assert response.status_code == 401 and LOGIN_FAILED in text(response)
    assert "revoked" not in text(response)


def test_revoking_the_token_ends_the_session_on_the_next_page(app, world, auditor):
    assert auditor.get("/ui/audit").status_code == 200
    tokens.revoke_token(world.ledger, "root", world.token("audrey", "auditor").split("_")[1])
    response = auditor.get("/ui/audit")
    assert response.status_code == 302 and response.headers["Location"] == "/ui/login"
    assert "token_id" not in session_of(app, auditor)
    login = auditor.get("/ui/login")
    assert "You were signed out: this API token was revoked." in text(login)
    assert auditor.get("/ui/overrides").status_code == 302


def test_signing_out_ends_the_session(app, auditor):
    page = text(auditor.get("/ui/audit"))
    response = auditor.post("/ui/logout", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/ui/login"
    assert "You are signed out." in text(auditor.get("/ui/login"))
    for path in PAGES:
        assert auditor.get(path).status_code == 302


def test_the_session_cookie_holds_the_token_id_never_the_secret(app, world, auditor):
    token = world.token("audrey", "auditor")
    token_id, secret = token[len("mlg_"):].split("_", 1)
    cookie = auditor.get_cookie("mlg_session", path="/ui")
    assert secret not in cookie.value and token not in cookie.value
    stored = session_of(app, auditor)
    assert stored["token_id"] == token_id and stored["principal"] == "audrey"
    assert set(stored) <= {"token_id", "principal", "csrf", "_permanent", "_flashes"}
    assert secret not in repr(stored)
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    assert cookie.path == "/ui"


@pytest.mark.parametrize("path, opened", [
    ("/ui", True), ("/ui/audit", True), ("/ui/login", True),
    ("/api/v1/models", False), ("/uix/audit", False), ("/healthz", False), ("/", False)])
def test_a_session_is_opened_only_under_the_cookies_path(app, auditor, path, opened):
    """Outside /ui (where no browser sends the cookie) the session is the null one,
    even when a client sends a valid cookie there, and nothing is written back."""
    cookie = auditor.get_cookie("mlg_session", path="/ui")
    with app.test_request_context(path, headers={"Cookie": f"mlg_session={cookie.value}"}):
        from flask import request
        session = app.session_interface.open_session(app, request)
        assert app.session_interface.is_null_session(session) is not opened
        assert (session.get("principal") == "audrey") is opened
    response = app.test_client().get("/api/v1/models", headers={"Cookie": f"mlg_session={cookie.value}"})
    assert response.status_code == 401  # the cookie is no credential for the API
    assert "Set-Cookie" not in response.headers


def test_the_cookie_is_secure_when_configured(make_app, world):
    secure = make_app(SESSION_COOKIE_SECURE=True)
    World = type(world)
    client = secure.test_client()
    sign_in(client, World(secure).token("audrey", "auditor"))
    assert client.get_cookie("mlg_session", path="/ui").secure


# -- CSRF ---------------------------------------------------------------------------------

@pytest.mark.parametrize("csrf", [None, "", "forged-token-value"], ids=["missing", "empty", "wrong"])
def test_sign_in_without_the_forms_csrf_token_is_refused(app, world, csrf):
    client = app.test_client()
    client.get("/ui/login")
    data = {"token": world.token("audrey", "auditor")}
    if csrf is not None:
        data["csrf_token"] = csrf
    response = client.post("/ui/login", data=data)
    assert response.status_code == 403
    assert "the form has expired or did not come from this site" in text(response)
    assert "token_id" not in session_of(app, client)


def test_sign_out_without_the_csrf_token_is_refused_and_keeps_the_session(auditor):
    response = auditor.post("/ui/logout", data={"csrf_token": "forged"})
    assert response.status_code == 403
    assert auditor.get("/ui/audit").status_code == 200


def test_a_csrf_token_from_another_session_is_refused(app, world, auditor):
    stranger = app.test_client()
    foreign = csrf_of(text(stranger.get("/ui/login")))
    assert auditor.post("/ui/logout", data={"csrf_token": foreign}).status_code == 403


# -- roles ----------------------------------------------------------------------------------

def test_pages_need_the_roles_their_api_needs(app, world, scenario):
    deployer = app.test_client()
    sign_in(deployer, world.token("dan", "deployer"))
    for path in ("/ui/audit", f"/ui/entries/{scenario['forced']['seq']}"):
        response = deployer.get(path)
        assert response.status_code == 403, path
        assert response.mimetype == "text/html"
        assert "dan lacks the role this page needs: one of auditor, admin" in text(response)
    for path in ("/ui/overrides", "/ui/deployments", f"/ui/decisions/{scenario['forced']['decision_id']}"):
        assert deployer.get(path).status_code == 200, path
    assert deployer.get("/ui/").headers["Location"] == "/ui/deployments"


# -- bad input --------------------------------------------------------------------------------

HOSTILE_QUERIES = [
    ("/ui/audit", "limit=-1", "limit"),
    ("/ui/audit", "limit=0", "limit"),
    ("/ui/audit", "limit=501", "limit"),
    ("/ui/audit", "limit=1e3", "limit"),
    ("/ui/audit", "limit=" + "9" * 5000, "limit"),
    ("/ui/audit", "cursor=bm90LWEtY3Vyc29y", "cursor"),
    ("/ui/audit", "cursor=" + "A" * 5000, "cursor"),
    ("/ui/audit", "since=yesterday", "since"),
    ("/ui/audit", "since=2026-01-01T00:00:00", "since"),  # no time zone
    ("/ui/audit", "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
    ("/ui/audit", "model=%3Cscript%3E", "model"),
    ("/ui/audit", "model=" + "m" * 100_000, "model"),
    ("/ui/audit", "model=%ff%fe%80", "model"),  # not UTF-8
    ("/ui/audit", "kind=DROP%20TABLE", "kind"),
    ("/ui/audit", "flagged=yes", "flagged"),
    ("/ui/audit", "format=csv", "format"),
    ("/ui/audit", "modle=credit-risk", "modle"),
    ("/ui/audit", "model=a&model=b", "model"),
    ("/ui/audit", "actor=%00x", "control character"),
    ("/ui/audit", "after=bm90LWEtY3Vyc29y", "after"),
    ("/ui/audit", "after=" + "A" * 5000, "after"),
    ("/ui/audit", "after=czE&cursor=czE", "not both"),
    ("/ui/audit", "after=czE&after=czI", "after"),
    ("/ui/audit.csv", "limit=5", "limit"),
    ("/ui/audit.csv", "after=czE", "after"),
    ("/ui/audit.csv", "format=json", "format"),
    ("/ui/audit.csv", "cursor=bm90LWEtY3Vyc29y", "cursor"),
    ("/ui/audit.csv", "since=yesterday", "since"),
    ("/ui/audit.csv", "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
    ("/ui/audit.csv", "model=%3Cscript%3E", "model"),
    ("/ui/audit.csv", "model=a&model=b", "model"),
    ("/ui/audit.csv", "model=%ff%fe%80", "model"),
    ("/ui/audit.csv", "kind=DROP%20TABLE", "kind"),
    ("/ui/audit.csv", "flagged=yes", "flagged"),
    ("/ui/audit.csv", "actor=%00x", "control character"),
    ("/ui/deployments", "limit=0", "limit"),
    ("/ui/deployments", "before_seq=-5", "before_seq"),
    ("/ui/deployments", "environment=PROD", "environment"),
    ("/ui/overrides", "model=..%2F..%2Fetc", "model"),
]


@pytest.mark.parametrize("path, query, named", HOSTILE_QUERIES,
                         ids=[f"{p.rsplit('/', 1)[1]}-{q[:24]}" for p, q, _ in HOSTILE_QUERIES])
def test_hostile_query_parameters_are_a_400_page(auditor, world, path, query, named):
    size = world.ledger.size()
    response = auditor.get(f"{path}?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    body = text(response)
    assert "400 Bad Request" in body and named in body
    assert "Traceback" not in body and "<script>" not in body
    assert world.ledger.size() == size


def test_empty_form_fields_count_as_absent(auditor):
    response = auditor.get("/ui/audit?model=&version=&kind=&actor=&since=&until=&flagged=&limit=")
    assert response.status_code == 200
    assert "created for audrey with roles auditor" in text(response)


@pytest.mark.parametrize("path", ["/ui/decisions/dc-999999", "/ui/decisions/nonsense",
                                  "/ui/decisions/" + "x" * 3000, "/ui/entries/999999",
                                  "/ui/entries/99999999999999999999999", "/ui/no-such-page"])
def test_unknown_ids_and_pages_are_a_404_page(auditor, path):
    response = auditor.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html" and "404 Not Found" in text(response)


def test_api_errors_stay_json(auditor):
    response = auditor.get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.get_json()["code"] == 404
    control = auditor.get("/api/v1/models?name=%00")
    assert control.status_code == 400
    assert control.get_json()["message"] == "the URL contains a control character"


# -- break-glass overrides, flagged everywhere ---------------------------------------------------

def test_the_audit_trail_flags_every_entry_made_by_or_through_an_override(auditor, scenario):
    page = text(auditor.get("/ui/audit"))
    flagged = ("requested", "confirmed", "forced", "deployment")
    for name in flagged:
        entry_row = row(page, f"seq-{scenario[name]['seq']}")
        assert "flagged" in row_class(page, f"seq-{scenario[name]['seq']}"), name
        assert "BREAK-GLASS OVERRIDE" in entry_row, name
        assert scenario["override_id"] in entry_row
        assert esc(JUSTIFICATION) in entry_row
        assert f"expires {scenario['requested']['expires_at']}" in entry_row
        assert "EXPIRED" not in entry_row
    denied = row(page, f"seq-{scenario['denied']['seq']}")
    assert "flagged" not in row_class(page, f"seq-{scenario['denied']['seq']}")
    assert "BREAK-GLASS" not in denied
    assert page.count('class="badge override"') == len(flagged)


def test_an_expired_override_is_marked_expired(auditor, gate, scenario):
    expired = expired_override(gate)
    page = text(auditor.get("/ui/audit"))
    expired_row = row(page, f"seq-{expired['seq']}")
    assert "BREAK-GLASS OVERRIDE" in expired_row and "EXPIRED" in expired_row and "(expired)" in expired_row
    assert "EXPIRED" not in row(page, f"seq-{scenario['requested']['seq']}")
    overrides = text(auditor.get("/ui/overrides"))
    assert "status-expired" in row(overrides, expired["override_id"])
    assert "expired" in row_class(overrides, expired["override_id"])
    assert "status-expired" not in row(overrides, scenario["override_id"])


def test_the_overrides_page_lists_each_override_with_status_and_entries(auditor, gate, scenario):
    gate.world.version("credit-risk", "2")
    pending = gate.client.post("/api/v1/deployments/overrides", json={
        "model": "credit-risk", "version": "2", "environment": "prod",
        "justification": "waiting for a second person to confirm"},
        headers=gate.world.headers("root", "admin")).get_json()
    page = text(auditor.get("/ui/overrides"))
    used = row(page, scenario["override_id"])
    for value in ("credit-risk", "prod", "root", "olga", esc(JUSTIFICATION),
                  scenario["requested"]["requested_at"], scenario["requested"]["expires_at"],
                  "BREAK-GLASS OVERRIDE"):
        assert value in used, value
    assert re.findall(r'class="badge status-(\w+)"', used) == ["used", "active"]
    for seq in (scenario["requested"]["seq"], scenario["confirmed"]["seq"], scenario["deployment"]["seq"]):
        assert f'href="/ui/entries/{seq}"' in used
    assert f'href="/ui/decisions/{scenario["forced"]["decision_id"]}"' in used
    assert "/ui/audit?model=credit-risk&amp;version=1&amp;flagged=true" in used
    assert re.findall(r'class="badge status-(\w+)"', row(page, pending["override_id"])) == ["pending"]
    assert pending["override_id"] not in text(auditor.get("/ui/overrides?model=churn"))


def test_the_decision_page_shows_rules_digests_and_the_override(auditor, scenario):
    page = text(auditor.get(f"/ui/decisions/{scenario['forced']['decision_id']}"))
    assert '<span class="decision decision-allow">ALLOW</span>' in page
    assert "BREAK-GLASS OVERRIDE" in page and esc(JUSTIFICATION) in page
    assert scenario["forced"]["policy_digest"] in page
    assert f'href="/ui/entries/{scenario["forced"]["seq"]}"' in page
    assert f"/api/v1/ledger/entries/{scenario['forced']['seq']}" in page
    for result in scenario["forced"]["results"]:
        assert esc(result["message"]) in page
    assert re.search(r'<tr class="result failed">\s*<td>privacy.dpia-approved</td>', page)
    assert re.search(r'<tr class="result passed flagged">\s*<td>break-glass.override</td>', page)

    denied = text(auditor.get(f"/ui/decisions/{scenario['denied']['decision_id']}"))
    assert '<span class="decision decision-deny">DENY</span>' in denied
    assert "BREAK-GLASS" not in denied


def test_the_deployments_page_flags_override_deployments_and_shows_rollbacks(auditor, gate, scenario):
    rollback = rolled_back(gate)
    page = text(auditor.get("/ui/deployments"))
    forced = row(page, scenario["deployment"]["deployment_id"])
    assert "flagged" in row_class(page, scenario["deployment"]["deployment_id"])
    assert "BREAK-GLASS OVERRIDE" in forced and scenario["override_id"] in forced
    back = row(page, rollback["rollback"]["deployment_id"])
    assert "ROLLBACK" in back and rollback["second"]["deployment_id"] in back
    assert f"latency doubled {ESCAPED}" in back
    assert "flagged" not in row_class(page, rollback["rollback"]["deployment_id"])
    assert f"rolled back by {rollback['rollback']['deployment_id']}" in row(
        page, rollback["second"]["deployment_id"])
    churn = text(auditor.get("/ui/deployments?model=churn&environment=prod"))
    assert scenario["deployment"]["deployment_id"] not in churn
    assert rollback["first"]["deployment_id"] in churn


def test_deployments_page_older_link(auditor, gate, scenario):
    rollback = rolled_back(gate)
    first = text(auditor.get("/ui/deployments?limit=2"))
    older = html.unescape(re.search(r'class="older" href="([^"]+)"', first).group(1))
    assert f"before_seq={rollback['second']['seq']}" in older
    rest = text(auditor.get(older))
    assert rollback["first"]["deployment_id"] in rest and rollback["rollback"]["deployment_id"] not in rest


# -- the audit trail's filters and pages ------------------------------------------------------------

def seqs(page: str) -> list[int]:
    """The seqs of the audit rows of a page, in order."""
    return [int(s) for s in re.findall(r'<tr id="seq-(\d+)"', page)]


def pager(page: str) -> dict[str, str]:
    """The pager's links of an audit page by class (newest, newer, older), unescaped."""
    return {m.group(1): html.unescape(m.group(2))
            for m in re.finditer(r'<a (?:rel="\w+" )?class="(newest|newer|older)" href="([^"]+)"', page)}


def api_seqs(world, **query) -> list[int]:
    """Every seq the audit API lists for ``query``, newest first (all its pages)."""
    found, cursor = [], None
    while True:
        page = world.client.get("/api/v1/audit/events", headers=world.auditor(), query_string={
            **query, "limit": 500, **({"cursor": cursor} if cursor else {})}).get_json()
        found += [e["seq"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def walk(client, url: str, direction: str) -> tuple[list[list[int]], str]:
    """Follow the ``direction`` links from ``url`` to the end: the seqs of each page, and the last page."""
    pages = []
    while True:
        page = text(client.get(url))
        pages.append(seqs(page))
        links = pager(page)
        for link in links.values():  # every link keeps the filters and the page size
            query = parse_qs(urlsplit(link).query)
            assert query["kind"] == ["test.*"] and query["limit"] == ["7"], link
        if direction not in links:
            return pages, page
        url = links[direction]


def test_the_audit_pages_walk_the_whole_trail_both_ways_keeping_the_filters(auditor, world, fill):
    fill(30, kind="test.note")
    expected = api_seqs(world, kind="test.*")
    assert len(expected) == 30
    first = text(auditor.get("/ui/audit?kind=test.*&limit=7"))
    assert set(pager(first)) == {"older"}  # the newest page has nothing newer
    older, last = walk(auditor, "/ui/audit?kind=test.*&limit=7", "older")
    assert [len(p) for p in older] == [7, 7, 7, 7, 2]
    assert [seq for p in older for seq in p] == expected  # no gap, no repeat
    assert set(pager(last)) == {"newest", "newer"}  # the oldest page has nothing older
    newer, top = walk(auditor, pager(last)["newer"], "newer")
    assert newer == older[-2::-1]  # the same pages, back to the newest
    assert set(pager(top)) == {"newest", "older"}
    assert "older" in pager(text(auditor.get(pager(top)["newest"])))


def test_entries_appended_while_paging_are_neither_repeated_nor_skipped(auditor, world, fill):
    fill(20, kind="test.note")
    before = api_seqs(world, kind="test.*")
    page = text(auditor.get("/ui/audit?kind=test.*&limit=7"))
    seen = seqs(page)
    fill(5, kind="test.later")  # newer than everything seen
    pages, last = walk(auditor, pager(page)["older"], "older")
    seen += [seq for p in pages for seq in p]
    assert seen == before
    newer, top = walk(auditor, pager(last)["newer"], "newer")
    assert sorted(set(seq for p in newer for seq in p) | set(seqs(last))) == sorted(
        api_seqs(world, kind="test.*"))


def test_the_audit_page_shows_50_events_by_default_and_up_to_500(auditor, world, fill):
    fill(620, kind="test.note")
    page = text(auditor.get("/ui/audit"))
    assert len(seqs(page)) == 50 and "50 per page" in page
    assert seqs(page) == api_seqs(world)[:50]
    assert len(seqs(text(auditor.get("/ui/audit?limit=500")))) == 500
    assert auditor.get("/ui/audit?limit=501").status_code == 400


def test_the_audit_filters_match_the_api(auditor, scenario):
    page = text(auditor.get("/ui/audit?kind=deployment.override.*&actor=olga"))
    assert seqs(page) == [scenario["confirmed"]["seq"]]
    flagged = text(auditor.get("/ui/audit?flagged=true"))
    assert len(seqs(flagged)) == 4
    assert 'value="true" selected' in flagged
    none = text(auditor.get("/ui/audit?since=2099-01-01T00:00:00Z"))
    assert "No events match." in none


def test_each_audit_row_shows_its_leaf_hash_and_links_to_its_entry_and_proof(app, auditor, world, scenario):
    page = text(auditor.get("/ui/audit?limit=500"))
    events = world.client.get("/api/v1/audit/events?limit=500", headers=world.auditor()).get_json()["events"]
    assert seqs(page) == [e["seq"] for e in events]
    anonymous = app.test_client()
    for event in events:
        seq, leaf = event["seq"], event["leaf_hash"]
        cells = row(page, f"seq-{seq}")
        # the whole hash, in the text (to copy) and the title; the stylesheet shows its start
        assert f'<code class="leaf-hash" title="{leaf}">{leaf}</code>' in cells
        assert f'<a class="entry-link" href="/ui/entries/{seq}">' in cells
        proof_link = re.search(r'<a class="proof-link" href="([^"]+)"', cells).group(1)
        assert proof_link == f"/api/v1/ledger/proofs/inclusion?seq={seq}"
        # the hash is the entry's, and the proof (public: no token) proves that leaf
        assert hashlib.sha256(b"\x00" + world.ledger.entry(seq).canonical).hexdigest() == leaf
        proof = anonymous.get(proof_link)
        assert proof.status_code == 200
        assert (proof.get_json()["leaf_index"], proof.get_json()["leaf_hash"]) == (seq, leaf)
    entry = text(auditor.get(f"/ui/entries/{events[0]['seq']}"))
    assert events[0]["leaf_hash"] in entry


def test_the_entry_page_shows_the_stored_entry(auditor, scenario):
    page = text(auditor.get(f"/ui/entries/{scenario['requested']['seq']}"))
    assert "deployment.override.requested" in page
    assert f"/api/v1/ledger/proofs/inclusion?seq={scenario['requested']['seq']}" in page
    assert "&lt;script&gt;alert(" in page and "<script>" not in page


# -- the audit trail as CSV ------------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("https://evil.example","x")', "+1+1", "-2-2", "@SUM(A1:A9)"]


@pytest.fixture
def formulas(world):
    """Entries whose actor and subjects look like spreadsheet formulas."""
    for subject in FORMULAS:
        world.ledger.append("test.note", "@mallory", subject, {"note": subject})


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text(response), newline="")))


@pytest.mark.parametrize("query", [
    {}, {"model": "credit-risk"}, {"kind": "deployment.*"}, {"flagged": "true"}, {"actor": "@mallory"},
    {"model": "credit-risk", "version": "1", "flagged": "false"}, {"kind": "test.note", "actor": "@mallory"},
    {"since": "2000-01-01T00:00:00Z", "until": "2099-01-01T00:00:00+02:00"}, {"model": "nobody"},
], ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()) or "all")
def test_the_audit_csv_is_the_apis_csv_of_the_whole_filtered_trail(auditor, world, scenario, formulas, query):
    response = auditor.get("/ui/audit.csv", query_string=query)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit-events.csv"'
    assert "X-Next-Cursor" not in response.headers
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    api = world.client.get("/api/v1/audit/events", query_string={**query, "format": "csv", "limit": 500},
                           headers=world.auditor())
    assert response.get_data() == api.get_data()  # the same columns, rows and neutralised cells
    rows = csv_rows(response)
    assert rows[0] == list(trail.CSV_COLUMNS)
    assert [int(r[0]) for r in rows[1:]] == api_seqs(world, **query)


def test_the_audit_csv_neutralises_formulas(auditor, formulas):
    rows = csv_rows(auditor.get("/ui/audit.csv?actor=@mallory"))
    cells = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert [c["subject"] for c in cells] == ["'" + f for f in reversed(FORMULAS)]
    assert {c["actor"] for c in cells} == {"'@mallory"}
    assert not any(cell[:1] in ("=", "+", "-", "@") for r in rows for cell in r)


def test_the_audit_page_links_the_csv_of_its_filters_whatever_the_page(auditor, world, scenario):
    page = text(auditor.get("/ui/audit?model=credit-risk&kind=deployment.*&flagged=true&limit=2"))
    assert "at most 100,000 rows" in page
    link = html.unescape(re.search(r'<a class="csv" href="([^"]+)"', page).group(1))
    assert urlsplit(link).path == "/ui/audit.csv"
    assert parse_qs(urlsplit(link).query) == {"model": ["credit-risk"], "kind": ["deployment.*"],
                                              "flagged": ["true"]}
    older = text(auditor.get(pager(page)["older"]))
    assert html.unescape(re.search(r'<a class="csv" href="([^"]+)"', older).group(1)) == link
    rows = csv_rows(auditor.get(link))
    assert [int(r[0]) for r in rows[1:]] == api_seqs(world, model="credit-risk", kind="deployment.*",
                                                     flagged="true")
    assert len(rows) - 1 > 2  # the whole filtered trail, not the page shown


def test_a_download_streams_chunks_up_to_its_bound_and_says_how_to_go_on(auditor, world, fill, monkeypatch):
    monkeypatch.setattr(web_audit, "EXPORT_MAX_ROWS", 10)
    monkeypatch.setattr(web_audit, "EXPORT_CHUNK", 3)
    fill(20, kind="test.note")
    expected = api_seqs(world, kind="test.*")
    first = auditor.get("/ui/audit.csv?kind=test.*")
    assert first.is_streamed
    assert first.headers["Content-Disposition"] == 'attachment; filename="audit-events-newest-10.csv"'
    rows = csv_rows(first)
    assert rows[0] == list(trail.CSV_COLUMNS) and [int(r[0]) for r in rows[1:]] == expected[:10]
    rest = auditor.get("/ui/audit.csv", query_string={"kind": "test.*", "cursor": first.headers["X-Next-Cursor"]})
    assert [int(r[0]) for r in csv_rows(rest)[1:]] == expected[10:]  # exactly the bound: complete
    assert "X-Next-Cursor" not in rest.headers
    assert rest.headers["Content-Disposition"] == 'attachment; filename="audit-events.csv"'
    assert csv_rows(auditor.get("/ui/audit.csv?kind=nothing.*")) == [list(trail.CSV_COLUMNS)]


def test_entries_appended_during_a_download_neither_enter_nor_shift_it(auditor, world, fill, monkeypatch):
    monkeypatch.setattr(web_audit, "EXPORT_CHUNK", 3)
    fill(10, kind="test.note")
    expected = world.client.get("/api/v1/audit/events?kind=test.*&format=csv",
                                headers=world.auditor()).get_data()
    response = auditor.get("/ui/audit.csv?kind=test.*", buffered=False)
    chunks = iter(response.response)
    received = next(chunks)
    fill(4, kind="test.later")
    received += b"".join(chunks)
    response.close()
    assert received == expected


@pytest.mark.parametrize("roles, status", [
    (("auditor",), 200), (("admin",), 200), (("deployer",), 403), (("author",), 403),
    (("approver:privacy",), 403)])
def test_the_audit_csv_needs_the_roles_of_the_api(app, world, roles, status):
    client = app.test_client()
    sign_in(client, world.token(f"person-{roles[0].replace(':', '-')}", *roles))
    response = client.get("/ui/audit.csv")
    api = world.client.get("/api/v1/audit/events?format=csv", headers=world.headers(
        f"person-{roles[0].replace(':', '-')}", *roles))
    assert response.status_code == api.status_code == status
    if status == 403:
        assert response.mimetype == "text/html"
        assert "lacks the role this page needs: one of auditor, admin" in text(response)


def test_the_audit_csv_sends_a_signed_out_visitor_to_sign_in(client):
    response = client.get("/ui/audit.csv?model=credit-risk")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/login?next=/ui/audit.csv?model%3Dcredit-risk"


# -- escaping and headers ------------------------------------------------------------------------------

def test_hostile_text_is_shown_as_text_on_every_page(auditor, gate, scenario):
    rolled_back(gate)
    pages = ["/ui/audit", "/ui/overrides", "/ui/deployments",
             f"/ui/decisions/{scenario['forced']['decision_id']}",
             f"/ui/entries/{scenario['requested']['seq']}",
             "/ui/audit?actor=" + HOSTILE]
    for path in pages:
        body = text(auditor.get(path, query_string=None))
        assert "<script>" not in body, path
        assert "&lt;script&gt;" in body, path


@pytest.mark.parametrize("path", ["/ui/login", "/ui/audit", "/ui/overrides", "/ui/deployments",
                                  "/ui/decisions/dc-1", "/ui/audit?limit=-1", "/ui/static/web.css",
                                  "/ui/nowhere"])
def test_every_response_under_ui_sends_the_security_headers(auditor, path):
    with auditor.get(path) as response:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)


def test_signed_out_redirects_send_the_security_headers_too(client):
    response = client.get("/ui/audit")
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == "default-src 'self'"


def test_pages_have_no_inline_script_or_style(auditor, gate, scenario):
    # default-src 'self' would block them; the pages must not need any
    for path in ("/ui/audit", "/ui/overrides", "/ui/deployments",
                 f"/ui/decisions/{scenario['forced']['decision_id']}", "/ui/login"):
        body = text(auditor.get(path))
        assert not re.search(r"<script|<style|\sstyle=|\son\w+=", body), path


def test_browsing_never_appends_to_the_ledger(auditor, world, gate, scenario):
    size = world.ledger.size()
    older = pager(text(auditor.get("/ui/audit?limit=5")))["older"]
    newer = pager(text(auditor.get(older)))["newer"]
    for path in ("/ui/audit", "/ui/overrides", "/ui/deployments", "/ui/audit?flagged=true", older, newer,
                 "/ui/audit.csv", "/ui/audit.csv?flagged=true",
                 f"/ui/decisions/{scenario['forced']['decision_id']}", "/ui/entries/0"):
        assert auditor.get(path).status_code == 200, path
    assert world.ledger.size() == size


# -- the session key --------------------------------------------------------------------------------------

def test_the_session_key_file_is_made_once_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / "web-session.key"
    key = keys.load_or_create(path)
    assert len(key) == keys.KEY_BYTES
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert keys.load_or_create(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["web-session.key"]  # no temporary left


def test_workers_starting_together_share_one_session_key(tmp_path):
    path = tmp_path / "web-session.key"
    barrier = threading.Barrier(8)
    found = []

    def start():
        barrier.wait()
        found.append(keys.load_or_create(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1


def test_a_short_session_key_file_is_refused(tmp_path):
    path = tmp_path / "web-session.key"
    path.write_bytes(b"short")
    with pytest.raises(SessionKeyError, match=r"holds 5 bytes; at least 32 are needed"):
        keys.load_or_create(path)


def test_secret_key_from_the_config_wins_over_the_file(make_app, instance):
    app = make_app(SECRET_KEY="configured-secret-key-for-this-test")
    assert app.config["SECRET_KEY"] == "configured-secret-key-for-this-test"
    assert not (instance / "web-session.key").exists()
    default = make_app()
    assert default.config["SECRET_KEY"] == (instance / "web-session.key").read_bytes()
