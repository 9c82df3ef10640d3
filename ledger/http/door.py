"""The door: requests refused before any handler runs, whatever part of the app they are for.

A body over ``MAX_CONTENT_LENGTH`` is a 413 whether it came with a length or
chunked; a body cut short is a 400; a URL with a control character is a 400.
Errors are raised, not returned, so each part renders them its own way (JSON
for the API, an HTML page under ``/ui/``) with the same status and message.
"""

from __future__ import annotations

import io
from urllib.parse import unquote

from flask import current_app, request
from werkzeug.exceptions import BadRequest, ClientDisconnected, RequestEntityTooLarge
from werkzeug.wsgi import get_content_length


def guard_the_door(app) -> None:
    """Install the body-length middleware and the two checks on ``app``."""
    app.wsgi_app = BodyOfUnknownLength(app.wsgi_app, app.config)
    app.before_request(refuse_bodies_over_the_limit)
    app.before_request(refuse_control_characters)


BODY_CUT_SHORT = "ledger_app.body_cut_short"  # environ key: a body without a length that could not be read


class BodyOfUnknownLength:
    """WSGI middleware: a body sent without a length is read at the door, up to the limit.

    werkzeug checks ``MAX_CONTENT_LENGTH`` against the ``Content-Length``
    header; a body without one (``Transfer-Encoding: chunked``) it reads up to
    the limit and silently stops there, so valid JSON followed by megabytes of
    spaces went through, and a long document was stored cut short. Here such
    a body is read (never more than the limit and one byte) before the app
    sees the request, and handed on with its length: one over the limit is
    then refused like any other, by :func:`refuse_bodies_over_the_limit`.
    Up to as much again of its rest is read and dropped, so that the client
    gets the 413: a server that closes a connection with unread input may
    reset it before the client reads the answer (granian does, now and then).
    """

    def __init__(self, wsgi_app, config):
        self.wsgi_app = wsgi_app
        self.config = config

    def __call__(self, environ, start_response):
        limit = self.config.get("MAX_CONTENT_LENGTH")
        # Without wsgi.input_terminated the server does not end the stream, and
        # werkzeug reads nothing of a body without a length: nothing to hold.
        if limit is not None and environ.get("wsgi.input_terminated") and get_content_length(environ) is None:
            try:
                body = b"".join(_read_at_most(environ["wsgi.input"], limit + 1))
                if len(body) > limit:
                    for _ in _read_at_most(environ["wsgi.input"], limit):
                        pass
            except (OSError, ValueError):  # the client went away, or broke the chunks
                body = b""
                environ[BODY_CUT_SHORT] = True
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["CONTENT_LENGTH"] = str(len(body))  # limit + 1 when over: refused unread
            environ["wsgi.input"] = io.BytesIO(body if len(body) <= limit else b"")
        return self.wsgi_app(environ, start_response)


def _read_at_most(stream, size: int):
    """Yield what ``stream`` holds, in pieces, until its end or ``size`` bytes."""
    while size > 0:
        part = stream.read(min(size, 64 * 1024))
        if not part:
            return
        size -= len(part)
        yield part


def refuse_bodies_over_the_limit():
    """Refuse a request whose body is over ``MAX_CONTENT_LENGTH`` (413) or was cut short (400)."""
    # Before any handler, so that an endpoint that never reads its body (a
    # checkpoint, a confirmation) refuses one over the limit too, unwritten.
    if request.environ.get(BODY_CUT_SHORT):
        raise ClientDisconnected("the request body ended before it was complete")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"the request body is larger than {limit} bytes (MAX_CONTENT_LENGTH)")
    return None


def refuse_control_characters():
    """Refuse a URL holding a control character (400)."""
    # A NUL or other control character in a path or query can name nothing;
    # PostgreSQL would refuse it deep inside a query, so refuse it at the door.
    raw = request.full_path
    if any(ch < " " or ch == "\x7f" for ch in unquote(raw)):
        # Raised, not returned, so each part renders it its own way (JSON for
        # the API, an HTML page under /ui/), with the same status and message.
        raise BadRequest("the URL contains a control character")
    return None
