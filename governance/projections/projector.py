"""Projection of ledger entries into the relational ``gov_*`` tables.

One function per entry kind turns an entry into rows. Each room marks its
functions with :func:`projects`; the application hands those modules to a
:class:`Projector` when it wires itself (nothing registers on import). The
same functions run in two places:

- live, as the ledger's projector: inside the append transaction, so rows and
  entries commit together (``Ledger.add_projector(projector.project)``);
- in :meth:`Projector.rebuild`, which deletes every projection row and replays
  the whole ledger through them under the append lock.

Handlers read only the entry (decoded from its canonical bytes, never from the
caller's objects) and rows projected before it, so a rebuild yields the same
rows. Every entry also becomes one ``gov_audit_event`` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.canonical import canonical_bytes

from . import tables


@dataclass(frozen=True, slots=True)
class EntryView:
    """A committed entry as projections see it."""

    seq: int
    ts: str
    kind: str
    actor: str
    subject: str
    payload: dict
    leaf_hash: str


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """What a handler tells the audit trail about its entry."""

    summary: str
    model: str | None = None
    version: str | None = None
    flagged: bool = False


def projects(kind: str, inserts_late: bool = False):
    """Mark the decorated function as the projection of entries of ``kind``.

    A :class:`Projector` given the function's module calls it as
    ``handler(conn, entry)``, with ``entry`` an :class:`EntryView`; it may
    return :class:`AuditFacts` for the entry's audit row.

    ``inserts_late``: the handler is called as ``handler(conn, entry, insert)``
    and gives its own rows to ``insert(statement, row)``, which live appends
    run just before COMMIT with the entries (one round trip less on
    PostgreSQL, and no SQLAlchemy statement execution). Only for rows that
    nothing reads or changes inside the transaction that writes them: rows of
    an entry the caller learns about only once it is committed, such as a
    decision the client must name to deploy. Rebuild inserts them at once.
    """

    def mark(handler):
        handler.projects_kind = kind
        handler.inserts_late = inserts_late
        return handler

    return mark


def canonical_text(value) -> str:
    """Canonical JSON text for JSON columns: equal values give equal text."""
    return canonical_bytes(value).decode("utf-8")


def subject_model(subject: str) -> tuple[str | None, str | None]:
    """Return (model, version) named by a ``model:<name>[@<version>]`` subject."""
    if not subject.startswith("model:"):
        return None, None
    name, _, version = subject[len("model:"):].partition("@")
    return name, version or None


def _decode(entry) -> EntryView:
    data = orjson.loads(entry.canonical)
    return EntryView(data["seq"], data["ts"], data["kind"], data["actor"], data["subject"],
                     data["payload"], entry.leaf_hash.hex())


_AUDIT_INSERT = sa.insert(tables.audit_event)


@dataclass(frozen=True, slots=True)
class _Replayed:
    canonical: bytes
    leaf_hash: bytes


class Projector:
    """The projections of every room the application wires, by entry kind."""

    def __init__(self, modules=()):
        self._handlers: dict[str, Callable] = {}
        for module in modules:
            self.add_module(module)

    def add_module(self, module) -> None:
        """Register every function of ``module`` marked with :func:`projects`.

        Raises:
            ValueError: two projections for one kind, or a module without any.
        """
        found = [value for value in vars(module).values()
                 if getattr(value, "projects_kind", None) and value.__module__ == module.__name__]
        if not found:
            raise ValueError(f"{module.__name__} has no projections")
        for handler in found:
            if handler.projects_kind in self._handlers:
                raise ValueError(f"two projections for {handler.projects_kind}")
            self._handlers[handler.projects_kind] = handler

    def project(self, conn: Connection, entries, writer=None) -> None:
        """Project committed-to-be entries (objects with ``canonical`` and ``leaf_hash``).

        Live (``writer`` given), the audit rows are inserted with the entries just
        before COMMIT (``LedgerWriter.defer_insert``): nothing reads the audit
        table inside a write transaction, and on PostgreSQL that saves a round
        trip per append. Rebuilding (no writer), they are inserted at once.
        """
        audit_rows = []
        if writer is not None:
            def insert(statement, row):
                writer.defer_insert(statement, [row])
        else:
            def insert(statement, row):
                conn.execute(statement, row)
        handlers = self._handlers
        for entry in entries:
            view = _decode(entry)
            handler = handlers.get(view.kind)
            if handler is None:
                facts = None
            elif handler.inserts_late:
                facts = handler(conn, view, insert)
            else:
                facts = handler(conn, view)
            if facts is None:
                model, version = subject_model(view.subject)
                facts = AuditFacts(f"{view.kind} {view.subject}", model, version)
            audit_rows.append({
                "seq": view.seq, "ts": view.ts, "kind": view.kind, "actor": view.actor,
                "subject": view.subject, "model_name": facts.model, "version": facts.version,
                "summary": facts.summary[:512], "flagged": facts.flagged, "leaf_hash": view.leaf_hash,
            })
        if not audit_rows:
            return
        if writer is not None:
            writer.defer_insert(_AUDIT_INSERT, audit_rows)
        else:
            conn.execute(_AUDIT_INSERT, audit_rows)

    def rebuild(self, ledger, batch: int = 2000) -> int:
        """Delete every projection row and replay the whole ledger; return entries replayed.

        Runs under the ledger's append lock, in one transaction: readers see the
        old rows or the new ones, and no append interleaves.
        """
        replayed = 0
        with ledger.store.write_transaction() as conn:
            for table in reversed(tables.PROJECTION_TABLES_IN_ORDER):
                conn.execute(sa.delete(table))
            pending = []
            for row in ledger.store.stream_for_verify(conn, 0):
                pending.append(_Replayed(bytes(row[1]), bytes(row[2])))
                if len(pending) >= batch:
                    self.project(conn, pending)
                    replayed += len(pending)
                    pending = []
            if pending:
                self.project(conn, pending)
                replayed += len(pending)
        return replayed


def snapshot(conn: Connection) -> dict[str, list[tuple]]:
    """Return every projection table's rows, sorted: for comparing rebuilds."""
    result = {}
    for table in tables.PROJECTION_TABLES_IN_ORDER:
        rows = conn.execute(sa.select(table)).all()
        result[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return result
