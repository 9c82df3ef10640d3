"""Response bodies written with orjson, keys sorted as Flask sorts them."""

from __future__ import annotations

import orjson
from flask.json.provider import DefaultJSONProvider

_COMPACT = {"separators": (",", ":")}


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson doing the encoding of plain values.

    Flask's own encoder is the standard library's: 22 µs for a deployment
    decision (3.3 KB), 0.2 ms for an audit page of 100 events, against 2 µs
    and 0.03 ms with orjson. Keys are sorted as Flask sorts them. What orjson
    would write differently is left to Flask: dates, datetimes, dataclasses
    and subclasses of built-in types go through Flask's ``default`` (HTTP
    dates, ``str`` of a Decimal or UUID); non-string keys, integers beyond 64
    bits and any call with other options (``indent`` in debug mode) go to Flask's
    encoder. Visible differences: non-ASCII text is written as UTF-8, not as
    ``\\u`` escapes (the same JSON value), and a NaN or infinity would be
    ``null`` instead of Flask's invalid ``NaN`` (the ledger stores neither).
    """

    _OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS)

    def dumps(self, obj, **kwargs) -> str:
        # Flask's response() and its session serializer ask for compact
        # separators, which is what orjson writes anyway.
        if not kwargs or kwargs == _COMPACT:
            try:
                return orjson.dumps(obj, default=self.default, option=self._OPTIONS).decode()
            except (TypeError, orjson.JSONEncodeError):
                pass  # Flask's encoder converts or explains
        return super().dumps(obj, **kwargs)
