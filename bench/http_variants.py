"""The app with experimental changes applied from outside, to measure a suggestion.

    BENCH_VARIANT=auth-cache,lock-stats gunicorn 'bench.http_variants:create_app()'

Used by ``bench.http_profile --variants``; nothing here is part of the
application, and nothing in the application is edited: each variant replaces
a module-level function after ``create_app()`` built the app as usual, with
the same behaviour on the paths the benchmark drives. They exist to put a
number on a suggested change before anyone makes it.

- ``auth-cache``: ``governance.identity.authenticate_token`` answers from a
  per-process cache for 5 seconds (a revoked token would keep working for up
  to that long in a worker that saw it; a real change would have to accept
  or avoid that).
(The ``prebuilt-sql``, ``lean-register`` and ``audit-skip-dump`` variants
measured in docs/performance-http.md have since been made in the
application itself and are gone from here.)
- ``switch-interval``: ``sys.setswitchinterval(0.0005)`` in every worker (the
  default is 5 ms: a thread that gave up the GIL for I/O, such as the one
  holding the append lock, waits up to that long to get it back while
  another thread parses a request).
- ``pin-cpu``: each worker process pinned to a core of its own
  (``os.sched_setaffinity``; the first worker to start takes the first
  core); would be a ``post_fork`` hook if it paid.
- ``mmap-on``: SQLite reads through a 1 GiB memory map (``PRAGMA
  mmap_size`` on every connection; the app uses none since stop 11); applied
  before ``create_app()`` opens any connection.
- ``skip-cel``, ``skip-context``, ``skip-append``: removal experiments on
  the deployment check, an upper bound on what making one part free could
  give. ``skip-cel`` evaluates the policy set once per (policy digest, model,
  version, environment) and reuses the results; ``skip-context`` builds the
  context once per (model, version, environment) and reuses it (its ``now``
  goes stale); ``skip-append`` prepares the decision entry (canonical form,
  hashes) but writes nothing and answers with a per-process sequence
  number. All three together (``skip-cel+skip-context+skip-append``) leave
  what no change to the domain code can remove: HTTP, routing, token
  authentication, body validation, canonicalising the context, the response.
- ``no-autocheckpoint``: SQLite connections with ``wal_autocheckpoint=0``
  and nothing checkpointing (the WAL grows for the whole run): what the
  checkpoints that commits run every 1,000 WAL pages cost the requests.
- ``bg-checkpoint``: ``wal_autocheckpoint=0`` and a thread per worker that
  runs ``PRAGMA wal_checkpoint(PASSIVE)`` every 100 ms on a connection of
  its own, outside the append lock.
- ``generic-plans``: PostgreSQL connections with ``plan_cache_mode =
  force_generic_plan``: every prepared statement runs on its generic plan,
  never planned again for its parameters.
- ``lock-stats``: no change of behaviour; measures how long append
  transactions wait for and hold the append lock, and how often and how
  long they read stored tree nodes (see ``_lock_stats``).
"""

from __future__ import annotations

import os
import socket
import threading
import time

from app import create_app as _create_app


def _auth_cache(app, ttl: float = 5.0) -> None:
    from governance import identity

    original = identity.authenticate_token
    cache: dict = {}
    lock = threading.Lock()

    def cached(engine, presented: str):
        now = time.monotonic()
        hit = cache.get(presented)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = original(engine, presented)
        with lock:
            cache[presented] = (principal, now + ttl)
        return principal

    identity.authenticate_token = cached


def _lock_stats(app) -> None:
    """Record how long each append transaction waits for, and holds, the append lock.

    Writes ``lock-<pid>.json`` into ``BENCH_LOCK_STATS`` (a directory) every
    second: count, summed hold and wait seconds, and the monotonic time of the
    first and last transaction, so that hold time summed over all workers and
    divided by the wall time is the lock's utilisation (1.0: appends are
    serialised back to back, and the lock is the ceiling).
    """
    import json
    from contextlib import contextmanager
    from pathlib import Path

    store = app.extensions["ledger"].store
    original = store.append_transaction  # what every append (and group commit) opens
    out = Path(os.environ["BENCH_LOCK_STATS"])
    stats = {"count": 0, "hold_s": 0.0, "wait_s": 0.0, "first": None, "last": None, "holds_ms": [],
             "node_reads": 0, "node_read_s": 0.0}
    lock = threading.Lock()
    fetch_nodes = store.fetch_nodes  # under the lock: the frontier, when another process appended

    def timed_fetch_nodes(conn, nodes):
        t0 = time.monotonic()
        try:
            return fetch_nodes(conn, nodes)
        finally:
            with lock:
                stats["node_reads"] += 1
                stats["node_read_s"] += time.monotonic() - t0

    store.fetch_nodes = timed_fetch_nodes

    @contextmanager
    def append_transaction():
        t0 = time.monotonic()
        with original() as opened:
            t1 = time.monotonic()
            yield opened
        t2 = time.monotonic()
        with lock:
            stats["count"] += 1
            stats["wait_s"] += t1 - t0
            stats["hold_s"] += t2 - t1
            stats["first"] = t1 if stats["first"] is None else stats["first"]
            stats["last"] = t2
            if len(stats["holds_ms"]) < 100_000:
                stats["holds_ms"].append(round((t2 - t1) * 1000, 3))

    def dump():
        while True:
            time.sleep(1.0)
            with lock:
                text = json.dumps(stats)
            (out / f"lock-{os.getpid()}.json").write_text(text)

    store.append_transaction = append_transaction
    started = {"pid": None}

    @app.before_request
    def _start_dumper():
        if started["pid"] != os.getpid():
            started["pid"] = os.getpid()
            threading.Thread(target=dump, daemon=True, name="bench-lock-stats").start()


def _switch_interval(app) -> None:
    """``sys.setswitchinterval(0.0005)``: a thread waiting for the GIL gets it after 0.5 ms, not 5 ms."""
    import sys

    sys.setswitchinterval(0.0005)


_PIN_CLAIM = []  # the socket that claims this worker's core, kept open for the process's life


def _pin_cpu(app) -> None:
    """Pin each worker process to a core of its own.

    A worker claims a core by binding an abstract Unix socket named after the
    master and the core (released by the kernel when the worker exits, so
    nothing is left behind); the first free core wins.
    """
    for cpu in sorted(os.sched_getaffinity(0)):
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            claim.bind(f"\0bench-pin-{os.getppid()}-{cpu}")
        except OSError:
            claim.close()
            continue
        _PIN_CLAIM.append(claim)
        os.sched_setaffinity(0, {cpu})
        return


def _skip_cel(app) -> None:
    from governance import gate

    original = gate._evaluate
    cache: dict = {}

    def once(policy_set, context):
        key = (policy_set.digest, context["model"]["name"], context["version"]["version"],
               context["environment"])
        if key not in cache:
            cache[key] = original(policy_set, context)
        decision, results, override_id = cache[key]
        return decision, [dict(r) for r in results], override_id

    gate._evaluate = once


def _skip_context(app) -> None:
    from governance import gate

    original = gate.build_context
    cache: dict = {}

    def once(conn, model, version, environment, now):
        key = (model, version, environment)
        if key not in cache:
            cache[key] = original(conn, model, version, environment, now)
        return cache[key]

    gate.build_context = once


def _skip_append(app) -> None:
    import itertools
    import types

    from ledger.service import Ledger

    original = Ledger.append
    numbers = itertools.count(10**9 + os.getpid() * 10**6)

    def append(self, kind, actor, subject, payload):
        if kind != "deployment.decision.recorded":
            return original(self, kind, actor, subject, payload)
        self.prepare(kind, actor, subject, payload)
        return types.SimpleNamespace(seq=next(numbers))

    Ledger.append = append


CHECKPOINTERS: list = []  # (thread, stop event) of bg-checkpoint's threads, for whoever must stop them


def _sqlite_without_autocheckpoint(background: bool) -> None:
    import sqlite3

    from sqlalchemy import event

    from ledger import db

    configure = db._configure_sqlite
    started: set = set()

    def checkpoint_until_stopped(path: str, stop: threading.Event) -> None:
        connection = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            while not stop.wait(0.1):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.OperationalError:
                    pass  # the other worker's checkpointer is running
        finally:
            connection.close()

    def configure_without(engine) -> None:
        configure(engine)

        @event.listens_for(engine, "connect")
        def _no_autocheckpoint(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
            key = (os.getpid(), engine.url.database)
            if background and key not in started and engine.url.database not in (None, "", ":memory:"):
                started.add(key)
                stop = threading.Event()
                thread = threading.Thread(target=checkpoint_until_stopped, args=(engine.url.database, stop),
                                          daemon=True)
                CHECKPOINTERS.append((thread, stop))
                thread.start()

    db._configure_sqlite = configure_without


def _generic_plans(app) -> None:
    from sqlalchemy import event

    engine = app.extensions["db_engine"]
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def _generic(dbapi_connection, _record):
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute("SET plan_cache_mode = force_generic_plan")
        dbapi_connection.autocommit = autocommit

    engine.dispose()  # connections opened before this get the setting when reopened


def _mmap_on() -> None:
    from ledger import db

    db.SQLITE_MMAP_BYTES = 1 << 30  # read by the engine's connect hook on every new connection


VARIANTS = {"auth-cache": _auth_cache, "lock-stats": _lock_stats, "switch-interval": _switch_interval,
            "pin-cpu": _pin_cpu, "skip-cel": _skip_cel, "skip-context": _skip_context,
            "skip-append": _skip_append, "generic-plans": _generic_plans}
# changes that must precede create_app()
BEFORE_APP = {"mmap-on": _mmap_on,
              "no-autocheckpoint": lambda: _sqlite_without_autocheckpoint(background=False),
              "bg-checkpoint": lambda: _sqlite_without_autocheckpoint(background=True)}
# Applied in this order whatever was asked; every name of VARIANTS is in it
# (a test checks), so none can be accepted and silently not applied.
ORDER = ("auth-cache", "switch-interval", "pin-cpu", "skip-cel", "skip-context", "skip-append",
         "generic-plans", "lock-stats")


def create_app():
    asked = {name for name in os.environ.get("BENCH_VARIANT", "").split(",") if name}
    unknown = asked - set(VARIANTS) - set(BEFORE_APP) - {"no-access-log"}
    if unknown:
        raise ValueError(f"unknown variants: {', '.join(sorted(unknown))}")
    for name, change in BEFORE_APP.items():
        if name in asked:
            change()
    app = _create_app()
    for name in ORDER:
        if name in asked:
            VARIANTS[name](app)
    return app
