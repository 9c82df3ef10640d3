"""The web pages in a real browser: sign in by typing a token, find the
break-glass override flagged, filter, page back, open a decision, sign out —
and the same with JavaScript switched off.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from policy_fixtures.gate_scenarios import Gate
from policy_fixtures.web_scenarios import break_glass, rolled_back


@pytest.fixture
def seeded(world) -> dict:
    """A break-glass deployment of credit-risk, a rolled-back churn, and an auditor's token."""
    gate = Gate(world)
    scenario = break_glass(gate)
    scenario["rollback"] = rolled_back(gate)
    scenario["token"] = world.token("audrey", "auditor")
    return scenario


@pytest.fixture
def csp_violations(page) -> list[str]:
    """Console messages about blocked content (the pages must need nothing CSP blocks)."""
    messages = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    return messages


def sign_in(page, base: str, token: str, start: str = "/ui/audit") -> None:
    page.goto(base + start)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API token").press_sequentially(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".principal")).to_have_text("audrey")


def test_an_auditor_finds_the_override_flagged_and_opens_its_decision(page, live_app, seeded,
                                                                       csp_violations):
    sign_in(page, live_app, seeded["token"])
    expect(page).to_have_url(live_app + "/ui/audit")
    for name in ("requested", "confirmed", "forced", "deployment"):
        row = page.locator(f"#seq-{seeded[name]['seq']}")
        expect(row).to_have_class(re.compile(r"\bflagged\b"))
        expect(row.locator(".badge.override")).to_have_text("BREAK-GLASS OVERRIDE")
        expect(row.locator(".badge.override")).to_be_visible()
        expect(row).to_contain_text("INC-4711")
    plain = page.locator(f"#seq-{seeded['denied']['seq']}")
    expect(plain).not_to_have_class(re.compile(r"\bflagged\b"))
    # the stylesheet loaded (CSP allows 'self'): flagged rows look different
    colours = [page.locator(f"#seq-{seeded[n]['seq']} td").first.evaluate(
        "cell => getComputedStyle(cell).backgroundColor") for n in ("forced", "denied")]
    assert colours[0] != colours[1], colours

    page.locator(f"#seq-{seeded['forced']['seq']} a", has_text="deployment.decision.recorded").click()
    expect(page).to_have_url(live_app + f"/ui/decisions/{seeded['forced']['decision_id']}")
    expect(page.locator("h1 .decision")).to_have_text("ALLOW")
    expect(page.locator(".override-banner .badge.override")).to_have_text("BREAK-GLASS OVERRIDE")
    expect(page.locator("tr.result.failed")).to_contain_text("privacy.dpia-approved")
    expect(page.get_by_text(seeded["forced"]["policy_digest"])).to_be_visible()
    # the hostile justification is text, not a script that ran
    expect(page.locator(".override-banner q")).to_contain_text('<script>alert("pwned")</script>')
    assert csp_violations == []


def test_filtering_by_model_and_paging_to_older_events(page, live_app, seeded):
    sign_in(page, live_app, seeded["token"])
    page.get_by_label("Model").fill("churn")
    page.get_by_label("Per page").fill("4")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"model=churn"))
    first = page.locator("tr.event").evaluate_all("rows => rows.map(r => Number(r.id.slice(4)))")
    assert len(first) == 4
    expect(page.locator("tr.event td:nth-child(5)")).to_have_text([re.compile("churn")] * 4)

    page.get_by_role("link", name="Older events").click()
    expect(page).to_have_url(re.compile(r"cursor="))
    older = page.locator("tr.event").evaluate_all("rows => rows.map(r => Number(r.id.slice(4)))")
    assert older and max(older) < min(first)
    expect(page.get_by_label("Model")).to_have_value("churn")


def test_signing_out_sends_every_page_back_to_sign_in(page, live_app, seeded):
    sign_in(page, live_app, seeded["token"])
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(live_app + "/ui/login")
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    for path in ("/ui/audit", "/ui/overrides", "/ui/deployments",
                 f"/ui/decisions/{seeded['forced']['decision_id']}"):
        page.goto(live_app + path)
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_a_wrong_token_is_refused_in_the_browser(page, live_app, seeded):
    page.goto(live_app + "/ui/login")
    page.get_by_label("API token").fill(seeded["token"][:-2] + "xx")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Sign-in failed: that token was not accepted.")
    page.goto(live_app + "/ui/audit")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_the_pages_work_with_javascript_disabled(new_context, live_app, seeded):
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, live_app, seeded["token"])
    expect(page.locator(f"#seq-{seeded['deployment']['seq']} .badge.override")).to_be_visible()
    page.get_by_role("link", name="Overrides").click()
    row = page.locator(f"#{seeded['override_id']}")
    expect(row.locator(".badge.status-used")).to_have_text("used")
    expect(row.locator(".badge.status-active")).to_have_text("active")
    page.get_by_role("link", name="Deployments").click()
    expect(page.locator(f"#{seeded['deployment']['deployment_id']}")).to_have_class(re.compile(r"\bflagged\b"))
    expect(page.locator(f"#{seeded['rollback']['rollback']['deployment_id']} .badge.rollback")).to_have_text(
        "ROLLBACK")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(live_app + "/ui/login")
    page.goto(live_app + "/ui/overrides")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_the_audit_page_pages_both_ways_and_shows_leaf_hashes(page, live_app, seeded):
    sign_in(page, live_app, seeded["token"], "/ui/audit?limit=5")
    first = page.locator("tr.event").evaluate_all("rows => rows.map(r => r.id)")
    assert len(first) == 5
    expect(page.get_by_role("link", name="Newer events")).to_have_count(0)
    page.get_by_role("link", name="Older events").click()
    second = page.locator("tr.event").evaluate_all("rows => rows.map(r => r.id)")
    assert len(second) == 5 and not set(first) & set(second)
    page.get_by_role("link", name="Newer events").click()
    assert page.locator("tr.event").evaluate_all("rows => rows.map(r => r.id)") == first
    expect(page.get_by_label("Per page")).to_have_value("5")
    # the leaf hash: its start on screen, the whole of it in the text and the title
    proof = seeded["deployment"]["seq"]
    page.goto(live_app + "/ui/audit?limit=500")
    leaf = page.locator(f"#seq-{proof} code.leaf-hash")
    full = leaf.get_attribute("title")
    assert len(full) == 64 and leaf.text_content() == full
    assert leaf.evaluate("code => code.scrollWidth > code.clientWidth")  # shown shortened
    page.locator(f"#seq-{proof}").get_by_role("link", name="proof").click()
    expect(page).to_have_url(live_app + f"/api/v1/ledger/proofs/inclusion?seq={proof}")
    assert f'"leaf_hash":"{full}"' in page.content().replace(" ", "")


def test_the_csv_link_downloads_the_filtered_trail(page, live_app, seeded, world):
    sign_in(page, live_app, seeded["token"], "/ui/audit?model=credit-risk&limit=2")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == "audit-events.csv"
    with open(download.value.path(), "rb") as saved:
        body = saved.read()
    api = world.client.get("/api/v1/audit/events?model=credit-risk&format=csv&limit=500",
                           headers=world.auditor())
    assert body == api.get_data() and body.count(b"\r\n") > 3  # every matching row, not the 2 shown
