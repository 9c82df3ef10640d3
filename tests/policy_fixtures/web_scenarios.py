"""Scenarios for the web page tests (test client and browser): a break-glass
deployment, an expired override, a rollback, and signing in through the form.

Everything is written through the real HTTP API (or the ledger service, for
an override that expired before the test began) — the pages only read.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from governance.gate.overrides import override_id_of
from governance.registry.models import model_subject
from ledger.entry import utc_timestamp
from policy_fixtures.gate_scenarios import Gate

OVERRIDES = "/api/v1/deployments/overrides"
HOSTILE = '<script>alert("pwned")</script>'
JUSTIFICATION = f"regulator-mandated fix must ship tonight (INC-4711) {HOSTILE}"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def break_glass(gate: Gate) -> dict:
    """credit-risk@1 denied in prod, forced by a confirmed override, deployed through it.

    Returns the seqs and ids of every entry involved: denied, requested,
    confirmed, forced (the decision) and deployment.
    """
    gate.compliant(evidence={"privacy_assessment": None})
    denied = gate.check()
    assert denied["decision"] == "deny"
    response = gate.client.post(OVERRIDES, json={
        "model": "credit-risk", "version": "1", "environment": "prod",
        "justification": JUSTIFICATION, "expires_in_minutes": 60},
        headers=gate.world.headers("root", "admin"))
    assert response.status_code == 201, response.get_json()
    requested = response.get_json()
    response = gate.client.post(f"{OVERRIDES}/{requested['override_id']}/confirm",
                                headers=gate.world.approver("olga", "model_risk"))
    assert response.status_code == 200, response.get_json()
    confirmed = response.get_json()
    forced = gate.check()
    assert forced["decision"] == "allow" and forced["override_id"] == requested["override_id"]
    deployment = gate.deploy(forced["decision_id"], reason=f"hotfix {HOSTILE}")
    assert deployment["flagged"] is True
    return {"denied": denied, "requested": requested, "confirmed": confirmed, "forced": forced,
            "deployment": deployment, "override_id": requested["override_id"]}


def expired_override(gate: Gate, version: str = "1") -> dict:
    """An override of credit-risk@``version`` in staging that expired an hour ago (never confirmed).

    The API only makes overrides that expire in the future; this one is
    appended through the ledger service as an old request would have been.
    """
    past = utc_timestamp(datetime.now(timezone.utc) - timedelta(hours=1))
    entry = gate.ledger.append("deployment.override.requested", "root", model_subject("credit-risk", version), {
        "model": "credit-risk", "version": version, "environment": "staging",
        "justification": "an old emergency that nobody confirmed in time", "expires_at": past})
    return {"override_id": override_id_of(entry.seq), "seq": entry.seq, "expires_at": past}


def rolled_back(gate: Gate) -> dict:
    """churn 1 then 2 deployed to prod, then 2 rolled back (reason holds markup)."""
    gate.minimal("churn", versions=("1", "2"))
    first = gate.deploy(gate.check("churn", "1")["decision_id"])
    second = gate.deploy(gate.check("churn", "2")["decision_id"])
    rollback = gate.rollback(second["deployment_id"], reason=f"latency doubled {HOSTILE}")
    return {"first": first, "second": second, "rollback": rollback}


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = _CSRF.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def sign_in(client, token: str, next_page: str | None = None):
    """Sign in through the form (GET for the CSRF token, then POST); return the POST response."""
    form = client.get("/ui/login")
    assert form.status_code == 200
    data = {"token": token, "csrf_token": csrf_of(form.get_data(as_text=True))}
    if next_page:
        data["next"] = next_page
    return client.post("/ui/login", data=data)
