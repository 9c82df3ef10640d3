"""Every SQLite connection the service opens has the settings the ledger relies on.

Durability (WAL, ``synchronous=FULL``), integrity (foreign keys), patience
with the other worker's lock (``busy_timeout``) and reads without a memory
map (``ledger/db.py`` says why). Runs on a SQLite file of its own in both suites: the engine settings do
not depend on which database the rest of the suite uses.
"""

from __future__ import annotations

import sqlalchemy as sa

from ledger.db import SQLITE_BUSY_TIMEOUT_S, make_engine


def _pragmas(conn) -> dict:
    names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "mmap_size")
    return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names}


def test_every_pooled_connection_is_durable_and_reads_without_a_memory_map(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'settings.db'}")
    try:
        with engine.connect() as first, engine.connect() as second:  # two pool connections
            for conn in (first, second):
                assert _pragmas(conn) == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                                          "busy_timeout": SQLITE_BUSY_TIMEOUT_S * 1000,
                                          "mmap_size": 0}
    finally:
        engine.dispose()


def test_a_reader_sees_each_commit_of_another_connection(tmp_path):
    """No stale pages from the reader's cache: WAL frames and checkpoints both reach it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'reader.db'}")
    try:
        with engine.begin() as writer:
            writer.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        with engine.connect() as reader, engine.connect() as writer:
            for round_ in range(3):
                with writer.begin():
                    writer.execute(sa.text("INSERT INTO t (v) VALUES (:v)"),
                                   [{"v": f"{round_}-{i}" * 50} for i in range(200)])
                assert reader.exec_driver_sql("SELECT count(*), (SELECT v FROM t ORDER BY k DESC LIMIT 1) FROM t").one() == (
                    200 * (round_ + 1), f"{round_}-199" * 50)
                reader.rollback()  # end the read transaction, as a request does
                if round_ == 1:
                    busy, _, _ = writer.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
                    writer.commit()
                    assert busy == 0  # every page is now in the database file, none in the WAL
    finally:
        engine.dispose()
