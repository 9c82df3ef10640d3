"""Evidence API: typed evidence per kind, documents, superseding, computed bias reports.

Every write goes through the real HTTP API with real tokens. Every refused
request is checked to have written nothing (the ledger keeps its size).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
from contextlib import contextmanager

import pytest

from factories import World, digest
from ledger.canonical import canonical_bytes

EVIDENCE = "/api/v1/models/credit-risk/versions/1/evidence"
BIAS = "/api/v1/models/credit-risk/versions/1/evidence/bias-report"

VALID_FIELDS = {
    "privacy_assessment": {
        "status": "approved_with_conditions", "reviewer": "dpo@bank.example",
        "findings": ["income is personal data"], "conditions": ["re-assess after retraining"],
        "expires_at": "2030-01-01T02:00:00+02:00", "reference": "DPIA-7",
    },
    "bias_report": {
        "attributes": [{"attribute": "sex", "groups": ["f", "m"],
                        "metrics": {"demographic_parity_difference": 0.04,
                                    "disparate_impact_ratio": 0.9},
                        "group_metrics": {"f": {"selection_rate": 0.31}, "m": {"selection_rate": 0.35}}}],
        "dataset": {"name": "loans", "version": "v1"}, "sample_size": 1000,
    },
    "explainability_report": {
        "method": "shap.TreeExplainer",
        "feature_importances": [{"feature": "income", "importance": 0.52},
                                {"feature": "age", "importance": -0.1}],
        "dataset": {"name": "loans", "version": "v1"},
    },
    "validation_report": {
        "passed": True, "metrics": {"auc": 0.81, "ks": 0.4}, "thresholds": {"auc": 0.75},
        "summary": "holdout 2023Q4",
    },
    "model_card": {"content": "# Credit risk\n\nScores loan applications.",
                   "sections": {"limitations": "not for mortgages"}},
}

# What the service stores once defaults are applied and timestamps normalised.
STORED_FIELDS = {
    "privacy_assessment": {**VALID_FIELDS["privacy_assessment"],
                           "expires_at": "2030-01-01T00:00:00.000000Z"},
    "bias_report": {**VALID_FIELDS["bias_report"], "computed_by": "submitter"},
    "explainability_report": VALID_FIELDS["explainability_report"],
    "validation_report": {**VALID_FIELDS["validation_report"], "dataset": None},
    "model_card": VALID_FIELDS["model_card"],
}

# kind -> [(fields, path of the error under errors.json.fields)]
INVALID_FIELDS = {
    "privacy_assessment": [
        ({k: v for k, v in VALID_FIELDS["privacy_assessment"].items() if k != "status"}, ("status",)),
        ({**VALID_FIELDS["privacy_assessment"], "status": "done"}, ("status",)),
        ({**VALID_FIELDS["privacy_assessment"], "expires_at": "2030-01-01T00:00:00"}, ("expires_at",)),
        ({**VALID_FIELDS["privacy_assessment"], "reviewer": "two\nlines"}, ("reviewer",)),
        ({**VALID_FIELDS["privacy_assessment"], "score": 3}, ("score",)),
    ],
    "bias_report": [
        ({"attributes": []}, ("attributes",)),
        ({"attributes": [{"attribute": "sex", "groups": ["f"], "metrics": {"dpd": 0.1}}]},
         ("attributes", "0", "groups")),
        ({"attributes": [{"attribute": "sex", "groups": ["f", "m"], "metrics": {}}]},
         ("attributes", "0", "metrics")),
        ({"attributes": [{"attribute": "sex", "groups": ["f", "m"], "metrics": {"dpd": "high"}}]},
         ("attributes", "0", "metrics", "dpd", "value")),
        ({**VALID_FIELDS["bias_report"], "sample_size": 0}, ("sample_size",)),
    ],
    "explainability_report": [
        ({"feature_importances": [{"feature": "income", "importance": 1}]}, ("method",)),
        ({"method": "shap", "feature_importances": []}, ("feature_importances",)),
        ({"method": "shap", "feature_importances": [{"feature": "income", "importance": "big"}]},
         ("feature_importances", "0", "importance")),
        ({"method": "shap", "feature_importances": [{"feature": "x", "importance": 1}],
          "dataset": {"name": "loans"}}, ("dataset", "version")),
    ],
    "validation_report": [
        ({"metrics": {"auc": 0.8}}, ("passed",)),
        ({"passed": "maybe"}, ("passed",)),
        ({"passed": True, "metrics": {"auc": "high"}}, ("metrics", "auc", "value")),
        ({"passed": True, "metrics": {"auc": True}}, ("metrics", "auc", "value")),
    ],
    "model_card": [
        ({}, ()),  # needs content, sections or a document: a message on `fields` itself
        ({"content": "", "sections": {}}, ()),
        ({"sections": {"limitations": 5}}, ("sections", "limitations", "value")),
        ({"content": "x", "title": "y"}, ("title",)),
    ],
}


@contextmanager
def nothing_written(world: World):
    """Assert the block appends no ledger entry."""
    before = world.ledger_size()
    yield
    assert world.ledger_size() == before


def entry(world: World, seq: int) -> tuple[dict, dict]:
    """Return (API form, decoded canonical JSON) of ledger entry ``seq``, read as an auditor."""
    response = world.client.get(f"/api/v1/ledger/entries/{seq}", headers=world.auditor())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return body, json.loads(base64.b64decode(body["canonical_b64"]))


def error_at(body: dict, *path: str):
    """Return the validation messages at errors.json.fields.<path> (asserting it exists)."""
    node = body["errors"]["json"]["fields"]
    for key in path:
        assert isinstance(node, dict) and key in node, (path, body["errors"])
        node = node[key]
    assert node, (path, body["errors"])
    return node


@pytest.fixture
def version(world):
    """credit-risk@1, registered by alice, with tokens of the usual people created up front."""
    created = world.registered_version()
    for principal, role in (("audrey", "auditor"), ("carol", "author"), ("vic", "approver:privacy")):
        world.token(principal, role)
    return created


# -- each kind ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(VALID_FIELDS))
def test_each_kind_is_recorded_with_the_artifact_digest_and_its_leaf_hash(world, version, kind):
    before = world.ledger_size()
    response = world.client.post(EVIDENCE, json={"kind": kind, "fields": VALID_FIELDS[kind]},
                                 headers=world.author())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert world.ledger_size() == before + 1
    assert body["seq"] == before
    assert body["evidence_id"] == f"ev-{body['seq']}"
    assert (body["kind"], body["model"], body["version"]) == (kind, "credit-risk", "1")
    assert body["fields"] == STORED_FIELDS[kind]
    assert body["artifact_sha256"] == version["artifact_sha256"] == digest("credit-risk@1")
    assert body["submitted_by"] == "alice"
    assert (body["current"], body["supersedes"], body["superseded_by"]) == (True, None, None)

    api_entry, canonical = entry(world, body["seq"])
    assert body["digest"] == api_entry["leaf_hash"]
    raw = base64.b64decode(api_entry["canonical_b64"])
    assert body["digest"] == hashlib.sha256(b"\x00" + raw).hexdigest()
    assert canonical["kind"] == "evidence.submitted"
    assert canonical["subject"] == "model:credit-risk@1"
    assert canonical["actor"] == "alice"
    assert canonical["payload"] == {
        "model": "credit-risk", "version": "1", "artifact_sha256": version["artifact_sha256"],
        "kind": kind, "fields": STORED_FIELDS[kind], "document": None, "supersedes": None}

    listed = world.client.get(EVIDENCE, headers=world.auditor()).get_json()
    assert listed == [body]
    detail = world.client.get("/api/v1/models/credit-risk/versions/1", headers=world.auditor())
    assert detail.get_json()["evidence"] == [body]


CASES = [(kind, fields, path) for kind, cases in sorted(INVALID_FIELDS.items())
         for fields, path in cases]


@pytest.mark.parametrize("kind,fields,path", CASES,
                         ids=[f"{k}-{i}" for i, (k, _f, _p) in enumerate(CASES)])
def test_invalid_fields_of_each_kind_are_422_under_errors_json_fields(world, version, kind, fields,
                                                                      path):
    with nothing_written(world):
        response = world.client.post(EVIDENCE, json={"kind": kind, "fields": fields},
                                     headers=world.author())
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == 422
    messages = error_at(body, *path)
    if not path:
        assert messages == ["a model card needs content, sections or a document"]
    assert world.client.get(EVIDENCE, headers=world.auditor()).get_json() == []


@pytest.mark.parametrize("body,field", [
    ({"kind": "dpia", "fields": {}}, "kind"),
    ({"fields": VALID_FIELDS["model_card"]}, "kind"),
    ({"kind": "model_card"}, "fields"),
    ({"kind": "model_card", "fields": ["content"]}, "fields"),
    ({"kind": "model_card", "fields": VALID_FIELDS["model_card"], "document_sha256": "ABC"},
     "document_sha256"),
    ({"kind": "model_card", "fields": VALID_FIELDS["model_card"], "supersedes": "7"}, "supersedes"),
    ({"kind": "model_card", "fields": VALID_FIELDS["model_card"], "status": "final"}, "status"),
])
def test_invalid_envelope_is_422(world, version, body, field):
    with nothing_written(world):
        response = world.client.post(EVIDENCE, json=body, headers=world.author())
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]


def test_evidence_needs_an_author_and_an_existing_version(world, version):
    good = {"kind": "model_card", "fields": VALID_FIELDS["model_card"]}
    with nothing_written(world):
        assert world.client.post(EVIDENCE, json=good).status_code == 401
        bad_token = {"Authorization": "Bearer mlg_0123456789abcdef_" + "A" * 43}
        assert world.client.post(EVIDENCE, json=good, headers=bad_token).status_code == 401
        for headers in (world.auditor(), world.headers("vic", "approver:privacy")):
            response = world.client.post(EVIDENCE, json=good, headers=headers)
            assert response.status_code == 403
            assert "lacks the role" in response.get_json()["message"]
        response = world.client.post("/api/v1/models/credit-risk/versions/9/evidence", json=good,
                                     headers=world.author())
        assert response.status_code == 404
        assert "no version '9'" in response.get_json()["message"]
        response = world.client.post("/api/v1/models/nope/versions/1/evidence", json=good,
                                     headers=world.author())
        assert response.status_code == 404
    assert world.client.get(EVIDENCE).status_code == 401


def test_list_filters_by_kind(world, version):
    card = world.evidence("model_card", VALID_FIELDS["model_card"])
    report = world.evidence("validation_report", VALID_FIELDS["validation_report"])
    everything = world.client.get(EVIDENCE, headers=world.auditor()).get_json()
    assert [e["evidence_id"] for e in everything] == [card["evidence_id"], report["evidence_id"]]
    only = world.client.get(EVIDENCE, query_string={"kind": "validation_report"},
                            headers=world.auditor()).get_json()
    assert [e["evidence_id"] for e in only] == [report["evidence_id"]]
    response = world.client.get(EVIDENCE, query_string={"kind": "dpia"}, headers=world.auditor())
    assert response.status_code == 422


# -- documents ---------------------------------------------------------------------

PDF = b"%PDF-1.7\n% a DPIA, in bytes\n" + bytes(range(256))


def upload(world: World, content: bytes, media_type: str = "application/pdf", headers=None):
    return world.client.post("/api/v1/documents", data=content,
                             headers={**(headers or world.author()), "Content-Type": media_type})


def test_document_upload_is_content_addressed_and_downloadable(world, version):
    sha = hashlib.sha256(PDF).hexdigest()
    with nothing_written(world):  # documents live beside the ledger, not in it
        first = upload(world, PDF)
        again = upload(world, PDF)
    assert first.status_code == 201, first.get_json()
    assert first.get_json() == {"sha256": sha, "size": len(PDF), "media_type": "application/pdf"}
    assert again.status_code == 200
    assert again.get_json() == first.get_json()

    download = world.client.get(f"/api/v1/documents/{sha}", headers=world.auditor())
    assert download.status_code == 200
    assert download.data == PDF
    assert download.mimetype == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert sha in download.headers["Content-Disposition"]


def test_evidence_references_an_uploaded_document(world, version):
    sha = upload(world, PDF).get_json()["sha256"]
    body = world.evidence("model_card", {}, document_sha256=sha)  # a document alone is a model card
    assert body["document_sha256"] == sha
    _api, canonical = entry(world, body["seq"])
    assert canonical["payload"]["document"] == {"sha256": sha, "size": len(PDF),
                                                "media_type": "application/pdf"}
    privacy = world.evidence("privacy_assessment", VALID_FIELDS["privacy_assessment"],
                             document_sha256=sha)
    assert privacy["document_sha256"] == sha


def test_evidence_referencing_an_unknown_document_is_422(world, version):
    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    with nothing_written(world):
        response = world.client.post(EVIDENCE, json={
            "kind": "model_card", "fields": {}, "document_sha256": unknown}, headers=world.author())
    assert response.status_code == 422
    body = response.get_json()
    assert body["errors"] == {"json": {"document_sha256": ["not uploaded"]}}
    assert unknown in body["message"]


def test_document_over_the_configured_limit_is_refused_and_not_stored(make_app):
    world = World(make_app(GOV_MAX_DOCUMENT_BYTES=16))
    world.registered_version()
    author, auditor = world.author(), world.auditor()
    with nothing_written(world):
        at_limit = upload(world, b"x" * 16, headers=author)
        over = upload(world, b"y" * 17, headers=author)
    assert at_limit.status_code == 201
    assert 400 <= over.status_code < 500
    assert "limit is 16" in over.get_json()["message"]
    too_big = hashlib.sha256(b"y" * 17).hexdigest()
    assert world.client.get(f"/api/v1/documents/{too_big}", headers=auditor).status_code == 404
    with nothing_written(world):
        response = world.client.post(EVIDENCE, json={
            "kind": "model_card", "fields": {}, "document_sha256": too_big}, headers=author)
    assert response.status_code == 422


def test_document_errors(world, version):
    with nothing_written(world):
        empty = upload(world, b"")
        assert empty.status_code == 422
        assert "empty" in empty.get_json()["message"]
        assert upload(world, PDF, headers=world.auditor()).status_code == 403
        assert world.client.post("/api/v1/documents", data=PDF).status_code == 401
    unknown = hashlib.sha256(b"nothing").hexdigest()
    assert world.client.get(f"/api/v1/documents/{unknown}", headers=world.auditor()).status_code == 404
    assert world.client.get(f"/api/v1/documents/{unknown.upper()}",
                            headers=world.auditor()).status_code == 422
    assert world.client.get("/api/v1/documents/abc", headers=world.auditor()).status_code == 422
    sha = upload(world, PDF).get_json()["sha256"]
    assert world.client.get(f"/api/v1/documents/{sha}").status_code == 401


# -- superseding -------------------------------------------------------------------

def test_superseding_marks_the_old_evidence_and_keeps_it_listed(world, version):
    old = world.evidence("validation_report", VALID_FIELDS["validation_report"])
    card = world.evidence("model_card", VALID_FIELDS["model_card"])
    fixed = {**VALID_FIELDS["validation_report"], "passed": False, "summary": "threshold missed"}
    new = world.evidence("validation_report", fixed, supersedes=old["evidence_id"])
    assert new["supersedes"] == old["evidence_id"]
    assert new["current"] is True
    _api, canonical = entry(world, new["seq"])
    assert canonical["payload"]["supersedes"] == old["evidence_id"]

    listed = {e["evidence_id"]: e for e in world.client.get(EVIDENCE, headers=world.auditor()).get_json()}
    assert list(listed) == [old["evidence_id"], card["evidence_id"], new["evidence_id"]]
    stale = listed[old["evidence_id"]]
    assert stale["superseded_by"] == new["evidence_id"]
    assert stale["current"] is False
    assert stale["fields"] == old["fields"]  # never edited
    assert stale["digest"] == old["digest"]

    current = world.client.get(EVIDENCE, query_string={"current_only": "true"},
                               headers=world.auditor()).get_json()
    assert [e["evidence_id"] for e in current] == [card["evidence_id"], new["evidence_id"]]
    current_reports = world.client.get(EVIDENCE, query_string={
        "current_only": "true", "kind": "validation_report"}, headers=world.auditor()).get_json()
    assert [e["evidence_id"] for e in current_reports] == [new["evidence_id"]]

    # the chain goes on from the newest one
    newest = world.evidence("validation_report", VALID_FIELDS["validation_report"],
                            supersedes=new["evidence_id"])
    listed = {e["evidence_id"]: e for e in world.client.get(EVIDENCE, headers=world.auditor()).get_json()}
    assert listed[old["evidence_id"]]["superseded_by"] == new["evidence_id"]
    assert listed[new["evidence_id"]]["superseded_by"] == newest["evidence_id"]


def test_superseding_twice_is_409(world, version):
    old = world.evidence("model_card", VALID_FIELDS["model_card"])
    first = world.evidence("model_card", {"content": "v2"}, supersedes=old["evidence_id"])
    with nothing_written(world):
        response = world.client.post(EVIDENCE, json={
            "kind": "model_card", "fields": {"content": "v3"}, "supersedes": old["evidence_id"]},
            headers=world.author())
    assert response.status_code == 409
    assert first["evidence_id"] in response.get_json()["message"]


def test_superseding_evidence_of_another_kind_is_422(world, version):
    card = world.evidence("model_card", VALID_FIELDS["model_card"])
    with nothing_written(world):
        response = world.client.post(EVIDENCE, json={
            "kind": "validation_report", "fields": VALID_FIELDS["validation_report"],
            "supersedes": card["evidence_id"]}, headers=world.author())
    assert response.status_code == 422
    assert "is a model_card, not a validation_report" in response.get_json()["message"]
    listed = world.client.get(EVIDENCE, headers=world.auditor()).get_json()
    assert [e["superseded_by"] for e in listed] == [None]


def test_superseding_unknown_or_foreign_evidence_is_404(world, version):
    world.version("credit-risk", "2")
    other = world.evidence("model_card", VALID_FIELDS["model_card"], version="2")
    with nothing_written(world):
        for target in ("ev-999", other["evidence_id"]):
            response = world.client.post(EVIDENCE, json={
                "kind": "model_card", "fields": {"content": "x"}, "supersedes": target},
                headers=world.author())
            assert response.status_code == 404, response.get_json()
    listed = world.client.get("/api/v1/models/credit-risk/versions/2/evidence",
                              headers=world.auditor()).get_json()
    assert listed[0]["superseded_by"] is None


# -- computed bias reports ---------------------------------------------------------

def labelled_sample(n: int = 60, seed: int = 7) -> dict:
    """A binary sample where every group has positives and negatives, with a real disparity."""
    rng = random.Random(seed)
    sex = ["f" if i % 2 else "m" for i in range(n)]
    age = [("<30", "30-50", "50+")[i % 3] for i in range(n)]
    y_true, y_pred = [], []
    for i in range(n):
        y_true.append(1 if (i % 5) in (0, 1) else 0)
        bias = 0.25 if sex[i] == "m" else 0.0
        y_pred.append(1 if rng.random() < 0.3 + bias + 0.4 * y_true[i] else 0)
    return {"y_true": y_true, "y_pred": y_pred, "sensitive_features": {"sex": sex, "age_band": age}}


def test_computed_bias_report_matches_fairlearn(world, version):
    import fairlearn
    from fairlearn.metrics import (
        demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference,
    )

    sample = labelled_sample()
    before = world.ledger_size()
    response = world.client.post(BIAS, json={**sample, "dataset": {"name": "loans", "version": "v1"}},
                                 headers=world.author())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert world.ledger_size() == before + 1
    assert body["kind"] == "bias_report"
    fields = body["fields"]
    assert fields["sample_size"] == len(sample["y_true"])
    assert fields["computed_by"] == f"service:fairlearn=={fairlearn.__version__}"
    assert fields["dataset"] == {"name": "loans", "version": "v1"}
    assert fields["sample_sha256"] == hashlib.sha256(canonical_bytes(sample)).hexdigest()
    assert [a["attribute"] for a in fields["attributes"]] == ["age_band", "sex"]

    y_true, y_pred = sample["y_true"], sample["y_pred"]
    for attribute in fields["attributes"]:
        groups = sample["sensitive_features"][attribute["attribute"]]
        expected = {
            "demographic_parity_difference":
                demographic_parity_difference(y_true, y_pred, sensitive_features=groups),
            "disparate_impact_ratio":
                demographic_parity_ratio(y_true, y_pred, sensitive_features=groups),
            "equalized_odds_difference":
                equalized_odds_difference(y_true, y_pred, sensitive_features=groups),
        }
        assert attribute["metrics"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        # and by hand: selection rate per group, max minus min
        rates = {}
        for group in sorted(set(groups)):
            picked = [p for p, g in zip(y_pred, groups) if g == group]
            rates[group] = sum(picked) / len(picked)
            got = attribute["group_metrics"][group]
            assert got["count"] == len(picked)
            assert got["selection_rate"] == pytest.approx(rates[group], rel=1e-9)
        assert attribute["groups"] == sorted(rates)
        assert attribute["metrics"]["demographic_parity_difference"] == pytest.approx(
            max(rates.values()) - min(rates.values()), rel=1e-9)
        assert attribute["metrics"]["disparate_impact_ratio"] == pytest.approx(
            min(rates.values()) / max(rates.values()), rel=1e-9)
    sex = next(a for a in fields["attributes"] if a["attribute"] == "sex")
    assert sex["metrics"]["demographic_parity_difference"] > 0.05  # the sample is biased

    _api, canonical = entry(world, body["seq"])
    assert canonical["payload"]["fields"] == fields
    assert body["digest"] == _api["leaf_hash"]


def test_computed_bias_report_can_supersede_a_declared_one(world, version):
    declared = world.evidence("bias_report", VALID_FIELDS["bias_report"])
    response = world.client.post(BIAS, json={**labelled_sample(), "supersedes": declared["evidence_id"]},
                                 headers=world.author())
    assert response.status_code == 201, response.get_json()
    computed = response.get_json()
    assert computed["supersedes"] == declared["evidence_id"]
    current = world.client.get(EVIDENCE, query_string={"current_only": "true"},
                               headers=world.auditor()).get_json()
    assert [e["evidence_id"] for e in current] == [computed["evidence_id"]]


def test_computed_bias_report_without_positive_predictions_has_no_ratio(world, version):
    """0/0 selection rates: fairlearn's ratio is NaN, recorded as null (JSON has no NaN)."""
    from fairlearn.metrics import demographic_parity_ratio

    sex = ["f", "m"] * 10
    sample = {"y_true": [0, 1] * 10, "y_pred": [0] * 20, "sensitive_features": {"sex": sex}}
    response = world.client.post(BIAS, json=sample, headers=world.author())
    assert response.status_code == 201, response.get_json()
    metrics = response.get_json()["fields"]["attributes"][0]["metrics"]
    assert math.isnan(demographic_parity_ratio(sample["y_true"], sample["y_pred"], sensitive_features=sex))
    assert metrics == {"demographic_parity_difference": 0, "disparate_impact_ratio": None,
                       "equalized_odds_difference": 0}
    _api, canonical = entry(world, response.get_json()["seq"])
    assert canonical["payload"]["fields"]["attributes"][0]["metrics"] == metrics


def _with(sample: dict, **changes) -> dict:
    return {**sample, **changes}


BASE = labelled_sample(20)
N = len(BASE["y_true"])
BAD_SAMPLES = {
    "y_pred shorter": (_with(BASE, y_pred=BASE["y_pred"][:-1]), "y_pred has 19 values"),
    "groups shorter": (_with(BASE, sensitive_features={"sex": BASE["sensitive_features"]["sex"][:-2]}),
                       "sensitive_features.sex has 18 values"),
    "label 2": (_with(BASE, y_true=[2] + BASE["y_true"][1:]), "y_true must hold binary labels"),
    "prediction -1": (_with(BASE, y_pred=[-1] + BASE["y_pred"][1:]), "y_pred must hold binary labels"),
    "boolean labels": (_with(BASE, y_true=[bool(v) for v in BASE["y_true"]]), "y_true"),
    "float labels": (_with(BASE, y_pred=[float(v) for v in BASE["y_pred"]]), "y_pred"),
    "one group": (_with(BASE, sensitive_features={"sex": ["f"] * N}), "needs at least two groups"),
    "one group of two attributes": (
        _with(BASE, sensitive_features={"sex": BASE["sensitive_features"]["sex"], "region": ["eu"] * N}),
        "sensitive_features.region needs at least two groups"),
    "no attribute": (_with(BASE, sensitive_features={}), "sensitive_features"),
    "too small": (_with(BASE, y_true=BASE["y_true"][:9], y_pred=BASE["y_pred"][:9],
                        sensitive_features={"sex": ["f", "m"] * 4 + ["f"]}), "at least 10 are needed"),
    "unknown field": (_with(BASE, weights=[1] * N), "weights"),
    "supersedes another kind": (_with(BASE, supersedes="ev-REPLACED"), "is a model_card, not a bias_report"),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLES))
def test_computed_bias_report_refuses_bad_samples(world, version, case):
    sample, message = BAD_SAMPLES[case]
    if sample.get("supersedes") == "ev-REPLACED":
        card = world.evidence("model_card", VALID_FIELDS["model_card"])
        sample = {**sample, "supersedes": card["evidence_id"]}
    with nothing_written(world):
        response = world.client.post(BIAS, json=sample, headers=world.author())
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert message in body["message"] or message in json.dumps(body.get("errors"))
    assert all(e["kind"] != "bias_report"
               for e in world.client.get(EVIDENCE, headers=world.auditor()).get_json())


def test_computed_bias_report_needs_an_author_and_a_version(world, version):
    sample = labelled_sample(20)
    with nothing_written(world):
        assert world.client.post(BIAS, json=sample).status_code == 401
        assert world.client.post(BIAS, json=sample, headers=world.auditor()).status_code == 403
        response = world.client.post("/api/v1/models/credit-risk/versions/7/evidence/bias-report",
                                     json=sample, headers=world.author())
        assert response.status_code == 404
