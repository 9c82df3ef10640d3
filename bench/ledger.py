"""Ledger throughput and latency against the raw limits of the same machine.

    .venv/bin/python -m bench.ledger                     # both backends, 1,000,000 entries
    .venv/bin/python -m bench.ledger --backend sqlite --quick

For each backend the run builds a private ledger (a SQLite file in a fresh
temporary directory, or a PostgreSQL database ``bench_<pid>`` created and
dropped by the run; never ``instance/``) through ``create_app`` with signed
checkpoints at the default cadence (every 10,000 entries or 60 seconds; key,
signer state, trusted keys and checkpoint mirror in the temporary directory),
then measures, each time beside the raw limit measured in the same run:

1. durable single appends/s (``Ledger.append``, one transaction each) against
   one-row-per-commit inserts of rows of the same size and shape with the plain
   driver (sqlite3 with WAL + synchronous=FULL; psycopg with
   synchronous_commit=on);
2. batched appends/s (``Ledger.append_many``, 1,000 per transaction, filling
   the ledger to ``--entries``) against the driver's ``executemany`` of the
   very rows just appended, 1,000 per transaction, into a table of the same
   definition; the two are interleaved batch by batch so both tables grow
   together under the same conditions;
3. full verification entries/s (``LedgerVerifier.verify_full``) against a
   plain paged SELECT of the same rows plus one SHA-256 per row;
4. inclusion- and consistency-proof latency (``Ledger.inclusion_proof`` and
   ``Ledger.consistency_proof``, random requests) against the one plain-driver
   query that fetches every stored node the proof needs, and against the same
   proof computed from nodes held in memory;
5. the raw SHA-256 rate over 512-byte inputs.

Measures 1-2 run with the projectors ``create_app`` attaches set aside (the
ledger alone); the ``+ projection`` rows repeat them, on fewer entries, with
the projectors attached, as the service runs. Each phase also records how much
of the machine's CPU other processes used meanwhile ("other load"): on a
shared machine, rerun (``--wait-idle``) until it is near zero.

Results are printed as one table per backend and written as JSON to
``bench/results/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app import create_app, upgrade_database
from ledger.merkle import Frontier, fold_range, inclusion_plan, consistency_plan, node_hash, perfect_nodes_of_range
from ledger.proofs import verify_consistency, verify_inclusion
from ledger.verify import LedgerVerifier

from .machine import conninfo, load_average, machine_info

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENTRY_TABLE = "ledger_entry"
RAW_TABLE = "raw_entry"
# Every column an entry row has had; RowShape reads which of them this schema has.
KNOWN_COLUMNS = ("seq", "ts", "kind", "actor", "subject", "canonical", "leaf_hash", "nodes")
VERIFY_PAGE = 20_000          # the page size of LedgerStore.stream_for_verify
ROUND = 25                    # single appends: alternate ours / raw in rounds of this many
# A kind no governance projection handles: entries get only the audit-trail row
# when projections are on (see run_backend), whatever governance/ registers.
KIND = "bench.model.version.registered"
TARGETS = {"single": 0.50, "batch": 0.40, "verify": 0.50, "proof_ms": 5.0}

_sha256 = hashlib.sha256


# -- output -------------------------------------------------------------------------------

def say(message: str = "") -> None:
    print(message, flush=True)


def note(message: str) -> None:
    """Progress, on stderr so that stdout holds only the report."""
    print(f"  .. {message}", file=sys.stderr, flush=True)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency(values: list[float]) -> dict:
    """p50 / p99 / max in milliseconds of a list of durations in seconds."""
    return {"p50_ms": percentile(values, 0.50) * 1e3, "p99_ms": percentile(values, 0.99) * 1e3,
            "max_ms": max(values) * 1e3, "n": len(values)}


# -- machine ------------------------------------------------------------------------------

def cpu_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / hz, sum(fields) / hz


def wait_until_idle(limit_s: float, threshold: float = 0.15, window_s: float = 3.0) -> None:
    """Wait (up to limit_s) until the machine's CPUs are idle for two windows in a row."""
    deadline = time.monotonic() + limit_s
    calm = 0
    while time.monotonic() < deadline:
        before = cpu_busy()
        time.sleep(window_s)
        after = cpu_busy()
        if not before or not after:
            return
        busy = (after[0] - before[0]) / max(1e-9, after[1] - before[1])
        calm = calm + 1 if busy < threshold else 0
        if calm >= 2:
            return
        if calm == 0:
            note(f"machine {busy:.0%} busy: waiting for it to be idle")
    note("machine still busy: measuring anyway (see the CPU line under each table)")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class Quietness:
    """How busy the machine was during a run, and how much of that was someone else.

    The benchmark's CPU is this process plus, for PostgreSQL, the server
    processes connected to its database and the server's shared background
    processes (WAL writer, checkpointer...). The rest of the machine's busy
    time is interference from other work, which makes every figure lower.
    """

    def __init__(self, backend):
        self.backend = backend
        self.load = load_average()
        self.busy = cpu_busy()
        self.own = sum(os.times()[:2])
        shared, clients = backend.server_processes()
        self.server_start = {pid: process_cpu(pid) for pid in shared + clients}

    def result(self) -> dict:
        shared_pids, client_pids = self.backend.server_processes()
        start = self.server_start
        # shared processes known at the start count from then; our backends
        # from then, or from their birth if they connected since
        server = sum(process_cpu(pid) - start[pid] for pid in shared_pids if pid in start)
        server += sum(process_cpu(pid) - start.get(pid, 0.0) for pid in client_pids)
        now = cpu_busy()
        own = sum(os.times()[:2]) - self.own
        out = {"load_start": self.load, "load_end": load_average()}
        if self.busy and now:
            busy, total = now[0] - self.busy[0], now[1] - self.busy[1]
            out.update({"machine_busy_s": busy, "elapsed_cpu_s": total, "this_process_s": own,
                        "server_s": server, "others_s": max(0.0, busy - own - server)})
        return out


def print_machine(info: dict) -> None:
    say("Machine")
    say(f"  date        {info['date']}")
    say(f"  cpu         {info['cpu']}, {info['cores']} cores, {info['memory']} RAM")
    say(f"  os          {info['kernel']}; temp dir {info['tempdir']}")
    say(f"  python      {info['python']}; SQLAlchemy {info['sqlalchemy']}; psycopg {info['psycopg']}")
    say(f"  code        {info['code']}")
    say(f"  sqlite      {info['sqlite']}")
    if info.get("load") is not None:
        say(f"  load        {info['load']:.2f} (1-minute load average at start)")
    pg = info.get("postgresql")
    if pg:
        extra = ", ".join(f"{k}={v}" for k, v in info.get("postgresql_settings", {}).items())
        say(f"  postgresql  {pg}" + (f" ({extra})" if extra else ""))
    say()


# -- payloads -----------------------------------------------------------------------------

MODELS = ["credit-risk-scorer", "fraud-detector", "churn-predictor", "demand-forecaster",
          "claims-triage", "aml-screening", "pricing-elasticity", "document-classifier"]
FRAMEWORKS = [("xgboost", "2.1.4"), ("lightgbm", "4.5.0"), ("scikit-learn", "1.6.1"),
              ("pytorch", "2.6.0"), ("tensorflow", "2.18.0")]
TEAMS = ["risk-analytics", "fraud-ml", "customer-insights", "supply-chain-ds", "claims-ai"]
TAGS = ["tabular", "gbdt", "pii", "regulated", "batch", "realtime", "eu", "us", "retrained", "champion"]
ACTORS = ["svc-model-registry", "alice@example.com", "bob@example.com", "ci-pipeline"]


def make_item(rng: random.Random) -> dict:
    """A model-version registration: 15 fields, nested metrics, entries of ~560 bytes."""
    model = rng.choice(MODELS)
    version = rng.randint(1, 500)
    framework, framework_version = rng.choice(FRAMEWORKS)
    payload = {
        "model": model,
        "version": version,
        "stage": rng.choice(["development", "staging", "production"]),
        "framework": f"{framework}=={framework_version}",
        "artifact_sha256": f"{rng.getrandbits(256):064x}",
        "dataset": f"{model}-train@v{rng.randint(1, 60)}",
        "metrics": {"auc": round(rng.uniform(0.6, 0.99), 4),
                    "precision": round(rng.uniform(0.5, 0.99), 4),
                    "recall": round(rng.uniform(0.5, 0.99), 4)},
        "owner": rng.choice(TEAMS),
        "risk_tier": rng.choice(["low", "medium", "high"]),
        "tags": rng.sample(TAGS, 2),
        "approved": rng.random() < 0.5,
    }
    return {"kind": KIND, "actor": rng.choice(ACTORS), "subject": f"model:{model}@{version}",
            "payload": payload}


class ItemPool:
    """Distinct items, handed out in slices (append_many does not mutate them)."""

    def __init__(self, size: int = 10_000, seed: int = 20261125):
        rng = random.Random(seed)
        self.items = [make_item(rng) for _ in range(size)]
        self.position = 0

    def take(self, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            chunk = self.items[self.position:self.position + n - len(out)]
            out.extend(chunk)
            self.position = (self.position + len(chunk)) % len(self.items)
        return out


_NODE_BYTES = os.urandom(32 * 64)


class RowShape:
    """The columns of the ledger's entry table, as the migrations created them.

    Raw rows are built for exactly these columns, so the raw limit always
    writes and reads rows of the same shape as the ledger's, whatever the
    schema of the day.
    """

    def __init__(self, engine):
        columns = [c["name"] for c in sqlalchemy.inspect(engine).get_columns(ENTRY_TABLE)]
        unknown = [c for c in columns if c not in KNOWN_COLUMNS]
        if unknown or "canonical" not in columns or columns[0] != "seq":
            raise SystemExit(f"{ENTRY_TABLE} has columns {columns}: teach bench/ledger.py RowShape "
                             f"how to fill {unknown or columns}")
        self.columns = columns
        self.sql = ", ".join(columns)
        self.canonical = columns.index("canonical")
        self._getters = [self._getter(c) for c in columns]

    @staticmethod
    def _getter(column):
        if column == "nodes":
            def nodes(entry):
                trailing_ones = (~entry.seq & (entry.seq + 1)).bit_length() - 1
                return _NODE_BYTES[:32 * trailing_ones] if trailing_ones else None
            return nodes
        return lambda entry: getattr(entry, column)

    def row(self, entry) -> tuple:
        """The row the ledger stored for an appended entry: same values, nodes of the same length."""
        return tuple(get(entry) for get in self._getters)


# -- backends -----------------------------------------------------------------------------

class SqliteBackend:
    name = "sqlite"
    label = "SQLite"
    p = "?"

    def __init__(self, workdir: Path, args):
        self.workdir = workdir
        self.path = workdir / "ledger.db"
        self.raw_path = workdir / "raw.db"
        self.raw = None

    def create(self) -> tuple[str, str | None]:
        return f"sqlite:///{self.path}", None

    def connect_raw(self, path: Path):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=60000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def open_raw(self, shape: RowShape) -> None:
        """A second database file beside the ledger's, holding a table of the same definition."""
        self.shape = shape
        with self.connect_raw(self.path) as ledger_db:
            ddl = ledger_db.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name=?",
                                    (ENTRY_TABLE,)).fetchone()[0]
        self.raw = self.connect_raw(self.raw_path)
        self.raw.execute(ddl.replace(ENTRY_TABLE, RAW_TABLE))
        self.reader = self.connect_raw(self.path)
        self.insert_sql = (f"INSERT INTO {RAW_TABLE} ({shape.sql}) "
                           f"VALUES ({', '.join('?' * len(shape.columns))})")

    def raw_single(self, row: tuple) -> None:
        raw = self.raw
        raw.execute("BEGIN")
        raw.execute(self.insert_sql, row)
        raw.execute("COMMIT")

    def raw_batch(self, rows: list[tuple]) -> None:
        raw = self.raw
        raw.execute("BEGIN")
        raw.executemany(self.insert_sql, rows)
        raw.execute("COMMIT")

    def read_page(self, sql: str, params: tuple) -> list[tuple]:
        return self.reader.execute(sql, params).fetchall()

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def server_processes(self) -> tuple[list[int], list[int]]:
        return [], []

    def close(self) -> None:
        for conn in (self.raw, getattr(self, "reader", None)):
            if conn is not None:
                conn.close()

    def drop(self) -> None:
        pass  # the directory goes


class PostgresBackend:
    name = "postgres"
    label = "PostgreSQL"
    p = "%s"

    def __init__(self, workdir: Path, args):
        self.admin_url = args.pg_url
        self.database = f"bench_{os.getpid()}"
        self.created = False
        self.raw = None
        self.reader = None

    def create(self) -> tuple[str, str | None]:
        with psycopg.connect(conninfo(self.admin_url), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        self.created = True
        url = make_url(self.admin_url).set(database=self.database)
        self.url = url.render_as_string(hide_password=False)
        return self.url, None

    def open_raw(self, shape: RowShape) -> None:
        """A table of the same definition in the same database, written by plain psycopg."""
        self.shape = shape
        self.raw = psycopg.connect(conninfo(self.url))
        self.raw.execute("SET synchronous_commit = on")
        self.raw.execute(f"CREATE TABLE {RAW_TABLE} (LIKE {ENTRY_TABLE} INCLUDING ALL)")
        self.raw.commit()
        self.raw_cursor = self.raw.cursor()
        self.reader = psycopg.connect(conninfo(self.url), autocommit=True)
        self.insert_sql = (f"INSERT INTO {RAW_TABLE} ({shape.sql}) "
                           f"VALUES ({', '.join(['%s'] * len(shape.columns))})")

    def raw_single(self, row: tuple) -> None:
        self.raw_cursor.execute(self.insert_sql, row)
        self.raw.commit()

    def raw_batch(self, rows: list[tuple]) -> None:
        self.raw_cursor.executemany(self.insert_sql, rows)
        self.raw.commit()

    def read_page(self, sql: str, params: tuple) -> list[tuple]:
        return self.reader.execute(sql, params).fetchall()

    def server_processes(self) -> tuple[list[int], list[int]]:
        """(the server's shared background processes, the backends connected to our database)."""
        try:
            with psycopg.connect(conninfo(self.admin_url), autocommit=True) as conn:
                rows = conn.execute("SELECT pid, backend_type, datname FROM pg_stat_activity "
                                    "WHERE pid <> pg_backend_pid()").fetchall()
        except psycopg.Error:
            return [], []
        shared = [pid for pid, kind, db in rows if kind != "client backend" and db is None]
        ours = [pid for pid, kind, db in rows if db == self.database]
        return shared, ours

    def version(self) -> str:
        with psycopg.connect(conninfo(self.admin_url)) as conn:
            return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0]

    def close(self) -> None:
        for conn in (self.raw, self.reader):
            if conn is not None:
                conn.close()

    def drop(self) -> None:
        if self.created:
            with psycopg.connect(conninfo(self.admin_url), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.created = False


BACKENDS = {"sqlite": SqliteBackend, "postgres": PostgresBackend}


def app_config(url: str, schema: str | None, workdir: Path) -> dict:
    """The app's configuration with every file of the ledger under ``workdir``."""
    instance = workdir / "instance"
    instance.mkdir()
    return {
        "TESTING": False,
        "DATABASE_URL": url,
        "DATABASE_SCHEMA": schema,
        "LEDGER_ORIGIN": "bench.example/ml-governance-ledger",
        "LEDGER_SIGNING_KEY": str(instance / "signing.key"),
        "LEDGER_SIGNING_KEY_PASSPHRASE": None,
        "LEDGER_SIGNER_STATE": str(instance / "signing.key.state.json"),
        "LEDGER_TRUSTED_KEYS": str(instance / "signing.key.trusted.json"),
        "LEDGER_CHECKPOINT_DIR": str(instance / "checkpoints"),
        "LEDGER_VERIFY_STATE": str(instance / "verify-state.json"),
        "LEDGER_CHECKPOINT_EVERY": 10_000,
        "LEDGER_CHECKPOINT_SECONDS": 60.0,
        "LEDGER_BACKGROUND_CHECKPOINTS": False,
    }


# -- measurements -------------------------------------------------------------------------

def measure_fill(ledger, backend, pool: ItemPool, entries: int, batch: int) -> dict:
    """Fill to ``entries`` with append_many; after each batch, the same rows raw."""
    ours = raw = 0.0
    done = 0
    next_note = entries // 10 or entries
    perf = time.perf_counter
    while done < entries:
        items = pool.take(min(batch, entries - done))
        t0 = perf()
        results = ledger.append_many(items)
        t1 = perf()
        rows = [backend.shape.row(r) for r in results]
        t2 = perf()
        backend.raw_batch(rows)
        t3 = perf()
        ours += t1 - t0
        raw += t3 - t2
        done += len(results)
        if done >= next_note:
            note(f"filled {done:,} entries: ours {rate(done, ours):,.0f}/s, raw {rate(done, raw):,.0f}/s")
            next_note += entries // 10 or entries
    return {"entries": done, "ours_s": ours, "raw_s": raw,
            "ours_per_s": rate(done, ours), "raw_per_s": rate(done, raw)}


def measure_single(ledger, backend, pool: ItemPool, n: int) -> dict:
    """n durable single appends against n one-row commits, alternating rounds of ROUND."""
    ours_t: list[float] = []
    raw_t: list[float] = []
    perf = time.perf_counter
    for warm in pool.take(3):  # first-use costs (statement caches) out of the figures
        ledger.append(**warm)
    while len(ours_t) < n:
        items = pool.take(min(ROUND, n - len(ours_t)))
        appended = []
        for item in items:
            t0 = perf()
            appended.append(ledger.append(item["kind"], item["actor"], item["subject"], item["payload"]))
            ours_t.append(perf() - t0)
        rows = [backend.shape.row(e) for e in appended]
        for row in rows:
            t0 = perf()
            backend.raw_single(row)
            raw_t.append(perf() - t0)
    return {"n": n, "ours_s": sum(ours_t), "raw_s": sum(raw_t),
            "ours_per_s": rate(n, sum(ours_t)), "raw_per_s": rate(n, sum(raw_t)),
            "ours_latency": latency(ours_t), "raw_latency": latency(raw_t)}


def raw_verify(backend) -> tuple[int, float]:
    """Plain driver: whole rows in pages by primary key, SHA-256 of each row's canonical bytes."""
    p = backend.p
    sql = (f"SELECT {backend.shape.sql} FROM {ENTRY_TABLE} "
           f"WHERE seq >= {p} ORDER BY seq LIMIT {VERIFY_PAGE}")
    at = backend.shape.canonical
    sha = _sha256
    n = 0
    position = 0
    t0 = time.perf_counter()
    while True:
        rows = backend.read_page(sql, (position,))
        for row in rows:
            sha(row[at]).digest()
        n += len(rows)
        if len(rows) < VERIFY_PAGE:
            break
        position = rows[-1][0] + 1
    return n, time.perf_counter() - t0


def measure_verify(ledger, backend) -> dict:
    """verify_full between two raw passes (the better raw pass is the limit)."""
    gc.collect()
    raw_n1, raw_s1 = raw_verify(backend)
    gc.collect()
    t0 = time.perf_counter()
    report = LedgerVerifier(ledger).verify_full()
    ours_s = time.perf_counter() - t0
    if not report.ok:
        raise SystemExit(f"verification FAILED: {report.summary()}")
    gc.collect()
    raw_n2, raw_s2 = raw_verify(backend)
    raw_rate = max(rate(raw_n1, raw_s1), rate(raw_n2, raw_s2))
    return {"entries": report.entries_checked, "ours_s": ours_s,
            "ours_per_s": rate(report.entries_checked, ours_s),
            "raw_passes_per_s": [rate(raw_n1, raw_s1), rate(raw_n2, raw_s2)], "raw_per_s": raw_rate,
            "checkpoints_checked": report.checkpoints_checked,
            "external_checked": report.external_checked, "summary": report.summary()}


class MemoryTree:
    """Every perfect node of the tree in lists: the proof algorithm without a database."""

    def __init__(self, leaves: list[bytes]):
        self.levels = [leaves]
        level = leaves
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)

    def _fold(self, nodes) -> bytes:
        levels = self.levels
        return fold_range([levels[n.level][n.index] for n in nodes])

    def inclusion(self, seq: int, size: int) -> tuple[bytes, list[bytes], bytes]:
        hashes = [self._fold(perfect_nodes_of_range(lo, hi)) for lo, hi in inclusion_plan(seq, size)]
        return self.levels[0][seq], hashes, self._fold(Frontier.nodes_for_size(size))

    def consistency(self, first: int, second: int) -> tuple[list[bytes], bytes, bytes]:
        plan = consistency_plan(first, second) if first != second else []
        hashes = [self._fold(perfect_nodes_of_range(lo, hi)) for lo, hi in plan]
        return (hashes, self._fold(Frontier.nodes_for_size(first)),
                self._fold(Frontier.nodes_for_size(second)))


def _rows_needed(ranges: list[tuple[int, int]], sizes: list[int], leaf: int | None = None) -> list[int]:
    nodes = [n for lo, hi in ranges for n in perfect_nodes_of_range(lo, hi)]
    for size in sizes:
        nodes.extend(Frontier.nodes_for_size(size))
    if leaf is not None:
        nodes.extend(perfect_nodes_of_range(leaf, leaf + 1))
    return sorted({n.last_leaf for n in nodes})


def measure_proofs(ledger, backend, n: int, seed: int = 7) -> dict:
    """n random inclusion and n random consistency proofs; raw and in-memory baselines."""
    rng = random.Random(seed)
    size = ledger.size()
    perf = time.perf_counter
    seqs = [rng.randrange(size) for _ in range(n)]
    pairs = []
    for _ in range(n):
        first = rng.randint(1, size)
        pairs.append((first, rng.randint(first, size)))
    for seq in seqs[:20]:  # warm-up: pool, statement caches
        ledger.inclusion_proof(seq)
        ledger.consistency_proof(max(1, seq), size)

    inc_t, inc_sizes, signed = [], [], 0
    for seq in seqs:
        t0 = perf()
        proof = ledger.inclusion_proof(seq)
        inc_t.append(perf() - t0)
        inc_sizes.append(proof.tree_size)
        signed += proof.checkpoint is not None
    cons_t = []
    for first, second in pairs:
        t0 = perf()
        ledger.consistency_proof(first, second)
        cons_t.append(perf() - t0)
    signed /= len(inc_sizes)

    # Raw limit: the one plain-driver query that returns every stored node a proof needs.
    p = backend.p
    raw_inc, raw_cons = [], []
    for seq, tree_size in zip(seqs, inc_sizes):
        wanted = _rows_needed(inclusion_plan(seq, tree_size), [tree_size], leaf=seq)
        sql = f"SELECT seq, leaf_hash, nodes FROM {ENTRY_TABLE} WHERE seq IN ({', '.join([p] * len(wanted))})"
        t0 = perf()
        backend.read_page(sql, tuple(wanted))
        raw_inc.append(perf() - t0)
    for first, second in pairs:
        plan = consistency_plan(first, second) if first != second else []
        wanted = _rows_needed(plan, [first, second])
        sql = f"SELECT seq, leaf_hash, nodes FROM {ENTRY_TABLE} WHERE seq IN ({', '.join([p] * len(wanted))})"
        t0 = perf()
        backend.read_page(sql, tuple(wanted))
        raw_cons.append(perf() - t0)

    # In-memory baseline: the same algorithm over nodes held in lists.
    t0 = perf()
    leaves = []
    position = 0
    sql = f"SELECT seq, leaf_hash FROM {ENTRY_TABLE} WHERE seq >= {p} ORDER BY seq LIMIT {VERIFY_PAGE}"
    while True:
        rows = backend.read_page(sql, (position,))
        leaves.extend(bytes(r[1]) for r in rows)
        if len(rows) < VERIFY_PAGE:
            break
        position = rows[-1][0] + 1
    tree = MemoryTree(leaves)
    build_s = perf() - t0
    mem_inc, mem_cons = [], []
    for seq, tree_size in zip(seqs, inc_sizes):
        t0 = perf()
        tree.inclusion(seq, tree_size)
        mem_inc.append(perf() - t0)
    for first, second in pairs:
        t0 = perf()
        tree.consistency(first, second)
        mem_cons.append(perf() - t0)

    # The ledger's proofs must be the in-memory ones, and must verify.
    for seq in seqs[:50]:
        proof = ledger.inclusion_proof(seq)
        leaf, hashes, root = tree.inclusion(seq, proof.tree_size)
        assert (proof.leaf_hash, proof.hashes, proof.root_hash) == (leaf, hashes, root), seq
        verify_inclusion(seq, proof.tree_size, proof.leaf_hash, proof.hashes, proof.root_hash)
    for first, second in pairs[:50]:
        proof = ledger.consistency_proof(first, second)
        assert (proof.hashes, proof.first_root, proof.second_root) == tree.consistency(first, second)
        if first != second:
            verify_consistency(first, second, proof.hashes, proof.first_root, proof.second_root)
    del tree, leaves
    gc.collect()
    return {"size": size, "n": n, "inclusion": latency(inc_t), "consistency": latency(cons_t),
            "inclusion_against_checkpoint": signed,
            "raw_inclusion": latency(raw_inc), "raw_consistency": latency(raw_cons),
            "memory_inclusion": latency(mem_inc), "memory_consistency": latency(mem_cons),
            "memory_tree_build_s": build_s}


def measure_sha256(n: int) -> dict:
    """hashlib.sha256(...).digest() over distinct 512-byte inputs."""
    blocks = [os.urandom(512) for _ in range(1024)]
    inputs = blocks * (n // len(blocks) + 1)
    inputs = inputs[:n]
    sha = _sha256
    t0 = time.perf_counter()
    for block in inputs:
        sha(block).digest()
    seconds = time.perf_counter() - t0
    return {"n": n, "per_s": rate(n, seconds), "mb_per_s": rate(n * 512, seconds) / 1e6,
            "us_each": seconds / n * 1e6}


def count_checkpoints(ledger) -> tuple[int, int]:
    with ledger.store.read() as conn:
        stored = len(ledger.store.checkpoints(conn))
    mirrored = len(ledger.mirror.notes()) if ledger.mirror else 0
    return stored, mirrored


def entry_sizes(ledger) -> dict:
    with ledger.store.read() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT AVG(LENGTH(canonical)), MIN(LENGTH(canonical)), MAX(LENGTH(canonical)) "
            f"FROM {ENTRY_TABLE}").first()
    return {"avg": float(rows[0]), "min": int(rows[1]), "max": int(rows[2])}


# -- one backend ----------------------------------------------------------------------------

# The audit row the governance projection writes for an entry of a kind it has no
# handler for, computed in SQL from the entry's canonical bytes.
AUDIT_BACKFILL = {
    "sqlite": ("INSERT INTO gov_audit_event (seq, ts, kind, actor, subject, model_name, version, summary, "
               "flagged, leaf_hash) SELECT seq, ts, kind, actor, subject, "
               "substr(subject, 7, instr(subject, '@') - 7), substr(subject, instr(subject, '@') + 1), "
               "kind || ' ' || subject, 0, lower(hex(leaf_hash)) FROM (SELECT seq, leaf_hash, "
               "json_extract(j, '$.ts') AS ts, json_extract(j, '$.kind') AS kind, "
               "json_extract(j, '$.actor') AS actor, json_extract(j, '$.subject') AS subject "
               "FROM (SELECT seq, leaf_hash, CAST(canonical AS TEXT) AS j FROM ledger_entry "
               "WHERE seq >= (SELECT COALESCE(MAX(seq) + 1, 0) FROM gov_audit_event)))"),
    "postgres": ("INSERT INTO gov_audit_event (seq, ts, kind, actor, subject, model_name, version, summary, "
                 "flagged, leaf_hash) SELECT seq, j->>'ts', j->>'kind', j->>'actor', j->>'subject', "
                 "split_part(substr(j->>'subject', 7), '@', 1), split_part(j->>'subject', '@', 2), "
                 "(j->>'kind') || ' ' || (j->>'subject'), false, encode(leaf_hash, 'hex') "
                 "FROM (SELECT seq, leaf_hash, convert_from(canonical, 'UTF8')::jsonb AS j FROM ledger_entry "
                 "WHERE seq >= (SELECT COALESCE(MAX(seq) + 1, 0) FROM gov_audit_event)) e"),
}


def backfill_audit(engine, name: str) -> float | None:
    """Give the entries appended without projections their audit rows, as if projected.

    So that the projected phase runs against an audit table (and its four
    indexes) of the ledger's size. Untimed set-up; None without governance.
    """
    if not sqlalchemy.inspect(engine).has_table("gov_audit_event"):
        return None
    t0 = time.perf_counter()
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(AUDIT_BACKFILL[name])
    except DBAPIError as e:  # the audit table changed shape: measure without
        note(f"audit backfill failed ({e.orig.__class__.__name__}); the projected phase starts "
             "from a small audit table")
        return None
    return time.perf_counter() - t0


def run_backend(name: str, args, sha: dict) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"ledger-bench-{name}-"))
    backend = BACKENDS[name](workdir, args)
    app = None
    started = time.perf_counter()
    try:
        url, schema = backend.create()
        quiet = Quietness(backend)
        interference: dict[str, float] = {}

        @contextmanager
        def watch(phase: str):
            """Record the share of the machine's CPU that other work used during a phase."""
            q = Quietness(backend)
            yield
            r = q.result()
            if "others_s" in r:
                interference[phase] = r["others_s"] / max(1e-9, r["elapsed_cpu_s"])

        app = create_app(app_config(url, schema, workdir))
        for logger in ("ledger", "alembic"):  # create_app logs at INFO: keep the report readable
            logging.getLogger(logger).setLevel(logging.WARNING)
        engine = app.extensions["db_engine"]
        upgrade_database(engine)
        ledger = app.extensions["ledger"]
        backend.open_raw(RowShape(engine))
        signing_time = {"s": 0.0, "n": 0}
        create_checkpoint = ledger.create_checkpoint

        def timed_checkpoint():  # instrument (not change) the signer: time spent signing
            t0 = time.perf_counter()
            try:
                return create_checkpoint()
            finally:
                signing_time["s"] += time.perf_counter() - t0
                signing_time["n"] += 1

        ledger.create_checkpoint = timed_checkpoint
        # The ledger alone first: the projectors create_app attached (governance's
        # audit trail) are set aside, and measured separately below.
        projectors = getattr(ledger, "projectors", None)
        attached = list(projectors or [])
        if projectors:
            projectors.clear()
        pool = ItemPool()
        say(f"[{backend.label}] filling to {args.entries:,} entries (append_many x {args.batch:,}) ...")
        gc.collect()
        with watch("fill"):
            fill = measure_fill(ledger, backend, pool, args.entries, args.batch)
        fill["checkpoint_s"] = signing_time["s"]
        fill["checkpoints"] = signing_time["n"]
        note("single appends")
        gc.collect()
        before = dict(signing_time)
        with watch("single"):
            single = measure_single(ledger, backend, pool, args.single)
        single["checkpoints"] = signing_time["n"] - before["n"]

        projected = None
        if attached and args.projected_batches + args.projected_single > 0:
            note("audit rows for the entries so far (untimed)")
            backfill_s = backfill_audit(engine, name)
            projectors.extend(attached)
            note("appends with the governance projection")
            gc.collect()
            with watch("projected_fill"):
                p_fill = measure_fill(ledger, backend, pool, args.projected_batches * args.batch, args.batch)
            gc.collect()
            with watch("projected_single"):
                p_single = measure_single(ledger, backend, pool, args.projected_single)
            projected = {"projectors": [getattr(p, "__module__", "?") + "." + getattr(p, "__name__", "?")
                                        for p in attached],
                         "audit_backfill_s": backfill_s, "fill": p_fill, "single": p_single}
        note("full verification")
        with watch("verify"):
            verify = measure_verify(ledger, backend)
        note("proofs")
        with watch("proofs"):
            proofs = measure_proofs(ledger, backend, args.proofs)
        stored, mirrored = count_checkpoints(ledger)
        result = {
            "backend": name, "version": backend.version(), "entries": ledger.size(),
            "entry_bytes": entry_sizes(ledger), "batch": args.batch,
            "fill": fill, "single": single, "projected": projected,
            "verify": verify, "proofs": proofs, "sha256": sha,
            "checkpoints": {"stored": stored, "mirrored": mirrored, "signing_s": signing_time["s"],
                            "signed_during_run": signing_time["n"]},
            "run_s": time.perf_counter() - started,
            "machine_load": quiet.result(),
            "interference": interference,
        }
        print_table(result)
        return result
    finally:
        backend.close()
        if app is not None:
            app.extensions["db_engine"].dispose()
        backend.drop()
        if args.keep:
            say(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# -- report ---------------------------------------------------------------------------------

def _verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def table_rows(r: dict) -> list[tuple[str, ...]]:
    """(measure, ours, raw limit, ratio, target, verdict, other load) rows of one backend."""
    f, s, v, p, h = r["fill"], r["single"], r["verify"], r["proofs"], r["sha256"]
    busy = r.get("interference", {})
    rows = []

    def other(phase):
        return f"{busy[phase]:.0%}" if phase in busy else ""

    def ratio_row(label, ours, raw, target, phase, unit="/s"):
        ratio = ours / raw
        shown = math.floor(ratio * 1000) / 10  # truncated: 49.98 % shows as 49.9 %, not 50 %
        rows.append((label, f"{ours:,.0f}{unit}", f"{raw:,.0f}{unit}", f"{shown:.1f}%",
                     f">= {target:.0%}", _verdict(ratio >= target), other(phase)))

    ratio_row(f"durable single appends ({s['n']:,})", s["ours_per_s"], s["raw_per_s"], TARGETS["single"],
              "single")
    ratio_row(f"batched appends (x{r['batch']:,}/txn)", f["ours_per_s"], f["raw_per_s"], TARGETS["batch"],
              "fill")
    ratio_row(f"full verify ({v['entries']:,} entries)", v["ours_per_s"], v["raw_per_s"], TARGETS["verify"],
              "verify")
    pj = r.get("projected")
    if pj:
        ps, pf = pj["single"], pj["fill"]
        ratio_row(f"  + projection: single ({ps['n']:,})", ps["ours_per_s"], ps["raw_per_s"],
                  TARGETS["single"], "projected_single")
        if pf["entries"]:  # --projected-batches 0 skips it
            ratio_row(f"  + projection: batched ({pf['entries']:,})", pf["ours_per_s"], pf["raw_per_s"],
                      TARGETS["batch"], "projected_fill")
    for kind in ("inclusion", "consistency"):
        ours, raw = p[kind], p[f"raw_{kind}"]
        rows.append((f"{kind} proof p50 / p99",
                     f"{ours['p50_ms']:.2f} / {ours['p99_ms']:.2f} ms",
                     f"{raw['p50_ms']:.2f} / {raw['p99_ms']:.2f} ms",
                     f"{ours['p50_ms'] / raw['p50_ms']:.1f}x raw",
                     f"<= {TARGETS['proof_ms']:.0f} ms p99",
                     _verdict(ours["p99_ms"] <= TARGETS["proof_ms"]), other("proofs")))
    for kind in ("inclusion", "consistency"):
        mem = p[f"memory_{kind}"]
        rows.append((f"  {kind}, nodes in memory", f"{mem['p50_ms']:.3f} / {mem['p99_ms']:.3f} ms",
                     "", "", "", "", ""))
    rows.append(("SHA-256 of 512 B (hashlib)", "", f"{h['per_s']:,.0f}/s", f"{h['mb_per_s']:,.0f} MB/s",
                 "", "", ""))
    return rows


def print_table(r: dict) -> None:
    header = ("measure", "ours", "raw limit (same run)", "ratio", "target", "", "other load")
    rows = [header] + table_rows(r)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    e = r["entry_bytes"]
    c = r["checkpoints"]
    say()
    say(f"== {r['version']}: {r['entries']:,} entries, canonical entry {e['avg']:.0f} B "
        f"(min {e['min']}, max {e['max']}) ==")
    for i, row in enumerate(rows):
        say("  " + "  ".join(cell.ljust(widths[j]) if j == 0 else cell.rjust(widths[j])
                             for j, cell in enumerate(row)).rstrip())
        if i == 0:
            say("  " + "  ".join("-" * w for w in widths))
    say("  other load: share of the machine's CPU used by other work during that phase (not this")
    say("  process, not its PostgreSQL backends); above ~10% the figures are depressed, unevenly.")
    s, p = r["single"], r["proofs"]
    say(f"  single-append latency p50/p99: ours {s['ours_latency']['p50_ms']:.2f}/"
        f"{s['ours_latency']['p99_ms']:.2f} ms, raw {s['raw_latency']['p50_ms']:.2f}/"
        f"{s['raw_latency']['p99_ms']:.2f} ms")
    say(f"  checkpoints signed: {c['signed_during_run']} during the run ({c['stored']} stored, "
        f"{c['mirrored']} mirrored), {c['signing_s']:.2f} s in total, inside the append figures")
    say(f"  proofs at {p['size']:,} entries, {p['n']:,} random requests each; "
        f"{p['inclusion_against_checkpoint']:.0%} of inclusion proofs against a signed checkpoint")
    if r.get("projected"):
        pj = r["projected"]
        backfill = (f"was first backfilled to the ledger's size ({pj['audit_backfill_s']:.1f} s, untimed)"
                    if pj["audit_backfill_s"] is not None else "could not be backfilled (small table)")
        say(f"  '+ projection' rows: appends with create_app's projectors attached "
            f"({', '.join(pj['projectors'])}): one gov_audit_event row per entry; the audit table "
            + backfill)
    say(f"  verify: {r['verify']['summary']}")
    q = r.get("machine_load", {})
    line = f"  backend run time {r['run_s']:.0f} s; load average {q.get('load_start')} -> {q.get('load_end')}"
    if "others_s" in q:
        line += (f"; CPU busy {q['machine_busy_s']:.0f} of {q['elapsed_cpu_s']:.0f} s: benchmark "
                 f"{q['this_process_s']:.0f} s" + (f" + server {q['server_s']:.0f} s" if q["server_s"] else "")
                 + f", other work {q['others_s']:.0f} s")
    say(line)
    say()


# -- main -------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--entries", type=int, default=1_000_000, help="fill the ledger to this many entries")
    ap.add_argument("--batch", type=int, default=1_000, help="entries per append_many transaction")
    ap.add_argument("--single", type=int, default=10_000, help="durable single appends to time")
    ap.add_argument("--proofs", type=int, default=2_000, help="random requests per proof kind")
    ap.add_argument("--projected-batches", type=int, default=50,
                    help="batches appended with create_app's projectors attached (0: skip)")
    ap.add_argument("--projected-single", type=int, default=2_000,
                    help="single appends with create_app's projectors attached (0: skip)")
    ap.add_argument("--sha-n", type=int, default=1_000_000, help="512-byte SHA-256 inputs to time")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 20,000 entries, 500 single appends, 200 proofs")
    ap.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
                    help="PostgreSQL server to create the bench_<pid> database on "
                         f"(default {DEFAULT_PG_URL}, or $BENCH_PG_URL)")
    ap.add_argument("--json", type=Path, help="write results here (default bench/results/ledger-<time>.json)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before each backend, wait up to this long for the machine's CPUs to be idle")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.entries = min(args.entries, 20_000)
        args.single = min(args.single, 500)
        args.proofs = min(args.proofs, 200)
        args.projected_batches = min(args.projected_batches, 5)
        args.projected_single = min(args.projected_single, 200)
        args.sha_n = min(args.sha_n, 200_000)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    info = machine_info(args.pg_url if "postgres" in names else None)
    print_machine(info)
    if args.wait_idle:
        wait_until_idle(args.wait_idle)
    sha = measure_sha256(args.sha_n)
    say(f"SHA-256, 512-byte inputs: {sha['per_s']:,.0f}/s ({sha['mb_per_s']:,.0f} MB/s, "
        f"{sha['us_each']:.2f} us each)")
    say()
    results = {"machine": info, "args": {k: str(v) if isinstance(v, Path) else v
                                         for k, v in vars(args).items()}, "backends": []}
    for i, name in enumerate(names):
        if args.wait_idle and i:
            wait_until_idle(args.wait_idle)
        results["backends"].append(run_backend(name, args, sha))
    path = args.json or RESULTS_DIR / f"ledger-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    say(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
