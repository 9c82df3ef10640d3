"""Field types and helpers shared by the governance API blueprints."""

from __future__ import annotations

import re

import marshmallow as ma
from flask import current_app, g
from marshmallow import validate

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z"
SHA256_PATTERN = r"^[0-9a-f]{64}\Z"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def Name(**kwargs):
    """A model or dataset name."""
    return ma.fields.String(validate=validate.Regexp(
        NAME_PATTERN, error="must be 1-128 characters: letters, digits, '.', '_', '-'"), **kwargs)


def Version(**kwargs):
    """A version label."""
    return ma.fields.String(validate=validate.Regexp(
        VERSION_PATTERN, error="must be 1-64 characters: letters, digits, '.', '_', '+', '-'"), **kwargs)


def Sha256(**kwargs):
    """A lowercase hex SHA-256 digest."""
    return ma.fields.String(validate=validate.Regexp(
        SHA256_PATTERN, error="must be 64 lowercase hex characters (SHA-256)"), **kwargs)


def _no_control(value: str) -> None:
    if _CONTROL.search(value):
        raise ma.ValidationError("must not contain control characters")


def Text(max_length: int, min_length: int = 0, **kwargs):
    """Free text with a length limit and no control characters (newlines and tabs allowed)."""
    return ma.fields.String(validate=[validate.Length(min=min_length, max=max_length), _no_control],
                            **kwargs)


def Label(max_length: int = 128, min_length: int = 1, **kwargs):
    """A short single-line label."""
    return ma.fields.String(validate=[validate.Length(min=min_length, max=max_length), _no_control,
                                      validate.Regexp(r"^[^\n\r\t]*\Z", error="must be one line")],
                            **kwargs)


def Int(**kwargs):
    """A JSON integer: no strings, no floats (12.5 is refused, not truncated)."""
    return ma.fields.Integer(strict=True, **kwargs)


class _JsonBoolean(ma.fields.Boolean):
    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not bool:  # 1 == True in Python; in JSON it is a number
            raise self.make_error("invalid", input=value)
        return value


def Bool(**kwargs):
    """A JSON boolean: true or false, nothing that merely looks like one (not 1, not "yes")."""
    return _JsonBoolean(**kwargs)


def QueryBool(**kwargs):
    """A boolean query parameter: exactly ``true`` or ``false``."""
    return ma.fields.Boolean(truthy={"true"}, falsy={"false"}, **kwargs)


class StrictSchema(ma.Schema):
    """Schema refusing unknown fields (the default, said out loud)."""

    class Meta:
        unknown = ma.RAISE


def actor() -> str:
    """The authenticated principal of this request (set by require_roles)."""
    return g.principal.name


def engine():
    """The database engine."""
    return current_app.extensions["db_engine"]


def ledger():
    """The ledger service."""
    return current_app.extensions["ledger"]


def policies():
    """The policy registry (the active policy set)."""
    return current_app.extensions["policies"]


def created_status(result: dict) -> int:
    """201 for a new registration, 200 for an idempotent repeat."""
    return 201 if result.pop("created", True) else 200
