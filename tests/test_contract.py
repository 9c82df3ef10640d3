"""Every operation answers exactly the statuses /api/openapi.json declares for it.

For each operation of the document, the test makes it answer every error it
can: no token (401), a JWT without any role (403), a URL with a control
character and broken JSON (400), a body over MAX_CONTENT_LENGTH (413), a
body that is not JSON (415), a schema violation (422), a resource that does
not exist (404), the domain's refusals (409, 403, 422; see
contract_scenarios.py), the valid call itself (2xx), and a database that is
not migrated (503). The statuses observed must be the statuses declared:
one declared but never provoked is as wrong as one answered but not declared.
The whole suite's statuses are also checked against the document, as a
subset, by the session fixture in conftest.py (observed_statuses.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from app import create_app, upgrade_database
from conftest import app_config
from contract_scenarios import PLANS, Call, Scene, unknown_calls
from factories import World
from governance.identity import tokens
from governance.policy.registry import policy_set_json
from observed_statuses import StatusRecorder, declared_statuses, spec_of
from policy_fixtures.gate_scenarios import copy_policies

LIMIT = 64 * 1024
ISSUER, AUDIENCE = "https://idp.example.test/", "ml-governance"


@pytest.fixture
def signing_key():
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def scene(make_app, tmp_path, signing_key) -> Scene:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**OKPAlgorithm.to_jwk(signing_key.public_key(), as_dict=True),
                                          "kid": "idp-1", "alg": "EdDSA"}]}), encoding="utf-8")
    app = make_app(MAX_CONTENT_LENGTH=LIMIT, POLICY_DIR=str(copy_policies(tmp_path / "policies")),
                   OIDC_ISSUER=ISSUER, OIDC_AUDIENCE=AUDIENCE, OIDC_JWKS_FILE=str(jwks))
    return Scene(World(app))


def roleless_jwt(key) -> dict:
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "nobody", "iat": now, "exp": now + 600},
                       key, algorithm="EdDSA", headers={"kid": "idp-1"})
    return {"Authorization": f"Bearer {token}"}


def provocations(scene: Scene, operation_id: str, key):
    """Every call that should make the operation answer one of its statuses, each made when its turn comes.

    A valid call is made anew for each provocation: a fresh target where the
    call consumes one (an override to confirm, a deployment to roll back).
    """
    plan = PLANS[operation_id]

    def authorized(call: Call, headers: dict) -> Call:
        rest = {k: v for k, v in call.headers.items() if k != "Authorization"}
        return replace(call, headers={**rest, **headers})

    call = plan.valid(scene)
    yield replace(call, query={**call.query, "note": "a\x01b"})                           # 400
    yield authorized(plan.valid(scene), {})                                               # 401
    yield authorized(plan.valid(scene), roleless_jwt(key))                                # 403
    yield plan.valid(scene).with_body(b"x" * (LIMIT + 1), "application/octet-stream")     # 413
    yield plan.valid(scene).with_body(b'{"broken": ', "application/json")                 # 400
    yield plan.valid(scene).with_body(b"name=churn", "text/plain")                        # 415
    call = plan.valid(scene)
    yield replace(call, json={}, data=None, query={**call.query, "unexpected": "1"})       # 422
    yield from [plan.unknown(scene)] if plan.unknown else unknown_calls(plan.valid(scene))  # 404
    yield plan.valid(scene)                                                               # 2xx
    yield from plan.then(scene)


def test_every_operation_answers_exactly_the_statuses_it_declares(scene, signing_key, module_database,
                                                                  tmp_path):
    spec = spec_of(scene.world.app)
    operations = {op["operationId"]: (method, path) for path, item in spec["paths"].items()
                  for method, op in item.items() if isinstance(op, dict) and "operationId" in op}
    assert set(PLANS) == set(operations), "every operation needs a plan in contract_scenarios.py"
    with StatusRecorder() as recorder:
        requests = {}
        for operation_id in PLANS:  # in order: the checkpoint's 404 comes before any is signed
            for call in provocations(scene, operation_id, signing_key):
                response = call.send(scene.client)
                assert response.status_code < 500 or response.status_code == 503, (
                    operation_id, call, response.get_data(as_text=True)[:300])
            requests[operation_id] = PLANS[operation_id].valid(scene)
        broken_policy_files(scene)
        database_not_migrated(requests, module_database, tmp_path)

    declared = declared_statuses(spec)
    mismatched = {}
    for operation_id, key in operations.items():
        observed = recorder.seen.get(key, set())
        if observed != declared[key]:
            mismatched[operation_id] = {"answered, not declared": sorted(observed - declared[key]),
                                        "declared, never answered": sorted(declared[key] - observed)}
    assert mismatched == {}


def broken_policy_files(scene: Scene) -> None:
    """A reload of invalid files is a 422; the active set stays, and the files are mended again."""
    policy_dir = scene.world.app.config["POLICY_DIR"]
    path = f"{policy_dir}/broken.yaml"
    with open(path, "w", encoding="utf-8") as f:
        f.write("apiVersion: [not a policy\n")
    reload = Call("POST", "/policies/reload", headers=scene.admin)
    assert reload.send(scene.client).status_code == 422
    assert Call("GET", "/policies", headers=scene.auditor).send(scene.client).status_code == 200
    os.remove(path)
    assert reload.send(scene.client).status_code == 200


def database_not_migrated(requests: dict[str, Call], database, tmp_path) -> None:
    """Every operation answers 503 while the database is not migrated; then, migrated but with
    policy files that never loaded, reading the policy set is a 422."""
    instance = tmp_path / "unmigrated"
    instance.mkdir()
    broken = copy_policies(tmp_path / "broken-policies")
    (broken / "broken.yaml").write_text("apiVersion: [not a policy\n", encoding="utf-8")
    app = create_app(app_config(database, instance, POLICY_DIR=str(broken)))
    try:
        client = app.test_client()
        for operation_id, call in requests.items():
            response = call.send(client)
            assert response.status_code == 503, (operation_id, response.get_json())
        upgrade_database(app.extensions["db_engine"])
        token = tokens.create_token(app.extensions["ledger"], "operator:test", "audrey", ["auditor"])["token"]
        response = Call("GET", "/policies", headers={"Authorization": f"Bearer {token}"}).send(client)
        assert response.status_code == 422, response.get_json()
    finally:
        app.extensions["db_engine"].dispose()


def test_the_policy_set_body_is_the_whole_set(scene):
    """GET /api/v1/policies answers through its schema (PolicySetOut), which keeps every field."""
    registry = scene.world.app.extensions["policies"]
    response = Call("GET", "/policies", headers=scene.auditor).send(scene.client)
    assert response.status_code == 200
    with scene.world.app.app_context():
        assert response.get_json() == json.loads(json.dumps(policy_set_json(registry.current(), registry)))


def test_a_status_answered_but_not_declared_is_reported(world):
    """What the session fixture in conftest.py asserts about the whole suite can fail."""
    spec = spec_of(world.app)
    with StatusRecorder() as recorder:
        assert world.client.get("/api/v1/models/nothing", headers=world.auditor()).status_code == 404
        assert world.client.get("/api/v1/models", headers=world.auditor()).status_code == 200
        assert world.client.get("/api/v1/no-such-route").status_code == 404  # no operation: not recorded
    assert dict(recorder.seen) == {("get", "/api/v1/models/{name}"): {404}, ("get", "/api/v1/models"): {200}}
    assert recorder.undeclared() == {}
    del spec["paths"]["/api/v1/models/{name}"]["get"]["responses"]["404"]
    assert recorder.undeclared(spec) == {"GET /api/v1/models/{name}": [404]}
    del spec["paths"]["/api/v1/models"]
    assert recorder.undeclared(spec) == {"GET /api/v1/models": [200], "GET /api/v1/models/{name}": [404]}
