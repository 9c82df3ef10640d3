"""Approvals API: sign-offs per area, separation of duties on people, revocation.

Tokens are real API tokens; separation of duties is about principals, so one
person with two tokens is still one person. Every refused request is checked
to have written nothing (the ledger keeps its size).
"""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager

import pytest

from factories import World

APPROVALS = "/api/v1/models/credit-risk/versions/1/approvals"
EVIDENCE = "/api/v1/models/credit-risk/versions/1/evidence"
CARD = {"content": "# Credit risk"}
REPORT = {"passed": True, "metrics": {"auc": 0.8}}


@contextmanager
def nothing_written(world: World):
    """Assert the block appends no ledger entry."""
    before = world.ledger_size()
    yield
    assert world.ledger_size() == before


def sign(world: World, headers: dict, role: str, decision: str = "approve", url: str = APPROVALS,
         comment: str = "looked at it"):
    return world.client.post(url, json={"role": role, "decision": decision, "comment": comment},
                             headers=headers)


def revoke(world: World, headers: dict, approval_id: str, reason: str = "changed my mind",
           url: str = APPROVALS):
    return world.client.post(f"{url}/{approval_id}/revoke", json={"reason": reason}, headers=headers)


def listed(world: World, **query) -> list[dict]:
    response = world.client.get(APPROVALS, query_string=query, headers=world.auditor())
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def people(world):
    """credit-risk@1 registered by alice; tokens for everyone, created before any size check."""
    world.registered_version()
    tokens = {
        "alice": world.author("alice"),
        "carol": world.headers("carol", "author"),
        "bob_privacy": world.approver("bob", "privacy"),
        "bob_compliance": world.approver("bob", "compliance"),
        "bob_both": world.approver("bob", "privacy", "compliance"),
        "pia": world.approver("pia", "privacy"),
        "cid": world.approver("cid", "compliance"),
        "alice_privacy": world.approver("alice", "privacy"),
        "carol_privacy": world.approver("carol", "privacy"),
        "bob_author": world.headers("bob", "author"),
        "dave_admin": world.headers("dave", "admin"),
        "auditor": world.auditor(),
    }
    return tokens


def test_approve_and_reject_by_area_given_either_way(world, people):
    before = world.ledger_size()
    first = sign(world, people["bob_privacy"], "privacy")
    assert first.status_code == 201, first.get_json()
    second = sign(world, people["cid"], "approver:compliance", decision="reject", comment="no DPIA")
    assert second.status_code == 201, second.get_json()
    assert world.ledger_size() == before + 2

    approved, rejected = first.get_json(), second.get_json()
    assert (approved["area"], approved["role"], approved["decision"], approved["actor"]) == (
        "privacy", "approver:privacy", "approve", "bob")
    assert (rejected["area"], rejected["role"], rejected["decision"], rejected["actor"]) == (
        "compliance", "approver:compliance", "reject", "cid")
    assert rejected["comment"] == "no DPIA"
    assert approved["approval_id"] == f"ap-{approved['seq']}"
    assert approved["revoked"] is False and approved["revoked_seq"] is None
    assert listed(world) == [approved, rejected]

    raw = world.client.get(f"/api/v1/ledger/entries/{approved['seq']}", headers=people["auditor"])
    canonical = json.loads(base64.b64decode(raw.get_json()["canonical_b64"]))
    assert canonical["kind"] == "approval.decided"
    assert canonical["actor"] == "bob"
    assert canonical["payload"]["area"] == "privacy"
    assert canonical["payload"]["artifact_sha256"] == approved["artifact_sha256"]

    detail = world.client.get("/api/v1/models/credit-risk/versions/1", headers=people["auditor"])
    assert detail.get_json()["approvals"] == [approved, rejected]


def test_approval_records_the_digests_of_current_evidence(world, people):
    old = world.evidence("validation_report", REPORT)
    card = world.evidence("model_card", CARD)
    new = world.evidence("validation_report", {**REPORT, "passed": False},
                         supersedes=old["evidence_id"])
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    expected = [{"evidence_id": e["evidence_id"], "kind": e["kind"], "digest": e["digest"]}
                for e in (card, new)]
    assert first["evidence"] == expected
    for item in first["evidence"]:  # each digest is the leaf hash of that evidence entry
        seq = int(item["evidence_id"].removeprefix("ev-"))
        raw = world.client.get(f"/api/v1/ledger/entries/{seq}", headers=people["auditor"]).get_json()
        assert item["digest"] == raw["leaf_hash"]

    # evidence arriving later changes what the next approver sees, not what bob saw
    late = world.evidence("model_card", {"content": "v2"}, supersedes=card["evidence_id"])
    second = sign(world, people["cid"], "compliance").get_json()
    assert second["evidence"] == [
        {"evidence_id": new["evidence_id"], "kind": "validation_report", "digest": new["digest"]},
        {"evidence_id": late["evidence_id"], "kind": "model_card", "digest": late["digest"]}]
    assert listed(world)[0]["evidence"] == expected


def test_approval_without_evidence_records_an_empty_list(world, people):
    assert sign(world, people["pia"], "privacy").get_json()["evidence"] == []


def test_the_versions_author_cannot_approve(world, people):
    with nothing_written(world):
        response = sign(world, people["alice_privacy"], "privacy")
    assert response.status_code == 403
    assert response.get_json()["message"] == "alice registered credit-risk@1 and cannot sign it off"
    assert listed(world) == []


def test_an_evidence_submitter_cannot_approve_even_if_superseded(world, people):
    mine = world.evidence("model_card", CARD, headers=people["carol"])
    world.evidence("model_card", {"content": "rewritten"}, supersedes=mine["evidence_id"])
    with nothing_written(world):
        response = sign(world, people["carol_privacy"], "privacy")
    assert response.status_code == 403
    assert "carol submitted evidence for credit-risk@1" in response.get_json()["message"]
    # a version without carol's evidence is fine for her
    world.version("credit-risk", "2")
    response = sign(world, people["carol_privacy"], "privacy",
                    url="/api/v1/models/credit-risk/versions/2/approvals")
    assert response.status_code == 201, response.get_json()


def test_one_person_cannot_fill_two_areas_with_one_token(world, people):
    assert sign(world, people["bob_both"], "privacy").status_code == 201
    with nothing_written(world):
        response = sign(world, people["bob_both"], "compliance")
    assert response.status_code == 403
    assert "one person cannot fill two approval areas" in response.get_json()["message"]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_one_person_cannot_fill_two_areas_with_two_tokens(world, people, decision):
    assert people["bob_privacy"] != people["bob_compliance"]
    assert sign(world, people["bob_privacy"], "privacy", decision=decision).status_code == 201
    with nothing_written(world):
        response = sign(world, people["bob_compliance"], "approver:compliance")
    assert response.status_code == 403
    body = response.get_json()
    assert "bob already signed off privacy" in body["message"]
    assert "one person cannot fill two approval areas" in body["message"]
    assert [a["area"] for a in listed(world)] == ["privacy"]


def test_the_same_sign_off_sent_again_is_an_idempotent_repeat(world, people):
    world.evidence("model_card", CARD)
    first = sign(world, people["bob_privacy"], "privacy")
    assert first.status_code == 201, first.get_json()
    with nothing_written(world):
        for headers, role in ((people["bob_privacy"], "privacy"), (people["bob_both"], "approver:privacy")):
            again = sign(world, headers, role)
            assert again.status_code == 200, again.get_json()
            assert again.get_json() == first.get_json()
    assert listed(world) == [first.get_json()]


def test_another_comment_on_the_same_evidence_and_decision_is_409(world, people):
    world.evidence("model_card", CARD)
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    with nothing_written(world):
        response = sign(world, people["bob_privacy"], "privacy", comment="looked again")
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["message"] == (
        f"bob already approved privacy for credit-risk@1 on the same evidence ({first['approval_id']}); "
        "a new sign-off needs new evidence or another decision, or revoke it first")
    assert listed(world) == [first]


def test_signing_off_again_after_new_evidence_supersedes_the_standing_sign_off(world, people):
    card = world.evidence("model_card", CARD)
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    assert first["supersedes"] is None and first["superseded"] is False and first["superseded_by"] is None
    report = world.evidence("validation_report", REPORT)  # the sign-off now predates the latest evidence

    before = world.ledger_size()
    response = sign(world, people["bob_privacy"], "privacy", comment="saw the validation report")
    assert response.status_code == 201, response.get_json()
    assert world.ledger_size() == before + 1
    second = response.get_json()
    assert second["supersedes"] == first["approval_id"]
    assert (second["superseded"], second["superseded_by"], second["revoked"]) == (False, None, False)
    assert [e["digest"] for e in second["evidence"]] == [card["digest"], report["digest"]]
    # both stay: the old one is marked superseded, in the listing and the version's detail
    old = {**first, "superseded": True, "superseded_by": second["approval_id"]}
    assert listed(world) == [old, second]
    assert listed(world, include_revoked="false") == [second]
    detail = world.client.get("/api/v1/models/credit-risk/versions/1", headers=people["auditor"])
    assert detail.get_json()["approvals"] == [old, second]
    raw = world.client.get(f"/api/v1/ledger/entries/{second['seq']}", headers=people["auditor"])
    canonical = json.loads(base64.b64decode(raw.get_json()["canonical_b64"]))
    assert canonical["kind"] == "approval.decided"
    assert canonical["payload"]["supersedes"] == first["approval_id"]
    assert [e["digest"] for e in canonical["payload"]["evidence"]] == [card["digest"], report["digest"]]


def test_another_decision_on_the_same_evidence_supersedes_too(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    response = sign(world, people["bob_both"], "approver:privacy", decision="reject", comment="no DPIA")
    assert response.status_code == 201, response.get_json()
    second = response.get_json()
    assert (second["decision"], second["supersedes"]) == ("reject", first["approval_id"])
    assert [(a["decision"], a["superseded_by"]) for a in listed(world)] == [
        ("approve", second["approval_id"]), ("reject", None)]


def test_superseding_keeps_separation_of_duties(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    world.evidence("model_card", CARD)
    with nothing_written(world):
        response = sign(world, people["bob_compliance"], "compliance")  # still one area per person
    assert response.status_code == 403
    assert "bob already signed off privacy" in response.get_json()["message"]
    # an approver who has since submitted evidence cannot renew a sign-off either
    world.evidence("validation_report", REPORT, headers=people["bob_author"])
    with nothing_written(world):
        response = sign(world, people["bob_privacy"], "privacy")
    assert response.status_code == 403
    assert "bob submitted evidence for credit-risk@1" in response.get_json()["message"]
    assert [a["approval_id"] for a in listed(world)] == [first["approval_id"]]


def test_a_superseded_sign_off_cannot_be_revoked_but_its_successor_can(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    world.evidence("model_card", CARD)
    second = sign(world, people["bob_privacy"], "privacy").get_json()
    with nothing_written(world):
        response = revoke(world, people["bob_privacy"], first["approval_id"])
    assert response.status_code == 409
    assert response.get_json()["message"] == (
        f"{first['approval_id']} was superseded by {second['approval_id']}; revoke that one instead")
    assert revoke(world, people["bob_privacy"], second["approval_id"]).status_code == 201
    # the superseded one stays superseded: revoking its successor does not bring it back
    assert [(a["superseded"], a["revoked"]) for a in listed(world)] == [(True, False), (False, True)]
    assert listed(world, include_revoked="false") == []


def test_another_person_in_the_same_area_is_fine(world, people):
    assert sign(world, people["bob_privacy"], "privacy").status_code == 201
    response = sign(world, people["pia"], "privacy", decision="reject")
    assert response.status_code == 201
    assert [(a["actor"], a["area"], a["decision"]) for a in listed(world)] == [
        ("bob", "privacy", "approve"), ("pia", "privacy", "reject")]


def test_approver_roles_and_request_validation(world, people):
    with nothing_written(world):
        response = sign(world, people["bob_privacy"], "compliance")
        assert response.status_code == 403
        assert "does not hold approver:compliance" in response.get_json()["message"]
        for headers in (people["carol"], people["auditor"], people["dave_admin"]):
            assert sign(world, headers, "privacy").status_code == 403
        assert world.client.post(APPROVALS, json={"role": "privacy", "decision": "approve",
                                                  "comment": "x"}).status_code == 401
        for body, field in (({"role": "privacy", "decision": "maybe", "comment": "x"}, "decision"),
                            ({"role": "Privacy!", "decision": "approve", "comment": "x"}, "role"),
                            ({"role": "approver:", "decision": "approve", "comment": "x"}, "role"),
                            ({"role": "privacy", "decision": "approve", "comment": ""}, "comment"),
                            ({"role": "privacy", "decision": "approve"}, "comment"),
                            ({"role": "privacy", "decision": "approve", "comment": "x", "ok": 1},
                             "ok")):
            response = world.client.post(APPROVALS, json=body, headers=people["bob_privacy"])
            assert response.status_code == 422, body
            assert field in response.get_json()["errors"]["json"]
        for url in ("/api/v1/models/credit-risk/versions/9/approvals",
                    "/api/v1/models/nope/versions/1/approvals"):
            assert sign(world, people["bob_privacy"], "privacy", url=url).status_code == 404
    assert world.client.get(APPROVALS).status_code == 401
    assert world.client.get(APPROVALS, headers=people["pia"]).status_code == 200


# -- revocation --------------------------------------------------------------------

def test_the_approver_can_revoke_and_then_sign_off_again(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    before = world.ledger_size()
    response = revoke(world, people["bob_privacy"], first["approval_id"], reason="new evidence")
    assert response.status_code == 201, response.get_json()
    assert world.ledger_size() == before + 1
    revoked = response.get_json()
    assert revoked["approval_id"] == first["approval_id"]
    assert revoked["revoked"] is True
    assert revoked["revoked_by"] == "bob"
    assert revoked["revoke_reason"] == "new evidence"
    assert revoked["revoked_seq"] == revoked["seq"] == before
    assert revoked["revoked_at"] is not None

    raw = world.client.get(f"/api/v1/ledger/entries/{revoked['seq']}", headers=people["auditor"])
    canonical = json.loads(base64.b64decode(raw.get_json()["canonical_b64"]))
    assert canonical["kind"] == "approval.revoked"
    assert canonical["payload"]["approval_id"] == first["approval_id"]

    again = sign(world, people["bob_privacy"], "privacy", decision="reject")
    assert again.status_code == 201, again.get_json()
    assert [a["revoked"] for a in listed(world)] == [True, False]
    assert [a["approval_id"] for a in listed(world, include_revoked="false")] == [
        again.get_json()["approval_id"]]


def test_after_revocation_the_person_may_take_another_area(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    assert revoke(world, people["bob_privacy"], first["approval_id"]).status_code == 201
    response = sign(world, people["bob_compliance"], "compliance")
    assert response.status_code == 201, response.get_json()
    # ...and then the first area is the second one again
    with nothing_written(world):
        assert sign(world, people["bob_privacy"], "privacy").status_code == 403


def test_revocation_by_the_same_person_with_another_token(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    response = revoke(world, people["bob_compliance"], first["approval_id"])
    assert response.status_code == 201
    assert response.get_json()["revoked_by"] == "bob"


def test_an_admin_can_revoke(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    response = revoke(world, people["dave_admin"], first["approval_id"], reason="approver left")
    assert response.status_code == 201
    assert (response.get_json()["revoked_by"], response.get_json()["actor"]) == ("dave", "bob")


def test_others_cannot_revoke(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    with nothing_written(world):
        response = revoke(world, people["pia"], first["approval_id"])
        assert response.status_code == 403
        assert "only bob or an admin" in response.get_json()["message"]
        for headers in (people["alice"], people["auditor"]):
            assert revoke(world, headers, first["approval_id"]).status_code == 403
        assert world.client.post(f"{APPROVALS}/{first['approval_id']}/revoke",
                                 json={"reason": "x"}).status_code == 401
    assert listed(world)[0]["revoked"] is False


def test_revoking_twice_is_409(world, people):
    first = sign(world, people["bob_privacy"], "privacy").get_json()
    done = revoke(world, people["bob_privacy"], first["approval_id"]).get_json()
    with nothing_written(world):
        for headers in (people["bob_privacy"], people["dave_admin"]):
            response = revoke(world, headers, first["approval_id"])
            assert response.status_code == 409
            assert f"at seq {done['revoked_seq']}" in response.get_json()["message"]


def test_revoking_unknown_or_foreign_sign_offs_is_404(world, people):
    world.version("credit-risk", "2")
    other = sign(world, people["bob_privacy"], "privacy",
                 url="/api/v1/models/credit-risk/versions/2/approvals").get_json()
    with nothing_written(world):
        for approval_id in ("ap-999", other["approval_id"]):
            response = revoke(world, people["bob_privacy"], approval_id)
            assert response.status_code == 404, response.get_json()
        for body in ({}, {"reason": ""}, {"reason": "x", "extra": 1}):
            response = world.client.post(f"{APPROVALS}/{other['approval_id']}/revoke", json=body,
                                         headers=people["bob_privacy"])
            assert response.status_code == 422
    versions2 = world.client.get("/api/v1/models/credit-risk/versions/2/approvals",
                                 headers=people["auditor"]).get_json()
    assert versions2[0]["revoked"] is False
