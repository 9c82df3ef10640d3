"""The pages fit a 1,280 x 800 window: no horizontal scrolling of the page,
with the longest values the API accepts in the cells (128-character model
and principal names, 5,000-character justifications holding long unbroken
words such as URLs and digests), the full text still on the page.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from policy_fixtures.gate_scenarios import Gate
from policy_fixtures.web_scenarios import OVERRIDES, break_glass, rolled_back

from .test_pages import sign_in

WIDTH, HEIGHT = 1280, 800
LONG_MODEL = "m" + "-long-model-name" * 7 + "x" * 15  # 128 characters, no space
LONG_VERSION = "v" + "9" * 63  # 64
LONG_ADMIN = "incident-commander." + "x" * 97 + "@example.org"  # a 128-character principal
URL = "https://tickets.example.org/browse/INC-4711?" + "&".join(f"field{i}=value{i}" for i in range(30))
DIGEST = "9f" * 32
LONG_JUSTIFICATION = (f"Production credit decisions are failing, see {URL} and artifact {DIGEST}. "
                      + "Regulator-mandated fix, signed off by the incident board. " * 80
                      + "x" * 400)[:5000]  # the longest the API accepts


@pytest.fixture
def crowded(world) -> dict:
    """The usual break-glass scenario, plus overrides with the longest values accepted."""
    gate = Gate(world)
    scenario = break_glass(gate)
    scenario["rollback"] = rolled_back(gate)
    gate.minimal(LONG_MODEL, versions=("1", LONG_VERSION))
    admin = world.headers(LONG_ADMIN, "admin")
    long_ids = []
    for version in ("1", LONG_VERSION):
        response = world.client.post(OVERRIDES, json={
            "model": LONG_MODEL, "version": version, "environment": "prod",
            "justification": LONG_JUSTIFICATION}, headers=admin)
        assert response.status_code == 201, response.get_json()
        long_ids.append(response.get_json()["override_id"])
    scenario["long_overrides"] = long_ids
    scenario["token"] = world.token("audrey", "auditor")
    return scenario


def page_fits(page) -> tuple[int, int]:
    """(scrollWidth of the document, innerWidth of the window)."""
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


@pytest.fixture
def window(new_context):
    return new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()


def test_the_overrides_page_fits_1280_pixels_with_long_justifications(window, live_app, crowded):
    sign_in(window, live_app, crowded["token"], "/ui/overrides")
    assert window.viewport_size == {"width": WIDTH, "height": HEIGHT}
    row = window.locator(f"#{crowded['long_overrides'][0]}")
    expect(row).to_contain_text(LONG_MODEL)
    expect(row).to_contain_text(LONG_ADMIN)
    scroll, inner = page_fits(window)
    assert scroll <= inner, f"/ui/overrides scrolls sideways: {scroll} > {inner}"
    # a long justification shows its start; the whole of it opens in place, and still fits
    justification = row.locator(".justification")
    expect(justification.locator(".preview")).to_be_visible()
    expect(justification.locator(".full")).to_be_hidden()
    justification.get_by_text("show all 5,000 characters").click()
    expect(justification.locator(".full")).to_be_visible()
    assert justification.locator(".full").text_content() == LONG_JUSTIFICATION
    expect(justification.locator(".preview")).to_be_hidden()
    scroll, inner = page_fits(window)
    assert scroll <= inner, f"/ui/overrides with a justification open scrolls sideways: {scroll} > {inner}"
    # every cell keeps within its column: nothing spills over a neighbour
    spilled = window.evaluate("""() => [...document.querySelectorAll('table.overrides td')]
        .filter(td => td.scrollWidth > td.clientWidth).map(td => td.textContent.slice(0, 40))""")
    assert spilled == []


def test_every_page_fits_1280_pixels(window, live_app, world, crowded):
    gate = Gate(world)
    allowed = gate.check(LONG_MODEL, "1")
    gate.deploy(allowed["decision_id"], reason=LONG_JUSTIFICATION[:2000])  # the longest reason accepted
    sign_in(window, live_app, crowded["token"])
    paths = ["/ui/audit", "/ui/audit?limit=500", f"/ui/audit?model={LONG_MODEL}", "/ui/overrides",
             "/ui/deployments", f"/ui/decisions/{crowded['forced']['decision_id']}",
             f"/ui/decisions/{allowed['decision_id']}",
             f"/ui/entries/{crowded['requested']['seq']}",
             f"/ui/entries/{crowded['long_overrides'][1].removeprefix('ov-')}",  # an override's id is its seq
             "/ui/audit?since=bad", "/ui/nowhere"]
    for path in paths:
        window.goto(live_app + path)
        scroll, inner = page_fits(window)
        assert scroll <= inner, f"{path} scrolls sideways: {scroll} > {inner}"
        spilled = window.evaluate("""() => [...document.querySelectorAll('table.fixed td')]
            .filter(td => td.scrollWidth > td.clientWidth).map(td => td.textContent.slice(0, 40))""")
        assert spilled == [], path
    window.context.clear_cookies()
    window.goto(live_app + "/ui/login")
    scroll, inner = page_fits(window)
    assert scroll <= inner, f"/ui/login scrolls sideways: {scroll} > {inner}"
