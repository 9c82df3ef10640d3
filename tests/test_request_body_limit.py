"""MAX_CONTENT_LENGTH holds every request body, whatever its framing.

A body sent with ``Transfer-Encoding: chunked`` (or any body whose length the
server does not know in advance) is held to the same limit as one with a
``Content-Length``: over the limit is a 413 in the one error body shape (an
HTML page under ``/ui/``) and nothing is written; at the limit it is read
whole. The requests here go through the Flask test client, framed as a WSGI
server hands a chunked body over (no length, ``wsgi.input_terminated``);
tests/test_serve.py sends the same bodies through granian and gunicorn.
"""

from __future__ import annotations

import io
import json

import pytest

from factories import World
from policy_fixtures.web_scenarios import csrf_of

API = "/api/v1"
LIMIT = 64 * 1024
MODEL = {"name": "churn", "owner": "eve", "risk_tier": "minimal", "uses_personal_data": False}


@pytest.fixture
def world(make_app) -> World:
    return World(make_app(MAX_CONTENT_LENGTH=LIMIT))


def chunked(world: World, path: str, body: bytes, headers: dict | None = None,
            content_type: str = "application/json", client=None, stream=None):
    """POST ``body`` as a server hands a chunked one to the app: no length known, input terminated."""
    overrides = {"wsgi.input_terminated": True, **({"wsgi.input": stream} if stream else {})}
    return (client or world.client).post(
        path, data=body, content_type=content_type,
        headers={"Transfer-Encoding": "chunked", **(headers or {})}, environ_overrides=overrides)


class CutShort(io.RawIOBase):
    """A chunked body whose client goes away after some bytes."""

    def __init__(self, before: bytes):
        self.before = before

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.before:
            raise OSError("connection reset by peer")
        size = min(len(buffer), len(self.before))
        buffer[:size], self.before = self.before[:size], self.before[size:]
        return size


def refused(response, size_before: int, world: World) -> dict:
    """Assert a 413 in the one error body shape that wrote nothing; return the body."""
    out = response.get_json(silent=True)
    assert response.status_code == 413, (response.status_code, response.get_data(as_text=True)[:300])
    assert out["code"] == 413 and out["status"] == "Request Entity Too Large", out
    assert f"larger than {world.app.config['MAX_CONTENT_LENGTH']} bytes" in out["message"]
    assert world.ledger_size() == size_before
    return out


def test_valid_json_followed_by_megabytes_of_spaces_is_413_at_the_default_limit(make_app):
    world = World(make_app())
    headers = world.author()
    limit = world.app.config["MAX_CONTENT_LENGTH"]
    assert limit == 6 * 1024 * 1024
    size = world.ledger_size()
    body = json.dumps(MODEL).encode() + b" " * (7 * 1024 * 1024)
    refused(chunked(world, f"{API}/models", body, headers), size, world)
    assert world.client.get(f"{API}/models", headers=headers).get_json() == []


def test_a_long_chunked_string_is_413_not_a_truncated_400(world):
    headers = world.author()
    size = world.ledger_size()
    body = json.dumps({**MODEL, "description": "x" * (2 * LIMIT)}).encode()
    refused(chunked(world, f"{API}/models", body, headers), size, world)


@pytest.mark.parametrize("extra", [0, 1], ids=["at the limit", "one byte over"])
def test_the_limit_counts_the_bytes_sent(world, extra):
    headers = world.author()
    size = world.ledger_size()
    body = json.dumps({**MODEL, "description": "d" * 1000}).encode()
    body += b" " * (LIMIT - len(body) + extra)
    response = chunked(world, f"{API}/models", body, headers)
    if extra:
        refused(response, size, world)
    else:
        assert response.status_code == 201, response.get_json()
        assert world.client.get(f"{API}/models/churn", headers=headers).get_json()["description"] == "d" * 1000


def test_a_chunked_body_within_the_limit_is_read_whole(world):
    headers = world.author()
    fields = json.dumps({**MODEL, "description": "d" * 9000})
    body = (fields[:-1] + " " * 50_000 + fields[-1]).encode()  # the closing brace comes last, 60 KB in
    response = chunked(world, f"{API}/models", body, headers)
    assert response.status_code == 201, response.get_json()
    assert world.client.get(f"{API}/models/churn", headers=headers).get_json()["description"] == "d" * 9000


def test_an_endpoint_that_reads_no_body_still_refuses_one_over_the_limit(world):
    """Held at the door: the handler never runs, so no checkpoint is signed."""
    headers = world.headers("olga", "admin")
    size = world.ledger_size()
    for send in (lambda body: world.client.post(f"{API}/ledger/checkpoints", data=body, headers=headers),
                 lambda body: chunked(world, f"{API}/ledger/checkpoints", body, headers)):
        refused(send(b"x" * (LIMIT + 1)), size, world)
        assert world.client.get(f"{API}/ledger/checkpoint").status_code == 404
    assert world.client.post(f"{API}/ledger/checkpoints", headers=headers).status_code == 201


def test_a_chunked_document_over_the_limit_is_not_stored_truncated(world):
    assert world.app.config["GOV_MAX_DOCUMENT_BYTES"] > LIMIT  # the body limit is the one that applies
    headers = world.author()
    size = world.ledger_size()
    refused(chunked(world, f"{API}/documents", b"%" * (2 * LIMIT), headers, "application/octet-stream"),
            size, world)


def test_a_chunked_sign_in_form_over_the_limit_is_a_413_page_and_signs_nobody_in(world):
    client = world.app.test_client()
    token = world.token("audrey", "auditor")
    form = {"csrf_token": csrf_of(client.get("/ui/login").get_data(as_text=True)), "token": token}
    padded = "&".join(f"{k}={v}" for k, v in form.items()) + "&pad=" + "p" * (2 * LIMIT)
    response = chunked(world, "/ui/login", padded.encode(), content_type="application/x-www-form-urlencoded",
                       client=client)
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert f"larger than {LIMIT} bytes" in response.get_data(as_text=True)
    assert client.get("/ui/audit").status_code == 302  # still signed out
    # The same form, within the limit, signs in.
    small = "&".join(f"{k}={v}" for k, v in form.items()).encode()
    assert chunked(world, "/ui/login", small, content_type="application/x-www-form-urlencoded",
                   client=client).status_code == 302
    assert client.get("/ui/audit").status_code == 200


def test_a_chunked_body_cut_short_is_a_400_and_nothing_runs(world):
    """The client went away mid-body: the request is not handled as if its body were whole."""
    admin, author = world.headers("olga", "admin"), world.author()
    size = world.ledger_size()
    for path, headers in ((f"{API}/ledger/checkpoints", admin), (f"{API}/models", author)):
        response = chunked(world, path, b"", headers, stream=CutShort(json.dumps(MODEL).encode()[:20]))
        out = response.get_json()
        assert response.status_code == 400 and out["code"] == 400, out
        assert out["message"] == "the request body ended before it was complete"
    assert world.ledger_size() == size
    assert world.client.get(f"{API}/ledger/checkpoint").status_code == 404
