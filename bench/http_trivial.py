"""A trivial WSGI app: the ceiling of the HTTP server itself on this machine.

Served by ``bench.http_api`` under each server configuration with the same
settings as the real app (access log on), it answers every request with a
small JSON object; no framework, no database.
"""

from __future__ import annotations

BODY = b'{"status":"ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
