"""What the OpenAPI document says beyond flask-smorest's defaults.

- :class:`OneOfSchema`: a request body that is one of several schemas,
  chosen by the value of one field (evidence by its ``kind``). It loads with
  the chosen schema, and :class:`ContractPlugin` documents it as a ``oneOf``
  with a ``discriminator`` mapping each value to its schema.
- :func:`implied_errors`: the error responses an operation can give because
  of how it is built (it reads a token, a JSON body, a query string), so that
  no operation forgets one; an operation adds those of its domain (404, 409)
  with ``Blueprint.errors``. Every error response has the one body,
  :class:`~ledger.http.errors.ErrorSchema`.
"""

from __future__ import annotations

from collections.abc import Mapping

import marshmallow as ma
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import validate

# Why an operation answers each error status, unless it says more precisely.
ERROR_DESCRIPTIONS = {
    400: "the URL contains a control character",
    401: "no bearer token, or one that identifies nobody",
    403: "the caller lacks the role this needs",
    404: "no such resource",
    409: "conflicts with what is already recorded",
    413: "the request body is larger than MAX_CONTENT_LENGTH",
    415: "the body is not sent as JSON (Content-Type: application/json)",
    422: "a field is missing or invalid; errors names each one",
    503: "the database is unavailable or not migrated, or the ledger cannot sign; retry later",
}
JSON_400 = ("the body is not one JSON value (malformed, empty, duplicate keys, NaN, unsafe integers, "
            "lone surrogates), or the URL contains a control character")


class OneOfSchema(ma.Schema):
    """A JSON object that is one of several schemas, chosen by the value of its ``discriminator`` field.

    Subclasses set ``discriminator`` and ``variants`` (value -> schema class);
    each variant declares the discriminator as a required field holding its
    own value. A validation error raised by a variant carries that variant as
    ``schema`` so the error message can name it. It checks request bodies:
    it loads, it does not dump.
    """

    discriminator: str = "kind"
    variants: dict[str, type[ma.Schema]] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loaders = {value: schema() for value, schema in self.variants.items()}
        self._choice = validate.OneOf(list(self.variants))

    def load(self, data, *, many=None, partial=None, unknown=None):
        """Load ``data`` with the variant its discriminator names."""
        if many or (many is None and self.many):
            raise TypeError(f"{type(self).__name__} loads one object, not a list")
        if not isinstance(data, Mapping):
            raise ma.ValidationError({"_schema": [self.error_messages["type"]]})
        value = data.get(self.discriminator, ma.missing)
        if value is ma.missing:
            raise ma.ValidationError({self.discriminator: ["Missing data for required field."]})
        try:
            self._choice(value)
        except ma.ValidationError as e:
            raise ma.ValidationError({self.discriminator: e.messages}) from e
        loader = self._loaders[value]
        try:
            return loader.load(data, partial=partial, unknown=unknown)
        except ma.ValidationError as e:
            raise ma.ValidationError(e.messages, data=data, valid_data=e.valid_data, schema=loader) from e


class _Converter(OpenAPIConverter):
    def schema2jsonschema(self, schema):
        if isinstance(schema, OneOfSchema):
            refs = {value: self.resolve_nested_schema(variant) for value, variant in schema.variants.items()}
            return {"oneOf": list(refs.values()),
                    "discriminator": {"propertyName": schema.discriminator,
                                      "mapping": {value: ref["$ref"] for value, ref in refs.items()}}}
        return super().schema2jsonschema(schema)


class ContractPlugin(MarshmallowPlugin):
    """apispec's marshmallow plugin, documenting a :class:`OneOfSchema` as a discriminated ``oneOf``."""

    Converter = _Converter


def implied_errors(*, roles, json_body: bool, query: bool) -> dict[int, str]:
    """The error statuses an operation answers because of how it is built, with why.

    Every operation reads the URL (a control character is a 400), refuses a
    body over the size limit before its handler runs (413) and reads the
    database (503 when it cannot). A token check adds 401 and 403 (a JWT may
    carry no role at all, so even an endpoint every role may read can
    refuse); a JSON body adds 400, 415 and 422; query arguments 422.
    """
    errors = {400: ERROR_DESCRIPTIONS[400], 413: ERROR_DESCRIPTIONS[413], 503: ERROR_DESCRIPTIONS[503]}
    if roles:
        errors.update({401: ERROR_DESCRIPTIONS[401],
                       403: f"{ERROR_DESCRIPTIONS[403]}: one of {', '.join(roles)}"})
    if json_body:
        errors.update({400: JSON_400, 415: ERROR_DESCRIPTIONS[415], 422: ERROR_DESCRIPTIONS[422]})
    if query:
        errors[422] = ERROR_DESCRIPTIONS[422]
    return errors
