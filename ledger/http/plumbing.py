"""HTTP plumbing shared by every blueprint: strict JSON in, roles checked, the contract documented.

- :class:`Blueprint` parses JSON bodies with :func:`ledger.canonical.loads_strict`
  (duplicate keys, NaN/Infinity, lone surrogates and unsafe integers are a
  400), so what a handler sees always has a canonical form. It documents
  every operation with an ``operationId`` and every error response it can
  give (``openapi.implied_errors`` plus those a view names with
  :meth:`Blueprint.errors`), each with the one error body.
- :func:`require_roles` asks the authorizer the application registered (the
  governance package's token and OIDC check) for the principal. With no
  authorizer registered every protected endpoint answers 401: closed by
  default.
"""

from __future__ import annotations

import functools
import re
import typing
from copy import deepcopy

import flask_smorest
import marshmallow as ma
from flask import current_app, g
from flask.views import MethodView
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from ..canonical import loads_strict
from ..errors import CanonicalizationError
from .errors import describe_validation
from .openapi import ERROR_DESCRIPTIONS, implied_errors

AUTHORIZER_KEY = "authorizer"
_DIGITS = re.compile(r"^-?[0-9]{1,40}\Z")


class QueryInteger(ma.fields.Integer):
    """An integer in a query string: plain ASCII digits only.

    Python's ``int()`` also takes "١", "１" and "1_0"; a query parameter
    should not.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not _DIGITS.match(value):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictParser(FlaskParser):
    """webargs parser whose JSON loader refuses ambiguous JSON.

    Unknown query parameters are refused too: a typo such as ``?modle=x``
    must not silently return everything.
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": ma.RAISE}

    def _raw_load_json(self, req) -> typing.Any:
        if not is_json_request(req):
            if req.get_data(cache=True):
                abort(415, message=f"send the body as JSON (Content-Type: application/json), "
                      f"not {req.mimetype or 'no content type'}")
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            abort(400, message="the request body is empty; send a JSON object",
                  messages={"json": ["Request body is empty."]})
        try:
            return loads_strict(data)
        except CanonicalizationError as e:
            abort(400, message=f"invalid JSON body: {e}", messages={"json": [str(e)]})

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        """A 422 whose message names each bad field (and the schema of a field holding an object)."""
        schema = error.kwargs.get("schema", schema)  # the variant a OneOfSchema chose
        abort(error_status_code or self.DEFAULT_VALIDATION_STATUS, exc=error, messages=error.messages,
              schema=schema, headers=error_headers,
              message=f"validation failed: {describe_validation(error.messages, schema)}")


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest blueprint with the strict JSON parser, documenting each operation's errors."""

    ARGUMENTS_PARSER = StrictParser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_contract_doc)

    @staticmethod
    def errors(*statuses):
        """Declare the errors a view answers besides those its decorators imply.

        Each of ``statuses`` is a status (described generically) or a
        ``(status, description)`` pair: ``@blp.errors((404, "no such model"), 409)``.
        """
        declared = dict(s if isinstance(s, tuple) else (s, ERROR_DESCRIPTIONS[s]) for s in statuses)

        def decorate(view):
            view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
            view._apidoc.setdefault("errors", {}).update(declared)
            return view

        return decorate

    def _store_endpoint_docs(self, endpoint, obj, parameters, tags, **options):
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        is_view_class = isinstance(obj, type(MethodView))
        for method, doc in self._docs[endpoint].items():
            if method != "parameters":
                view = getattr(obj, method) if is_view_class else obj
                doc["view"] = {"name": obj.__name__, "roles": getattr(view, "required_roles", ())}

    def _prepare_contract_doc(self, doc, doc_info, *, api, method, **kwargs):
        """operationId (unless the view gives one) and every error response, with the one body."""
        view = doc_info["view"]
        doc.setdefault("operationId", f"{self.name}.{view['name']}.{method}")
        # The body's parameter has become doc["requestBody"] by now; the query's stay parameters.
        query = any(p.get("in") == "query" for p in doc.get("parameters", []))
        json_body = "application/json" in doc.get("requestBody", {}).get("content", {})
        responses = {int(status): response for status, response in doc.get("responses", {}).items()}
        implied = implied_errors(roles=view["roles"], json_body=json_body, query=query)
        for status, description in implied.items():
            # unless alt_response described it; flask-smorest's own 422 is a bare reference
            if not isinstance(responses.get(status), dict):
                responses[status] = {"description": description}
        responses.update((status, {"description": description})
                         for status, description in doc_info.get("errors", {}).items())
        for status, response in responses.items():  # alt_response(409, ...) included
            if status >= 400 and isinstance(response, dict):
                response.setdefault("content", {"application/json": {"schema": api.ERROR_SCHEMA}})
        doc["responses"] = dict(sorted(responses.items()))
        return doc

    def arguments(self, schema, *args, **kwargs):
        """As flask-smorest's; a schema class is instantiated once, here.

        Given a class, webargs builds a new instance on every request (18 µs
        for a check's, 48 µs for a version registration's); an instance is
        reused, and loading with it keeps no state between requests.
        """
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)


def require_roles(*roles: str):
    """Decorate a view so it needs a principal holding any of ``roles``.

    The principal is left in ``g.principal`` for the handler (it becomes the
    ``actor`` of any entry written).
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            authorizer = current_app.extensions.get(AUTHORIZER_KEY)
            if authorizer is None:
                abort(401, message="authentication required: no authorizer is configured")
            g.principal = authorizer(roles)
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate
