"""What a SQLite read costs right after a commit: by the same connection, by another, with and without mmap.

In WAL mode a connection that starts a read transaction after *another*
connection has committed drops its whole page cache and, when the file is
memory-mapped, unmaps it (SQLite's ``pagerBeginReadTransaction``: on a WAL
change, ``pager_reset`` and ``sqlite3OsUnfetch(fd, 0, 0)``); every page it
then touches is read (``pread``) or faulted in again. A commit by the *same*
connection leaves its cache valid. In the service every gunicorn worker reads
on pooled connections and writes on its own kept connection, so the first
read of every request pays this, as does the writer whenever the other
worker has committed since its last append.

This prints, for ``mmap_size`` 0 and 1 GiB, the time of one read
transaction (``BEGIN``, a point lookup in each of ``--tables`` tables,
``ROLLBACK``) when nothing was committed since (the floor), after the same
connection committed one row, and after another connection did, with the
ratio to the floor. Durable settings as in ``ledger/db.py`` (WAL,
``synchronous=FULL``).

    python -m bench.sqlite_reads [--rows 200000] [--tables 7] [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from .machine import machine_info

MMAP_SIZES = (0, 1 << 30)
OWN, FOREIGN = "after own commit", "after another connection's commit"


def _connect(path: Path, mmap: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", f"mmap_size={mmap}"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _build(path: Path, rows: int, tables: int) -> None:
    conn = _connect(path, 0)
    conn.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, body BLOB NOT NULL, key TEXT NOT NULL)")
    conn.execute("CREATE INDEX ix_log_key ON log (key)")
    for t in range(tables):
        conn.execute(f"CREATE TABLE t{t} (name TEXT PRIMARY KEY, payload TEXT NOT NULL)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO log (body, key) VALUES (?, ?)",
                     ((os.urandom(300), f"k{i % 997}") for i in range(rows)))
    for t in range(tables):
        conn.executemany(f"INSERT INTO t{t} VALUES (?, ?)",
                         ((f"n{i}", "x" * 200) for i in range(rows // tables)))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def measure(path: Path, mmap: int, tables: int, n: int, rows: int) -> dict[str, float]:
    """Mean µs of one read transaction: alone, after its own commit, after another connection's."""
    reader, other = _connect(path, mmap), _connect(path, mmap)
    queries = [f"SELECT payload FROM t{t} WHERE name = ?" for t in range(tables)]
    keys = [f"n{(i * 7919) % (rows // tables)}" for i in range(n)]

    def read(conn, i):
        conn.execute("BEGIN")
        for q in queries:
            conn.execute(q, (keys[i],)).fetchall()
        conn.execute("ROLLBACK")

    def commit(conn, i):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO log (body, key) VALUES (?, ?)", (os.urandom(300), f"k{i % 997}"))
        conn.execute("COMMIT")

    out = {}
    for case, writer in (("alone", None), (OWN, reader), (FOREIGN, other)):
        for i in range(200):  # warm the cache and the mapping
            read(reader, i)
        spent = 0.0
        for i in range(n):
            if writer is not None:
                commit(writer, i)
            t0 = time.perf_counter()
            read(reader, i)
            spent += time.perf_counter() - t0
        out[case] = spent / n * 1e6
    reader.close()
    other.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--tables", type=int, default=7, help="point lookups per read transaction")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args(argv)
    info = machine_info(None)
    print(f"{info['cpu']}, {info['cores']} cores, SQLite {info['sqlite']}, {info['python']}, "
          f"{info['tempdir']}, code {info['code']}")
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-reads-") as tmp:
        path = Path(tmp) / "reads.db"
        _build(path, args.rows, args.tables)
        size = path.stat().st_size
        print(f"database {size / 2**20:.0f} MiB; one read transaction = BEGIN, {args.tables} point "
              f"lookups, ROLLBACK; mean of {args.n}\n")
        print(f"{'mmap_size':>10}  {'alone (floor) µs':>17}  {'after own commit µs':>20}  "
              f"{'after another connection commit µs':>35}  {'ratio':>6}")
        for mmap in MMAP_SIZES:
            r = measure(path, mmap, args.tables, args.n, args.rows)
            foreign = r[FOREIGN]
            print(f"{mmap:>10}  {r['alone']:>17.1f}  {r[OWN]:>20.1f}  {foreign:>35.1f}  "
                  f"{foreign / r['alone']:>5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
