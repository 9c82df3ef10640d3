"""Helpers that act as a database administrator on a test's ledger database.

The ledger never issues UPDATE or DELETE on its tables and the migration's
triggers reject them; a DBA (or an intruder with the DBA's password) can
still drop the triggers and rewrite rows. These helpers do exactly that,
through plain SQL on the dialect in use, so tests can show that every such
change is detected by verification (or refused by the rollback gate).

Nothing here goes through the ledger's own store: statements are written
out as a DBA would type them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from ledger.db import make_engine
from ledger.entry import ZERO_HASH, encode_entry, prepare_entry
from ledger.merkle import Frontier, leaf_hash

ENTRY_COLUMNS = ("seq", "canonical", "leaf_hash", "nodes")
CHECKPOINT_COLUMNS = ("id", "tree_size", "root_hash", "ts", "key_id", "note")
KEY_COLUMNS = ("key_id", "public_key", "algorithm", "name", "created", "retired")
TABLES = ("ledger_entry", "ledger_checkpoint", "ledger_key")

# Trigger names as migrations/versions/0001_ledger.py creates them.
SQLITE_TRIGGERS = {
    "ledger_entry": ("ledger_entry_no_update", "ledger_entry_no_delete"),
    "ledger_checkpoint": ("ledger_checkpoint_no_update", "ledger_checkpoint_no_delete"),
    "ledger_key": ("ledger_key_guard", "ledger_key_no_delete"),
}
POSTGRES_TRIGGERS = {
    "ledger_entry": ("ledger_entry_append_only", "ledger_entry_no_truncate"),
    "ledger_checkpoint": ("ledger_checkpoint_append_only", "ledger_checkpoint_no_truncate"),
    "ledger_key": ("ledger_key_guard", "ledger_key_no_truncate"),
}

_BINARY = {"canonical", "leaf_hash", "nodes", "root_hash", "public_key"}


def _plain(row) -> dict:
    """A result row as a dict, binary columns as ``bytes`` (never memoryview)."""
    out = {}
    for name, value in row._mapping.items():
        out[name] = bytes(value) if name in _BINARY and value is not None else value
    return out


class DBA:
    """A database administrator's session on one ledger database (or schema)."""

    def __init__(self, engine: Engine, owns_engine: bool = False):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._owns_engine = owns_engine

    @classmethod
    def for_app(cls, app) -> "DBA":
        """Act on the app's own engine (its pool is disposed by the fixtures)."""
        return cls(app.extensions["db_engine"])

    @classmethod
    def connect(cls, url: str, schema: str | None = None) -> "DBA":
        """Open a separate engine on the same database/schema; call :meth:`close`."""
        return cls(make_engine(url, schema=schema), owns_engine=True)

    def close(self) -> None:
        """Dispose of the engine if this DBA created it."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> "DBA":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    # -- arbitrary SQL ----------------------------------------------------------

    def execute(self, sql: str, params: dict | list[dict] | None = None) -> int:
        """Run one statement in its own transaction; return the affected row count."""
        with self.engine.begin() as conn:
            result = conn.execute(text(sql), params or {})
            return result.rowcount

    def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        """Return the rows of a query as dicts."""
        with self.engine.connect() as conn:
            return [_plain(row) for row in conn.execute(text(sql), params or {})]

    def scalar(self, sql: str, params: dict | None = None):
        """Return the first column of the first row."""
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params or {}).scalar()

    def current_schema(self) -> str | None:
        """The PostgreSQL schema this engine works in (None on SQLite)."""
        return self.scalar("SELECT current_schema()") if self.postgres else None

    # -- triggers -----------------------------------------------------------------

    def triggers(self) -> set[str]:
        """Names of the user-defined triggers on the ledger tables."""
        if self.postgres:
            found = self.rows(
                "SELECT t.tgname AS name FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT t.tgisinternal AND n.nspname = current_schema() "
                "AND c.relname IN ('ledger_entry', 'ledger_checkpoint', 'ledger_key')")
        else:
            found = self.rows("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                              "AND tbl_name IN ('ledger_entry', 'ledger_checkpoint', 'ledger_key')")
        return {row["name"] for row in found}

    def drop_append_only_triggers(self, tables=TABLES) -> None:
        """Drop the triggers that make ``tables`` append-only, as a DBA can."""
        names = POSTGRES_TRIGGERS if self.postgres else SQLITE_TRIGGERS
        with self.engine.begin() as conn:
            for table in tables:
                for name in names[table]:
                    if self.postgres:
                        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                    else:
                        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")

    # -- reading --------------------------------------------------------------------

    def entry_rows(self, start: int = 0) -> list[dict]:
        """Every entry row from ``start``, in seq order, all columns."""
        return self.rows(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM ledger_entry "
                         "WHERE seq >= :start ORDER BY seq", {"start": start})

    def entry_row(self, seq: int) -> dict:
        """One entry row, all columns."""
        found = self.rows(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM ledger_entry WHERE seq = :seq",
                          {"seq": seq})
        assert found, f"no entry {seq}"
        return found[0]

    def seqs(self) -> list[int]:
        """Every seq, ascending."""
        return [row["seq"] for row in self.rows("SELECT seq FROM ledger_entry ORDER BY seq")]

    def checkpoint_rows(self) -> list[dict]:
        """Every checkpoint row, smallest tree first."""
        return self.rows(f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM ledger_checkpoint "
                         "ORDER BY tree_size, id")

    def key_rows(self) -> list[dict]:
        """Every key row."""
        return self.rows(f"SELECT {', '.join(KEY_COLUMNS)} FROM ledger_key ORDER BY created, key_id")

    def snapshot(self) -> dict[str, list[dict]]:
        """Every row of the three ledger tables (to show that nothing changed)."""
        return {"ledger_entry": self.entry_rows(), "ledger_checkpoint": self.checkpoint_rows(),
                "ledger_key": self.key_rows()}

    # -- tampering ------------------------------------------------------------------

    def update_entry(self, seq: int, **values) -> None:
        """Set columns of one entry row (triggers must be gone)."""
        assert values and set(values) <= set(ENTRY_COLUMNS) - {"seq"}
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        count = self.execute(f"UPDATE ledger_entry SET {assignments} WHERE seq = :seq_",
                             {**values, "seq_": seq})
        assert count == 1, f"entry {seq} not updated"

    def replace_in_canonical(self, seq: int, old: bytes, new: bytes, fix_leaf_hash: bool = False) -> bytes:
        """Replace ``old`` by ``new`` (once) in an entry's canonical bytes; return the new bytes.

        With ``fix_leaf_hash`` the leaf_hash column is recomputed too, as a
        careful intruder would.
        """
        canonical = self.entry_row(seq)["canonical"]
        assert canonical.count(old) == 1, f"{old!r} is not in entry {seq} exactly once"
        changed = canonical.replace(old, new)
        values = {"canonical": changed}
        if fix_leaf_hash:
            values["leaf_hash"] = leaf_hash(changed)
        self.update_entry(seq, **values)
        return changed

    def delete_entries(self, first: int, last: int | None = None) -> int:
        """Delete entries ``first..last`` (inclusive; to the end when ``last`` is None)."""
        if last is None:
            return self.execute("DELETE FROM ledger_entry WHERE seq >= :first", {"first": first})
        return self.execute("DELETE FROM ledger_entry WHERE seq BETWEEN :first AND :last",
                            {"first": first, "last": last})

    def swap_entries(self, a: int, b: int) -> None:
        """Swap every column but seq between two entry rows."""
        row_a, row_b = self.entry_row(a), self.entry_row(b)
        columns = [c for c in ENTRY_COLUMNS if c != "seq"]
        assignments = ", ".join(f"{c} = :{c}" for c in columns)
        with self.engine.begin() as conn:
            for target, source in ((a, row_b), (b, row_a)):
                conn.execute(text(f"UPDATE ledger_entry SET {assignments} WHERE seq = :seq_"),
                             {**{c: source[c] for c in columns}, "seq_": target})

    def update_checkpoint(self, checkpoint_id: int, **values) -> None:
        """Set columns of one checkpoint row (triggers must be gone)."""
        assert values and set(values) <= set(CHECKPOINT_COLUMNS) - {"id"}
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        count = self.execute(f"UPDATE ledger_checkpoint SET {assignments} WHERE id = :id_",
                             {**values, "id_": checkpoint_id})
        assert count == 1, f"checkpoint #{checkpoint_id} not updated"

    def delete_checkpoints(self) -> int:
        """Delete every checkpoint row (triggers must be gone)."""
        return self.execute("DELETE FROM ledger_checkpoint")

    def insert_key(self, key_id: str, public_key: bytes, name: str, created: str,
                   algorithm: str = "Ed25519") -> None:
        """Insert a public key row (inserts are allowed even with the triggers)."""
        self.execute("INSERT INTO ledger_key (key_id, public_key, algorithm, name, created, retired) "
                     "VALUES (:key_id, :public_key, :algorithm, :name, :created, NULL)",
                     {"key_id": key_id, "public_key": public_key, "algorithm": algorithm,
                      "name": name, "created": created})

    def rewrite_history(self, seq: int, payload: dict) -> list[int]:
        """Give entry ``seq`` a new payload and recompute everything after it.

        Every later entry's canonical bytes (its ``prev`` link), its leaf hash
        and its stored Merkle nodes are recomputed with the ledger's own
        encoding functions, so the rewritten chain is internally consistent.
        Returns the rewritten seqs. Triggers must be gone.
        """
        frontier = Frontier()
        prev = ZERO_HASH
        updates = []
        for row in self.entry_rows():
            if row["seq"] < seq:
                prev = row["leaf_hash"]
                frontier.append(prev)
                continue
            envelope = json.loads(row["canonical"])
            prepared = prepare_entry(envelope["kind"], envelope["actor"], envelope["subject"],
                                     payload if row["seq"] == seq else envelope["payload"])
            data = encode_entry(prepared, row["seq"], prev, envelope["ts"])
            leaf = leaf_hash(data)
            completed = frontier.append(leaf)
            updates.append({"canonical": data, "leaf_hash": leaf,
                            "nodes": b"".join(completed) if completed else None, "seq_": row["seq"]})
            prev = leaf
        assert updates and updates[0]["seq_"] == seq, f"no entry {seq}"
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE ledger_entry SET canonical = :canonical, leaf_hash = :leaf_hash, "
                              "nodes = :nodes WHERE seq = :seq_"), updates)
        return [u["seq_"] for u in updates]

    # -- backups and restores ---------------------------------------------------------

    def sqlite_path(self) -> Path:
        """The SQLite database file."""
        assert not self.postgres
        return Path(self.engine.url.database)

    def sqlite_backup(self, target: Path) -> Path:
        """Copy the SQLite file as a cold backup: pool closed, WAL folded in first."""
        path = self.sqlite_path()
        self.engine.dispose()
        conn = sqlite3.connect(path)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, "the WAL could not be checkpointed"
        finally:
            conn.close()
        shutil.copyfile(path, target)
        return target

    def sqlite_restore(self, backup: Path) -> None:
        """Put a backup in place of the live file (stale -wal/-shm removed first)."""
        path = self.sqlite_path()
        self.engine.dispose()
        for suffix in ("-wal", "-shm"):
            try:
                os.remove(f"{path}{suffix}")
            except FileNotFoundError:
                pass
        shutil.copyfile(backup, path)

    def copy_prefix_to_schema(self, target_schema: str, entries: int) -> None:
        """PostgreSQL: fill an already migrated ``target_schema`` with this ledger's
        first ``entries`` entries, the checkpoints they cover and every key,
        as a backup taken at that size would hold them."""
        assert self.postgres
        source = self.current_schema()
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f'INSERT INTO "{target_schema}".ledger_key ({", ".join(KEY_COLUMNS)}) '
                f'SELECT {", ".join(KEY_COLUMNS)} FROM "{source}".ledger_key')
            conn.execute(text(
                f'INSERT INTO "{target_schema}".ledger_entry ({", ".join(ENTRY_COLUMNS)}) '
                f'SELECT {", ".join(ENTRY_COLUMNS)} FROM "{source}".ledger_entry WHERE seq < :n'),
                {"n": entries})
            conn.execute(text(
                f'INSERT INTO "{target_schema}".ledger_checkpoint ({", ".join(CHECKPOINT_COLUMNS)}) '
                f'OVERRIDING SYSTEM VALUE SELECT {", ".join(CHECKPOINT_COLUMNS)} '
                f'FROM "{source}".ledger_checkpoint WHERE tree_size <= :n'), {"n": entries})
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('\"{target_schema}\".ledger_checkpoint', 'id'), "
                f'COALESCE((SELECT max(id) FROM "{target_schema}".ledger_checkpoint), 0) + 1, false)')
