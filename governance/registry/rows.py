"""Reading registry rows: prebuilt lookups on the driver, JSON columns, repeat registrations."""

from __future__ import annotations

import json

from ledger.driver import select_all

from ..errors import ConflictError


def json_column(text):
    """A JSON column's value (None stays None)."""
    return json.loads(text) if text is not None else None


def same_or_conflict(what: str, recorded: dict, submitted: dict) -> None:
    """Accept a repeated registration only if every submitted field equals the recorded one.

    Raises:
        ConflictError: naming each field that differs.
    """
    different = sorted(k for k in submitted if recorded.get(k) != submitted[k])
    if different:
        raise ConflictError(f"{what} is already registered with different {', '.join(different)}",
                            errors={k: ["differs from the registered value"] for k in different})


def one_row(conn, statement, params: dict):
    """The row a prebuilt lookup finds, or None.

    On the driver (select_all), not through SQLAlchemy's execution layer:
    registrations, evidence submissions and sign-offs read these, some under
    the append lock (on SQLite 33 -> 10 us a read; on PostgreSQL, outside a
    transaction, one autocommit round trip instead of BEGIN, SELECT, ROLLBACK).
    """
    rows = select_all(conn, {"row": statement}, params)["row"]
    return rows[0] if rows else None
