"""Where the ledger's time goes, step by step (the evidence behind docs/performance.md).

    .venv/bin/python -m bench.breakdown                  # both backends, 100,000 entries
    .venv/bin/python -m bench.breakdown --backend sqlite

``bench.ledger`` says how fast each operation is against the raw limit; this
says which step of it costs what, by timing the ledger's own functions on the
benchmark's entries and by timing every SQL statement, commit and pool
checkout through SQLAlchemy events (so the ledger's code runs unchanged). The
``prototype`` lines time a candidate replacement written here, never in
``ledger/``; they show what a change would save, not what the ledger does.

It reaches into a few private names (``_fast_path_admits``, ``_check_text``);
a line whose function no longer exists is skipped.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import shutil
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import event

from app import create_app, upgrade_database
from bench.ledger import BACKENDS, ItemPool, Quietness, RowShape, app_config, say
from ledger import canonical, entry as entry_mod, merkle
from ledger.verify import LedgerVerifier

perf = time.perf_counter


def best_of(fn, n: int, repeat: int = 5) -> float:
    """Best per-item microseconds of ``fn()`` over ``repeat`` runs processing ``n`` items."""
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        t0 = perf()
        fn()
        best = min(best, perf() - t0)
    return best / n * 1e6


def line(label: str, us: float, note: str = "") -> None:
    say(f"  {label:58s} {us:9.2f} us" + (f"   {note}" if note else ""))


# -- prototypes (not the ledger's code) ----------------------------------------------------

def _admits_recursive(item, depth: int = 0) -> bool:
    """Prototype of canonical._fast_path_admits: recursive, ASCII keys short-circuit max().

    Admission rules as the ledger's at the time of writing, except that
    whole-number floats are not admitted (the benchmark's payloads have none):
    it shows what the walk itself costs.
    """
    kind = type(item)
    if kind is str or kind is bool or item is None:
        return True
    if kind is int:
        return -(2**53 - 1) <= item <= 2**53 - 1
    if kind is float:
        return math.isfinite(item) and not item.is_integer() and not 1e-6 <= abs(item) < 1e-5
    if depth >= 64:
        return False
    if kind is dict:
        for key, child in item.items():
            if type(key) is not str or (not key.isascii() and max(key) >= "\U00010000"):
                return False
            if type(child) is not str and not _admits_recursive(child, depth + 1):
                return False
        return True
    if kind is list:
        for child in item:
            if type(child) is not str and not _admits_recursive(child, depth + 1):
                return False
        return True
    return False


def _label_ascii(value: str) -> bytes | None:
    """Prototype fast path of entry._check_text for plain printable ASCII labels."""
    if type(value) is str and value.isascii() and value.isprintable() and '"' not in value \
            and "\\" not in value and value.strip():
        return b'"' + value.encode() + b'"'
    return None


class _AppendedTuple(NamedTuple):
    seq: int
    ts: str
    kind: str
    actor: str
    subject: str
    leaf_hash: bytes
    canonical: bytes


def _build_frontier(leaves: list[bytes]) -> None:
    frontier = merkle.Frontier()
    for leaf in leaves:
        frontier.append(leaf)


# -- SQL accounting ------------------------------------------------------------------------

# _begin_and_read_head: BEGIN (+ advisory lock) and the head read; _insert_and_commit:
# the entry rows and COMMIT (one pipeline each on PostgreSQL).
STORE_METHODS = ("_begin_and_read_head", "_insert_and_commit", "size", "fetch_nodes",
                 "latest_checkpoint", "checkpoint_by_size", "entry")


class SqlClock:
    """Time per statement kind, per store call, in commits and in pool checkouts (pre-ping included).

    The store's methods are timed as wholes (some run on the driver's cursor,
    which SQLAlchemy's events do not see); statements issued through
    SQLAlchemy outside them (BEGIN, the advisory lock, projections) are timed
    by statement kind.
    """

    def __init__(self, engine, store=None):
        self.engine = engine
        self.time = defaultdict(float)
        self.count = defaultdict(int)
        self.on = False
        self.inside = 0
        self.store = store
        if store is not None:
            for name in STORE_METHODS:
                if hasattr(store, name):
                    setattr(store, name, self._wrap_store(name, getattr(store, name)))
        dialect = engine.dialect
        self._orig = {name: getattr(dialect, name) for name in ("do_commit", "do_ping")}
        for name, orig in self._orig.items():
            setattr(dialect, name, self._wrap(name.removeprefix("do_"), orig))
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        self._t0 = 0.0

    def _wrap(self, label, orig):
        def timed(*args, **kwargs):
            t0 = perf()
            try:
                return orig(*args, **kwargs)
            finally:
                if self.on:
                    self.time[label] += perf() - t0
                    self.count[label] += 1
        return timed

    def _wrap_store(self, name, orig):
        label = f"LedgerStore.{name}"

        def timed(*args, **kwargs):
            self.inside += 1
            t0 = perf()
            try:
                return orig(*args, **kwargs)
            finally:
                self.inside -= 1
                if self.on:
                    self.time[label] += perf() - t0
                    self.count[label] += 1
        return timed

    @staticmethod
    def classify(sql: str) -> str:
        s = " ".join(sql.split())[:60].lower()
        for prefix, label in (("begin", "BEGIN [IMMEDIATE]"), ("select pg_advisory", "advisory lock"),
                              ("select seq, leaf_hash, canonical", "head"), ("select max(seq)", "size"),
                              ("insert into ledger_entry", "INSERT entries"),
                              ("insert into gov_audit_event", "INSERT audit rows"),
                              ("select seq, leaf_hash, nodes", "node lookup"),
                              ("select id, tree_size", "checkpoint lookup"),
                              ("select seq, canonical, leaf_hash, nodes", "verify page")):
            if s.startswith(prefix):
                return label
        return "other: " + s[:40]

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._t0 = perf()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self.on and not self.inside:
            label = self.classify(statement)
            self.time[label] += perf() - self._t0
            self.count[label] += 1

    @contextmanager
    def measuring(self):
        self.time.clear()
        self.count.clear()
        self.on = True
        try:
            yield self
        finally:
            self.on = False

    def close(self):
        if self.store is not None:
            for name in STORE_METHODS:
                self.store.__dict__.pop(name, None)
        for name, orig in self._orig.items():
            setattr(self.engine.dialect, name, orig)
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def print_split(total_s: float, n: int, clock: SqlClock, extra: dict[str, float], unit: str,
                transactions: int | None = None) -> None:
    """Print a per-``unit`` split: SQL by kind, extras, and the rest (Python + SQLAlchemy)."""
    accounted = 0.0
    per, per_n = ("transaction", transactions) if transactions else (unit, n)
    for label, seconds in sorted(clock.time.items(), key=lambda kv: -kv[1]):
        accounted += seconds
        if seconds / n * 1e6 < 0.05:
            continue
        line(f"{label} ({clock.count[label] / per_n:.2f} per {per})", seconds / n * 1e6)
    small = sum(v for v in clock.time.values() if v / n * 1e6 < 0.05)
    if small:
        line("other statements (checkpoint signing, lookups)", small / n * 1e6)
    for label, seconds in extra.items():
        line(label, seconds / n * 1e6)
        accounted += seconds
    line("rest: Python, SQLAlchemy, pool, checkpoint hook", (total_s - accounted) / n * 1e6)
    plural = "entries" if unit == "entry" else unit + "s"
    line(f"TOTAL per {unit}", total_s / n * 1e6, f"({n / total_s:,.0f} {plural}/s)")


# -- sections --------------------------------------------------------------------------------

def prepare_section(items: list[dict]) -> None:
    say("Preparing an entry (CPU only, best of 5 over 10,000 benchmark entries; per entry)")
    n = len(items)
    payloads = [i["payload"] for i in items]
    line("entry.prepare_entry (all of it)", best_of(lambda: [entry_mod.prepare_entry(**i) for i in items], n))
    storable = getattr(canonical, "storable_canonical_bytes", None)
    if storable:
        line("  canonical.storable_canonical_bytes(payload)", best_of(lambda: [storable(p) for p in payloads], n))
    line("    canonical.canonical_bytes(payload)", best_of(lambda: [canonical.canonical_bytes(p) for p in payloads], n))
    admits = getattr(canonical, "_fast_path_admits", None)
    if admits:
        line("      canonical._fast_path_admits(payload)", best_of(lambda: [admits(p) for p in payloads], n))
    import orjson
    opts = getattr(canonical, "_ORJSON_OPTIONS", orjson.OPT_SORT_KEYS)
    line("      orjson.dumps(payload, sorted keys)", best_of(lambda: [orjson.dumps(p, option=opts) for p in payloads], n))
    check = getattr(entry_mod, "_check_text", None)
    if check:
        line("  entry._check_text x3 (kind, actor, subject)", best_of(lambda: [
            (check("kind", i["kind"], 128), check("actor", i["actor"], 256), check("subject", i["subject"], 512))
            for i in items], n))
    line("  entry.KIND_PATTERN.match(kind)", best_of(lambda: [entry_mod.KIND_PATTERN.match(i["kind"]) for i in items], n))
    line("  PreparedEntry(...) construction", best_of(lambda: [
        entry_mod.PreparedEntry(i["kind"], i["actor"], i["subject"], b"h", b"s") for i in items], n))
    say("  prototypes (written here, not in ledger/):")
    assert all(_admits_recursive(p) for p in payloads)
    line("    recursive admits walk, ASCII keys skip max()", best_of(lambda: [_admits_recursive(p) for p in payloads], n))
    if check:
        for i in items[:100]:
            assert _label_ascii(i["actor"]) == check("actor", i["actor"], 256)
        line("    ASCII fast path for the three labels", best_of(lambda: [
            (_label_ascii(i["kind"]), _label_ascii(i["actor"]), _label_ascii(i["subject"])) for i in items], n))
    say()


def append_loop_section(ledger, items: list[dict]) -> None:
    say("The in-lock loop of append_prepared, without the database (per entry)")
    prepared = [ledger.prepare(**i) for i in items]
    n = len(prepared)
    ts = entry_mod.utc_timestamp()
    zero = bytes(32)
    line("entry.encode_entry", best_of(lambda: [entry_mod.encode_entry(p, k, zero, ts) for k, p in enumerate(prepared)], n))
    datas = [entry_mod.encode_entry(p, k, zero, ts) for k, p in enumerate(prepared)]
    line("leaf hash sha256(0x00 + data)", best_of(lambda: [merkle.leaf_hash(d) for d in datas], n))
    leaves = [merkle.leaf_hash(d) for d in datas]
    line("merkle.Frontier.append", best_of(lambda: _build_frontier(leaves), n))
    from ledger.service import AppendedEntry
    line("AppendedEntry(...) (slotted dataclass)", best_of(lambda: [
        AppendedEntry(k, ts, "k", "a", "s", zero, zero) for k in range(n)], n))
    line("  prototype: the same as a NamedTuple", best_of(lambda: [
        _AppendedTuple(k, ts, "k", "a", "s", zero, zero) for k in range(n)], n))
    line("entry.utc_timestamp (once per transaction)", best_of(lambda: [entry_mod.utc_timestamp() for _ in range(n)], n))
    say()


def batch_section(ledger, clock: SqlClock, pool: ItemPool, batches: int, batch: int, projected: bool) -> None:
    label = "with the governance projection" if projected else "ledger only"
    say(f"append_many x {batch:,}, {batches} transactions, {label} (per entry)")
    prepare_s = 0.0
    project_s = 0.0
    projectors = getattr(ledger, "projectors", [])
    originals = list(projectors)

    def timed(projector):
        def run(conn, entries, writer=None):
            nonlocal project_s
            t0 = perf()
            try:
                projector(conn, entries, writer)
            finally:
                project_s += perf() - t0
        return run

    projectors[:] = [timed(p) for p in originals] if projected else []
    original_prepare = ledger.prepare

    def timed_prepare(*args, **kwargs):
        nonlocal prepare_s
        t0 = perf()
        try:
            return original_prepare(*args, **kwargs)
        finally:
            prepare_s += perf() - t0

    ledger.prepare = timed_prepare
    try:
        gc.collect()
        total = 0.0
        with clock.measuring():
            for _ in range(batches):
                items = pool.take(batch)
                t0 = perf()
                ledger.append_many(items)
                total += perf() - t0
    finally:
        del ledger.prepare
        projectors[:] = originals
    sql_in_projection = sum(v for k, v in clock.time.items() if "audit" in k)
    extra = {"prepare (validate + canonicalise, before the lock)": prepare_s}
    if projected:
        extra["projector Python (decode, build rows; its SQL is above)"] = project_s - sql_in_projection
    print_split(total, batches * batch, clock, extra, "entry", transactions=batches)
    say()


def threads_section(ledger, pool: ItemPool, batches: int, batch: int) -> None:
    """append_many from one thread, then from two: preparing one batch while the other commits."""
    import threading
    say(f"append_many x {batch:,}, {batches} transactions, ledger only, by 1 and by 2 threads (per entry)")
    projectors = getattr(ledger, "projectors", [])
    originals = list(projectors)
    projectors.clear()
    raised: dict[str, int] = defaultdict(int)

    def run_part(part):
        for items in part:
            try:
                ledger.append_many(items)
            except Exception as e:  # counted and reported: see docs/performance.md
                raised[f"{type(e).__name__}: {str(e).splitlines()[0][:60]}"] += 1

    try:
        for threads in (1, 2):
            work = [pool.take(batch) for _ in range(batches)]
            gc.collect()
            t0 = perf()
            if threads == 1:
                for items in work:
                    ledger.append_many(items)
            else:
                workers = [threading.Thread(target=run_part, args=(work[k::2],)) for k in range(2)]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
            total = perf() - t0
            line(f"{threads} thread(s)", total / (batches * batch) * 1e6,
                 f"({batches * batch / total:,.0f} entries/s)")
        if raised:
            say(f"  !! {sum(raised.values())} append_many call(s) raised although their entries were "
                f"committed: {dict(raised)}")
    finally:
        projectors[:] = originals
    say()


def single_section(ledger, clock: SqlClock, pool: ItemPool, n: int, projected: bool) -> None:
    label = "with the governance projection" if projected else "ledger only"
    say(f"Ledger.append, {n:,} durable single appends, {label} (per append)")
    projectors = getattr(ledger, "projectors", [])
    originals = list(projectors)
    if not projected:
        projectors.clear()
    items = pool.take(n)
    prepare_s = best_of(lambda: [ledger.prepare(**i) for i in items], n, repeat=1) * n / 1e6
    try:
        gc.collect()
        total = 0.0
        with clock.measuring():
            for item in items:
                t0 = perf()
                ledger.append(item["kind"], item["actor"], item["subject"], item["payload"])
                total += perf() - t0
    finally:
        projectors[:] = originals
    print_split(total, n, clock, {"prepare (validate + canonicalise)": prepare_s}, "append")
    say()
    if not projected:
        proto_single_section(ledger, pool, n)


class ProtoAppender:
    """Prototype (not the ledger's code): the ledger's single append on the plain driver.

    Same statements in the same order (lock, head, insert, commit), the
    ledger's own prepare/encode/hash/frontier functions, into a copy of the
    entry table (``proto_entry``) so the ledger's own chain is untouched.
    ``mode``: "pool" checks a DBAPI connection out of the ledger's engine
    (pre-ping included) per append; "pipeline" (PostgreSQL) keeps one
    connection and sends lock + head in one round trip and insert + commit in
    another (psycopg pipeline mode); "dedicated" keeps one connection without.
    """

    def __init__(self, ledger, mode: str):
        self.ledger = ledger
        self.engine = ledger.store.engine
        self.sqlite = ledger.store.sqlite
        self.mode = mode
        p = "?" if self.sqlite else "%s"
        self.shape = RowShape(self.engine)
        self.insert = (f"INSERT INTO proto_entry ({self.shape.sql}) "
                       f"VALUES ({', '.join([p] * len(self.shape.columns))})")
        self.head_sql = "SELECT seq, leaf_hash, canonical FROM proto_entry ORDER BY seq DESC LIMIT 1"
        self.lock_sql = ("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '.proto', 0))")
        self.frontier = merkle.Frontier()
        self.last_ts = ""
        with self.engine.begin() as conn:
            if self.sqlite:
                ddl = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE type='table' AND name='ledger_entry'").scalar()
                conn.exec_driver_sql("DROP TABLE IF EXISTS proto_entry")
                conn.exec_driver_sql(ddl.replace("ledger_entry", "proto_entry"))
            else:
                conn.exec_driver_sql("DROP TABLE IF EXISTS proto_entry")
                conn.exec_driver_sql("CREATE TABLE proto_entry (LIKE ledger_entry INCLUDING ALL)")
        self.dedicated = None
        if mode in ("dedicated", "pipeline"):
            self.dedicated = self.engine.raw_connection()

    def _rows(self, prepared, head):
        size = head[0] + 1 if head else 0
        assert size == self.frontier.size
        prev = bytes(head[1]) if head else bytes(32)
        now = entry_mod.utc_timestamp()
        ts = now if now > self.last_ts else self.last_ts
        data = entry_mod.encode_entry(prepared, size, prev, ts)
        leaf = merkle.leaf_hash(data)
        completed = self.frontier.append(leaf)
        self.last_ts = ts
        values = {"seq": size, "ts": ts, "kind": prepared.kind, "actor": prepared.actor,
                  "subject": prepared.subject, "canonical": data, "leaf_hash": leaf,
                  "nodes": b"".join(completed) if completed else None}
        return tuple(values[c] for c in self.shape.columns)

    def append(self, item: dict) -> None:
        prepared = self.ledger.prepare(**item)
        if self.mode == "pipeline":
            conn = self.dedicated.driver_connection
            with conn.pipeline():
                lock = conn.cursor()
                lock.execute(self.lock_sql)
                cur = conn.cursor()
                cur.execute(self.head_sql)
                head = cur.fetchone()
                cur.execute(self.insert, self._rows(prepared, head))
                conn.commit()
            return
        raw = self.dedicated or self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN IMMEDIATE" if self.sqlite else self.lock_sql)
            cur.execute(self.head_sql)
            head = cur.fetchone()
            cur.execute(self.insert, self._rows(prepared, head))
            raw.commit()
        finally:
            if raw is not self.dedicated:
                raw.close()

    def close(self) -> None:
        if self.dedicated is not None:
            self.dedicated.close()
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS proto_entry")


def proto_single_section(ledger, pool: ItemPool, n: int) -> None:
    modes = ["pool", "dedicated"] + ([] if ledger.store.sqlite else ["pipeline"])
    say(f"  prototypes, {n:,} single appends each (written here, not in ledger/; per append):")
    for mode in modes:
        proto = ProtoAppender(ledger, mode)
        try:
            items = pool.take(n)
            for item in items[:20]:
                proto.append(item)
            gc.collect()
            t0 = perf()
            for item in items[20:]:
                proto.append(item)
            total = perf() - t0
        finally:
            proto.close()
        label = {"pool": "same statements, DBAPI connection from the pool per append",
                 "dedicated": "same statements, one DBAPI connection kept (no checkout)",
                 "pipeline": "the same, lock+head and insert+commit pipelined"}[mode]
        line(f"  {label}", total / (n - 20) * 1e6, f"({(n - 20) / total:,.0f}/s)")
    say()


def _fast_entry_check(data: bytes, seq: int, prev_hex: bytes, actor_json: bytes, kind_json: bytes,
                      subject_json: bytes, ts: str) -> bool:
    """Prototype: the envelope and column checks of the walk as two byte comparisons."""
    return data.startswith(b'{"actor":' + actor_json + b',"kind":' + kind_json + b',"payload":') and \
        data.endswith(b',"prev":"' + prev_hex + b'","seq":' + str(seq).encode() + b',"subject":'
                      + subject_json + b',"ts":"' + ts.encode() + b'"}')


def verify_section(ledger, backend, clock: SqlClock) -> None:
    say("verify_full over the ledger (per entry)")
    store = ledger.store
    shape = RowShape(store.engine)
    with store.read() as conn:
        rows = list(store.stream_for_verify(conn, 0))
    n = len(rows)
    gc.collect()
    t0 = perf()
    with clock.measuring():
        report = LedgerVerifier(ledger, use_external=False).verify_full()
    total = perf() - t0
    assert report.ok, report.summary()

    def stream():
        with store.read() as conn:
            for _ in store.stream_for_verify(conn, 0):
                pass
    line("verify_full (database anchors only)", total / n * 1e6, f"({n / total:,.0f} entries/s)")
    line("  LedgerStore.stream_for_verify alone (SQLAlchemy rows)", best_of(stream, n, 3))
    columns = len(rows[0])
    select = (f"SELECT {shape.sql} FROM ledger_entry "
              f"WHERE seq >= {backend.p} ORDER BY seq LIMIT 20000")

    def plain():
        position = 0
        while True:
            page = backend.read_page(select, (position,))
            if len(page) < 20000:
                return
            position = page[-1][0] + 1
    line("  whole rows, the same paging, through the plain driver", best_of(plain, n, 3))
    canon = [bytes(r[1]) for r in rows]
    line("  merkle.leaf_hash(canonical)", best_of(lambda: [merkle.leaf_hash(c) for c in canon], n))
    line("  entry.read_envelope(canonical)", best_of(lambda: [entry_mod.read_envelope(c) for c in canon], n))
    checker_cls = getattr(entry_mod, "LabelChecker", None)
    if checker_cls and columns >= 8:
        checker = checker_cls()
        line("  entry.LabelChecker.mismatches(...)", best_of(lambda: [
            checker.mismatches(bytes(r[1]), r[4], r[5], r[6], r[7]) for r in rows], n))
    leaves = [merkle.leaf_hash(c) for c in canon]
    line("  merkle.Frontier.append (+ its node hashes)", best_of(lambda: _build_frontier(leaves), n))
    if columns >= 8:
        cache: dict[str, bytes] = {}

        def label(text: str) -> bytes:
            encoded = cache.get(text)
            if encoded is None:
                encoded = cache[text] = canonical.canonical_string(text)
            return encoded

        prevs = [bytes(32)] + leaves[:-1]
        assert all(_fast_entry_check(c, r[0], p.hex().encode(), label(r[6]), label(r[5]), label(r[7]), r[4])
                   for c, r, p in zip(canon[:1000], rows, prevs))
        line("  prototype: envelope + columns as one startswith + one endswith", best_of(lambda: [
            _fast_entry_check(c, r[0], p.hex().encode(), label(r[6]), label(r[5]), label(r[7]), r[4])
            for c, r, p in zip(canon, rows, prevs)], n))
    say()


def proof_section(ledger, clock: SqlClock, n: int) -> None:
    import random
    rng = random.Random(3)
    size = ledger.size()
    for kind in ("inclusion", "consistency"):
        say(f"Ledger.{kind}_proof, {n:,} random requests at {size:,} entries (per proof)")
        gc.collect()
        total = 0.0
        with clock.measuring():
            for _ in range(n):
                if kind == "inclusion":
                    seq = rng.randrange(size)
                    t0 = perf()
                    ledger.inclusion_proof(seq)
                else:
                    first = rng.randint(1, size)
                    second = rng.randint(first, size)
                    t0 = perf()
                    ledger.consistency_proof(first, second)
                total += perf() - t0
        print_split(total, n, clock, {}, "proof")
        say()


def run(name: str, args) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"ledger-breakdown-{name}-"))
    backend = BACKENDS[name](workdir, args)
    app = clock = None
    try:
        url, schema = backend.create()
        app = create_app(app_config(url, schema, workdir))
        for logger in ("ledger", "alembic"):
            logging.getLogger(logger).setLevel(logging.WARNING)
        engine = app.extensions["db_engine"]
        upgrade_database(engine)
        ledger = app.extensions["ledger"]
        backend.open_raw(RowShape(engine))
        pool = ItemPool()
        say(f"===== {backend.version()} =====")
        projectors = getattr(ledger, "projectors", [])
        originals = list(projectors)
        projectors.clear()
        for _ in range(args.entries // 1000):
            ledger.append_many(pool.take(1000))
        projectors[:] = originals
        say(f"(filled to {ledger.size():,} entries without projections)")
        say()
        clock = SqlClock(engine, ledger.store)
        sections = []
        if name == args.backends[0]:
            sections += [lambda: prepare_section(pool.items), lambda: append_loop_section(ledger, pool.items)]
        if "batch" in args.only:
            sections.append(lambda: batch_section(ledger, clock, pool, args.batches, 1000, projected=False))
            sections.append(lambda: threads_section(ledger, pool, args.batches, 1000))
            if originals:
                sections.append(lambda: batch_section(ledger, clock, pool, args.batches, 1000, projected=True))
        if "single" in args.only:
            sections.append(lambda: single_section(ledger, clock, pool, args.single, projected=False))
            if originals:
                sections.append(lambda: single_section(ledger, clock, pool, args.single, projected=True))
        if "verify" in args.only:
            sections.append(lambda: verify_section(ledger, backend, clock))
        if "proofs" in args.only:
            sections.append(lambda: proof_section(ledger, clock, args.proofs))
        if "prepare" not in args.only:
            sections = sections[2:] if name == args.backends[0] else sections
        for section in sections:
            quiet = Quietness(backend)
            section()
            q = quiet.result()
            if "others_s" in q:
                say(f"  (other load during this section: {q['others_s'] / max(1e-9, q['elapsed_cpu_s']):.0%})")
                say()
    finally:
        if clock:
            clock.close()
        backend.close()
        if app is not None:
            app.extensions["db_engine"].dispose()
        backend.drop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    from bench.ledger import DEFAULT_PG_URL
    import os
    ap = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=30, help="append_many transactions to time")
    ap.add_argument("--single", type=int, default=2_000)
    ap.add_argument("--proofs", type=int, default=1_000)
    ap.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    ap.add_argument("--only", default="prepare,batch,single,verify,proofs",
                    help="comma-separated sections: prepare,batch,single,verify,proofs")
    args = ap.parse_args(argv)
    args.backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    args.only = set(args.only.split(","))
    for name in args.backends:
        run(name, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
