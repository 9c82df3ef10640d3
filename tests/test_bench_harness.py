"""The benchmark harness's own switches do what they say (bench/ is not shipped, but its figures are quoted)."""

import pytest

from bench import http_variants
from bench.http_servers import WorkerConfig, parse_config
from policy_fixtures.gate_scenarios import Gate


def test_every_variant_is_applied():
    # A name accepted but missing from ORDER would be measured as the plain app.
    assert set(http_variants.VARIANTS) == set(http_variants.ORDER)
    assert not set(http_variants.BEFORE_APP) & set(http_variants.VARIANTS)


@pytest.mark.parametrize("text, config, label, args", [
    ("sync-2", WorkerConfig("sync", 2), "sync 2", ["--workers", "2", "--worker-class", "sync"]),
    ("gthread-2x4", WorkerConfig("gthread", 2, 4), "gthread 2x4",
     ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]),
    ("granian-2x1", WorkerConfig("granian", 2, 1), "granian 2x1",
     ["--interface", "wsgi", "--workers", "2", "--blocking-threads", "1"]),
    ("granian-3", WorkerConfig("granian", 3, 1), "granian 3x1",
     ["--interface", "wsgi", "--workers", "3", "--blocking-threads", "1"]),
])
def test_server_configurations(text, config, label, args):
    parsed = parse_config(text)
    assert parsed == config
    assert parsed.label == label
    assert parsed.args() == args


def test_unknown_server_configuration_is_refused():
    with pytest.raises(ValueError, match="server configuration 'uwsgi-2'"):
        parse_config("uwsgi-2")


def test_the_removal_variants_skip_what_they_name_and_nothing_else(app, world, monkeypatch):
    # bench/http_variants' skip-cel, skip-context and skip-append put a number
    # on a part of a check by making it free; a variant that skipped nothing
    # (or something else) would make that number a lie.
    from governance import gate as gate_module
    from ledger.service import Ledger

    calls = {"evaluate": 0, "build_context": 0}
    for name, attribute in (("evaluate", "_evaluate"), ("build_context", "build_context")):
        real = getattr(gate_module, attribute)

        def counted(*args, name=name, real=real):
            calls[name] += 1
            return real(*args)

        monkeypatch.setattr(gate_module, attribute, counted)
    monkeypatch.setattr(Ledger, "append", Ledger.append)  # restored when the test ends
    gate = Gate(world)
    gate.compliant()
    ledger = app.extensions["ledger"]

    http_variants.VARIANTS["skip-cel"](app)
    first = gate.check()  # also creates the deployer's token and records the policy set
    second, staging = gate.check(), gate.check(environment="staging")
    assert first["decision"] == second["decision"] == staging["decision"] == "allow"
    assert first["results"] == second["results"]
    assert second["seq"] > first["seq"]
    # evaluated once per (model, version, environment); each context still built
    assert calls == {"evaluate": 2, "build_context": 3}

    http_variants.VARIANTS["skip-context"](app)
    http_variants.VARIANTS["skip-append"](app)
    size = ledger.size()
    answers = [gate.check(), gate.check(), gate.check(environment="staging")]
    assert [a["decision"] for a in answers] == ["allow"] * 3
    assert calls == {"evaluate": 2, "build_context": 5}
    # no decision reached the ledger: the answers carry the variant's own
    # numbers, far beyond the tree
    assert ledger.size() == size
    seqs = [a["seq"] for a in answers]
    assert len(set(seqs)) == 3 and min(seqs) >= 10**9
    # other entries are still appended
    gate.world.evidence("model_card", {"content": "v2"})
    assert ledger.size() == size + 1


def test_raw_check_shaped_commits_write_what_a_check_writes(tmp_path):
    import sqlite3

    from bench.http_api import raw_sqlite

    result = raw_sqlite(tmp_path, 2, 20, 30, shape="check")
    assert result["rows"] == 20
    db = sqlite3.connect(tmp_path / "raw-check-2.db")
    entries = db.execute("SELECT seq, length(canonical) FROM raw ORDER BY seq").fetchall()
    assert [seq for seq, _ in entries] == list(range(1, 21))
    assert {size for _, size in entries} == {7000}
    assert db.execute("SELECT decision_id FROM raw_decision ORDER BY seq").fetchall() == [
        (f"dc-{seq}",) for seq in range(1, 21)]
    assert db.execute("SELECT seq FROM raw_audit ORDER BY seq").fetchall() == [(seq,) for seq in range(1, 21)]
    indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                               "AND name NOT LIKE 'sqlite_autoindex%'")}
    assert len(indexes) == 5


def test_checks_are_compared_with_check_shaped_raw_commits_when_measured():
    from bench.http_api import raw_keys

    run = {"raw": {"1": {}, "16": {}, "check1": {}, "check16": {}}}
    assert raw_keys(run, "checks") == ("check1", "check16")
    assert raw_keys(run, "registrations") == ("1", "16")
    assert raw_keys({"raw": {"1": {}, "16": {}}}, "checks") == ("1", "16")  # an older run's figures


@pytest.mark.parametrize("variant, checkpointer", [("no-autocheckpoint", False), ("bg-checkpoint", True)])
def test_the_checkpoint_variants_take_checkpoints_out_of_the_commits(tmp_path, monkeypatch, variant, checkpointer):
    import os
    import time

    from ledger import db

    monkeypatch.setattr(db, "_configure_sqlite", db._configure_sqlite)  # restored when the test ends
    http_variants.BEFORE_APP[variant]()
    path = tmp_path / "variant.db"
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:  # the connection stays open in the pool afterwards
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"  # the app's settings stay
            conn.exec_driver_sql("CREATE TABLE t (x)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        # The committed pages (the schema's and the table's) are in the WAL; only a
        # checkpoint copies them into the database file, which holds one page before.
        deadline = time.monotonic() + (5 if checkpointer else 0.5)
        while os.path.getsize(path) <= 4096 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (os.path.getsize(path) > 4096) is checkpointer
    finally:
        for thread, stop in http_variants.CHECKPOINTERS:
            stop.set()
            thread.join(5)
        assert not any(thread.is_alive() for thread, _ in http_variants.CHECKPOINTERS)
        http_variants.CHECKPOINTERS.clear()
        engine.dispose()


def test_the_generic_plans_variant_sets_the_plan_cache_mode_on_postgresql_only(app):
    engine = app.extensions["db_engine"]
    listeners = len(engine.pool.dispatch.connect)
    http_variants.VARIANTS["generic-plans"](app)
    if engine.dialect.name != "postgresql":
        assert len(engine.pool.dispatch.connect) == listeners  # SQLite has no plan cache to set
        return
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_generic_plan"
