"""The statuses the API's operations answered, compared with those /api/openapi.json declares.

:class:`StatusRecorder` listens to Flask's ``request_finished`` signal, so it
sees every request any app of this process answers (through the test client
or a server thread), keyed by method and the route's OpenAPI path. The
session fixture in conftest.py records the whole suite and fails if an
operation answered a status its document does not declare;
tests/test_contract.py records its own requests and asks for equality.
"""

from __future__ import annotations

import re
from collections import defaultdict

from flask import request, request_finished

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def openapi_path(rule: str) -> str:
    """``/models/<name>/versions/<int:seq>`` -> ``/models/{name}/versions/{seq}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def spec_of(app) -> dict:
    """The OpenAPI document of an app, as GET /api/openapi.json serves it."""
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()


def declared_statuses(spec: dict) -> dict[tuple[str, str], set[int]]:
    """(method, path) -> the statuses the document declares for that operation."""
    return {(method, path): {int(status) for status in operation["responses"]}
            for path, item in spec["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS}


class StatusRecorder:
    """Records (method, OpenAPI path) -> statuses of every routed request while entered."""

    def __init__(self):
        self.seen: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.spec: dict | None = None

    def __enter__(self) -> StatusRecorder:
        request_finished.connect(self._record)
        return self

    def __exit__(self, *exc_info) -> None:
        request_finished.disconnect(self._record)

    def _record(self, sender, response, **extra) -> None:
        rule = request.url_rule  # None for a URL no route matched (a 404 or 405 of no operation)
        if rule is None or not rule.rule.startswith("/api/v1/"):
            return
        if self.spec is None:
            self.spec = spec_of(sender)
        self.seen[(request.method.lower(), openapi_path(rule.rule))].add(response.status_code)

    def undeclared(self, spec: dict | None = None) -> dict[str, list[int]]:
        """'METHOD path' -> the statuses answered that ``spec`` does not declare (all, for no operation)."""
        declared = declared_statuses(spec or self.spec or {"paths": {}})
        missing = {f"{method.upper()} {path}": sorted(statuses - declared.get((method, path), set()))
                   for (method, path), statuses in self.seen.items()}
        return {operation: statuses for operation, statuses in sorted(missing.items()) if statuses}
