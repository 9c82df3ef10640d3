"""Where the server's time goes in one phase of ``bench.http_api`` (investigation tool).

    .venv/bin/python -m bench.http_profile --backend sqlite --phase checks
    .venv/bin/python -m bench.http_profile --backend postgres --phase registrations --mode wall

Builds the same private service as ``bench.http_api`` (smaller audit fill by
default), starts the server (``--config``, as in ``bench.http_api``), and while the phase runs with 16 clients records
every worker with py-spy (``pip install py-spy`` into .venv; it is not a
project dependency). ``--mode gil`` (default) samples only the thread holding
the GIL, i.e. where the Python CPU goes; ``--mode wall`` samples every
non-idle thread, waits included. Prints the phase's figures, then the
functions with the largest inclusive and self shares, and a breakdown by
stage of the request. ``--mode perf`` records the workers (and
PostgreSQL's processes) with Linux ``perf`` instead (cpu-clock, 499 Hz,
kernel included), and prints their CPU per request by command and shared
object and the top symbols: what py-spy cannot see (SQLite's and CEL's C
code, the kernel's side of fsync and locks, the database server).

``--variant NAME`` serves ``bench.http_variants:create_app()`` instead, the
app with one experimental change applied from outside (see that module), to
measure what a suggested change would buy without editing the application.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from .http_api import (
    CLIENTS, PHASES, Backend, DEFAULT_PG_URL, prepare_service, print_config_table, run_config, say,
    wait_until_idle,
)
from .http_servers import DEFAULT_CONFIG, ROOT, VENV_BIN, parse_config

# Stages of a request. Each sample goes to the first stage (in this order) one of whose
# needles appears in its stack, so a stage nested in another (the commit inside the
# append, the canonical encoding inside the append) is counted apart from it.
STAGES = [
    ("database commit (durable)", ("Connection.commit (", "Transaction.commit (", "do_commit (",
                                   "_commit_impl (", "RootTransaction._do_commit")),
    ("policy evaluation (CEL)", ("governance/policy_engine.py",)),
    ("projection rows (inside the append)", ("project (governance/projections.py)",)),
    ("canonical JSON encoding", ("ledger/canonical.py", "prepare_entry (")),
    ("ledger append (lock, head, insert)", ("ledger/service.py", "ledger/store.py")),
    ("policy context build (SQL)", ("governance/policy_context.py",)),
    ("authentication (token lookup)", ("governance/identity.py",)),
    ("domain reads and checks (SQL)", ("governance/registry.py", "governance/evidence.py",
                                       "governance/approvals.py", "governance/audit.py",
                                       "governance/gate.py", "governance/views.py")),
    ("body/query parsing + validation", ("Parser.parse (webargs", "Parser._load_location_data")),
    ("response serialisation", ("Schema.dump (", "jsonify (", "flask/json/provider.py")),
    ("access log", ("gunicorn/glogging.py",)),
    ("gunicorn HTTP parsing and I/O", ("gunicorn/http/",)),
    # granian parses HTTP in Rust, out of py-spy's sight; its Python side is the WSGI call
]


def attach(pids: list[int], seconds: float, mode: str, outdir: Path, phase: str):
    procs = []
    for pid in pids:
        out = outdir / f"{phase}-{pid}.txt"
        cmd = [str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)),
               "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"]
        if mode == "gil":
            cmd.append("--gil")
        else:
            cmd.append("--threads")
        procs.append((out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    return procs


PERF_HZ = 499


def attach_perf(pids: list[int], seconds: float, outdir: Path, phase: str):
    out = outdir / f"{phase}-{pids[0]}.perf"  # a new server (and workers) for every variant
    cmd = ["perf", "record", "-e", "cpu-clock", "-F", str(PERF_HZ), "-p", ",".join(map(str, pids)),
           "-o", str(out), "--", "sleep", str(int(seconds))]
    return [(out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))]


def analyse_perf(files: list[Path], requests: int, top: int = 30) -> None:
    """The recorded processes' samples by command and shared object, and by symbol, as CPU per request."""
    for path in files:
        if not path.exists():
            say("  no perf data")
            continue
        for sort, limit in (("comm,dso", 15), ("comm,dso,sym", top)):
            report = subprocess.run(["perf", "report", "-i", str(path), "--stdio", "-n", "-q",
                                     "--sort", sort], capture_output=True, text=True, timeout=300)
            rows = []
            for line in report.stdout.splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[0].endswith("%") and fields[1].isdigit():
                    rows.append((int(fields[1]), " ".join(fields[2:])))
            total = sum(n for n, _ in rows)
            if not total:
                say(f"  no samples ({report.stderr.strip()[-200:]})")
                break
            per = f"{total / PERF_HZ / requests * 1000:.3f} ms of CPU per request" if requests else ""
            say(f"\n  perf, by {sort}: {total:,} samples, {per}")
            for n, name in sorted(rows, reverse=True)[:limit]:
                ms = f"{n / PERF_HZ / requests * 1000:7.3f} ms" if requests else ""
                say(f"    {n / total:6.1%} {ms}  {name[:110]}")


def analyse(files: list[Path], top: int = 30) -> None:
    inclusive, own, stages = Counter(), Counter(), Counter()
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += n
            names = []
            for f in frames:
                name = f.rsplit(":", 1)[0] if f.endswith(")") else f  # drop the line number
                names.append(name + (")" if "(" in name and not name.endswith(")") else ""))
            for name in set(names):
                inclusive[name] += n
            own[names[-1]] += n
            joined = ";".join(_short(name) for name in names)
            for stage, needles in STAGES:
                if any(needle in joined for needle in needles):
                    stages[stage] += n
                    break
            else:
                stages["other (Flask/Werkzeug dispatch, gunicorn worker loop)"] += n
    if not total:
        say("  no samples")
        return
    say(f"\n  {total} samples; stage of the request (first match, exclusive):")
    for stage, n in stages.most_common():
        say(f"    {n / total:6.1%}  {stage}")
    say(f"\n  top {top} inclusive:")
    for name, n in inclusive.most_common(top):
        say(f"    {n / total:6.1%}  {_short(name)}")
    say(f"\n  top {top} self:")
    for name, n in own.most_common(top):
        say(f"    {n / total:6.1%}  {_short(name)}")


# -- in-process anatomy: what each part of a request costs without HTTP or concurrency ----

@contextmanager
def _patched(obj, name, wrapper_of):
    original = getattr(obj, name)
    setattr(obj, name, wrapper_of(original))
    try:
        yield
    finally:
        setattr(obj, name, original)


def _timer(timers, label):
    import time

    def wrap(fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers.setdefault(label, []).append(time.perf_counter() - t0)
        return timed
    return wrap


def _show(label: str, values: list[float], per: int) -> None:
    import statistics

    values = sorted(values)
    say(f"    {label:<52} mean {statistics.fmean(values) * 1e3:7.3f} ms  p50 {values[len(values) // 2] * 1e3:7.3f}"
        f"  p99 {values[min(len(values) - 1, int(len(values) * 0.99))] * 1e3:7.3f}"
        f"  x{len(values) / per:.0f} per request")


def _timed_loop(fn, n: int) -> list[float]:
    import time

    values = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        values.append(time.perf_counter() - t0)
    return values


def anatomy(env: dict, deep: list, n: int) -> None:
    """Sequential, in-process costs of a registration, a check and an audit page."""
    import hashlib
    import logging
    import time
    from datetime import datetime, timezone

    import orjson

    from app import create_app
    from governance import audit, gate, registry
    from governance.api.audit import EventPageOut
    from governance.policy_context import build_context
    from governance.policy_cel import activation
    from governance.policy_engine import evaluate
    from ledger import service
    from ledger.canonical import storable_canonical_bytes

    from .http_api import CHECK_VERSIONS, Principals, app_config

    app = create_app(app_config(env))
    logging.getLogger().setLevel(logging.WARNING)
    ledger, engine = app.extensions["ledger"], app.extensions["db_engine"]
    policies = app.extensions["policies"]
    store = ledger.store
    warm = max(50, n // 5)

    # -- a registration: what runs while the append lock is held
    timers: dict[str, list[float]] = {}

    @contextmanager
    def lock_timer():
        original = store.append_transaction  # what every append (and group commit) opens

        @contextmanager
        def timed():
            t0 = time.perf_counter()
            with original() as opened:
                t1 = time.perf_counter()
                timers.setdefault("lock wait + BEGIN (+ advisory lock) + head", []).append(t1 - t0)
                yield opened
                t2, c2 = time.perf_counter(), time.thread_time()
            t3, c3 = time.perf_counter(), time.thread_time()
            timers.setdefault("entry inserts + COMMIT (durable) + release", []).append(t3 - t2)
            timers.setdefault("  of which this thread's CPU (thread_time)", []).append(c3 - c2)
            timers.setdefault("= append lock held, BEGIN to end of COMMIT", []).append(t3 - t1)
        store.append_transaction = timed
        try:
            yield
        finally:
            store.append_transaction = original

    data = {"artifact_uri": "s3://models/anatomy", "framework": "sklearn", "description": "nightly retrain",
            "training_datasets": [{"name": "loans", "version": "v1"}],
            "metrics": {"auc": 0.81, "ks": 0.4, "rows": 250000}}
    with _patched(registry, "_model_row", _timer(timers, "  model lookup (_model_row)")), \
            _patched(registry, "_dataset_version_row", _timer(timers, "  dataset version lookup")), \
            _patched(registry, "_version_row", _timer(timers, "  version lookup (_version_row)")), \
            _patched(service.LedgerWriter, "append", _timer(timers, "  LedgerWriter.append (encode, insert, projection)")), \
            _patched(service.Ledger, "prepare", _timer(timers, "    of which prepare_entry (canonical payload)")), \
            lock_timer():
        total = []
        for k in range(warm + n):
            version = f"anatomy.{k}"
            body = dict(data, version=version, artifact_sha256=hashlib.sha256(version.encode()).hexdigest())
            t0 = time.perf_counter()
            registry.register_version(ledger, Principals.authors[0], "reg-00", body)
            total.append(time.perf_counter() - t0)
            if k == warm - 1:
                timers.clear()
                total.clear()
    say(f"\n  registration in-process (registry.register_version), sequential, n={n}:")
    _show("register_version total", total, n)
    for label, values in timers.items():
        _show(label, values, n)

    # -- a check, part by part
    policy_set = policies.current()
    now = datetime.now(timezone.utc)
    model, version = "credit-risk", CHECK_VERSIONS[0]
    with engine.connect() as conn:
        context, _ = build_context(conn, model, version, "prod", now)
        build = _timed_loop(lambda: build_context(conn, model, version, "prod", now), n)
    context_bytes = storable_canonical_bytes(context)
    recorded = orjson.loads(context_bytes)
    params = policy_set.params_for("prod")

    def cel_convert():
        activation(recorded, params)

    evaluation = evaluate(policy_set, recorded)
    decision, results = evaluation.decision, evaluation.results_json()
    payload = {"model": model, "version": version, "environment": "prod", "decision": decision,
               "policy_digest": policy_set.digest, "input_digest": "0" * 64, "state_seq": 1,
               "expires_at": "2099-01-01T00:00:00.000000Z", "override_id": None, "results": results,
               "context": recorded}
    for fn in (cel_convert, lambda: evaluate(policy_set, recorded)):
        _timed_loop(fn, warm)
    parts = {
        "build_context (SQL: model, version, evidence, sign-offs, datasets, deployments)": build,
        "storable_canonical_bytes(context) + orjson.loads": _timed_loop(
            lambda: orjson.loads(storable_canonical_bytes(context)), n),
        "evaluate(): CEL activation (ctx, params)": _timed_loop(cel_convert, n),
        "evaluate(): whole (activation + 20 programs)": _timed_loop(lambda: evaluate(policy_set, recorded), n),
        "prepare_entry of the decision payload (canonical again)": _timed_loop(
            lambda: ledger.prepare("deployment.decision.recorded", Principals.deployer,
                                   f"model:{model}@{version}", payload), n),
    }
    timers.clear()
    with lock_timer():
        checks, checks_cpu = [], []
        for k in range(warm + n):
            t0, c0 = time.perf_counter(), time.thread_time()
            gate.check(ledger, policies, Principals.deployer, model, CHECK_VERSIONS[1], "prod", 900)
            checks.append(time.perf_counter() - t0)
            checks_cpu.append(time.thread_time() - c0)
            if k == warm - 1:
                timers.clear()
                checks.clear()
                checks_cpu.clear()
    env_ = activation(recorded, params)
    for rule in policy_set.rules:
        programs = [p for _name, _expr, p in rule.match] + [c.program for c in rule.validations]
        parts[f"  CEL programs of {rule.id} ({len(programs)})"] = _timed_loop(
            lambda programs=programs: [p.execute(env_) for p in programs], n)
    say(f"\n  deployment check in-process, sequential, n={n} (context {len(context_bytes):,} bytes, "
        f"{len(policy_set.rules)} rules, decision {decision}):")
    _show("gate.check total", checks, n)
    _show("  of which this thread's CPU (thread_time)", checks_cpu, n)
    for label, values in parts.items():
        _show(label, values, n)
    for label, values in timers.items():
        _show("ledger.append: " + label.strip(), values, n)

    # -- an audit page
    if deep:
        schema = EventPageOut()
        first_model = deep[0][0]
        with app.app_context():
            for label, kwargs in (("page 1", {"model": first_model, "limit": 100}),
                                  ("page 10", {"model": first_model, "limit": 100, "cursor": deep[0][1]})):
                page = audit.query_events(engine, **kwargs)
                dumped = schema.dump(page)
                say(f"\n  audit {label} in-process ({len(page['events'])} events), n={n}:")
                _show("query_events (SQL + event_json)", _timed_loop(
                    lambda: audit.query_events(engine, **kwargs), n), n)
                _show("EventPageOut().dump (marshmallow)", _timed_loop(lambda: schema.dump(page), n), n)
                _show("app.json.dumps (Flask JSON provider)", _timed_loop(lambda: app.json.dumps(dumped), n), n)
    engine.dispose()


def lock_report(directory: Path) -> None:
    """Summarise bench.http_variants' lock-stats files: how busy the append lock was."""
    import json

    runs = [json.loads(p.read_text()) for p in directory.glob("lock-*.json")]
    runs = [r for r in runs if r["count"]]
    if not runs:
        say("  lock-stats: no transactions recorded")
        return
    count = sum(r["count"] for r in runs)
    hold = sum(r["hold_s"] for r in runs)
    wait = sum(r["wait_s"] for r in runs)
    span = max(r["last"] for r in runs) - min(r["first"] for r in runs)
    holds = sorted(x for r in runs for x in r["holds_ms"])
    say(f"  append lock: {count} transactions over {span:.1f} s; held {hold / span:.0%} of the time "
        f"(summed over {len(runs)} workers); hold p50 {holds[len(holds) // 2]:.2f} ms, "
        f"p99 {holds[min(len(holds) - 1, int(len(holds) * 0.99))]:.2f} ms, mean {hold / count * 1000:.2f} ms; "
        f"mean wait for it {wait / count * 1000:.2f} ms")
    reads = sum(r.get("node_reads", 0) for r in runs)
    if reads:
        read_s = sum(r["node_read_s"] for r in runs)
        say(f"  stored-node reads (a frontier another process made stale): {reads} in {count} "
            f"transactions ({reads / count:.0%}), mean {read_s / reads * 1000:.3f} ms, "
            f"{read_s / hold:.0%} of the lock's hold time")


def _short(name: str) -> str:
    for prefix in (str(ROOT / ".venv" / "lib" / "python3.11" / "site-packages") + "/", str(ROOT) + "/"):
        name = name.replace(prefix, "")
    return name[:150]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.http_profile")
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--phase", default="checks",
                    help="comma-separated phases to run (and profile): " + ", ".join(k for k, _ in PHASES))
    ap.add_argument("--config", default=DEFAULT_CONFIG.key, help="server configuration, as in "
                    "bench.http_api --configs (default: what make run starts)")
    ap.add_argument("--mode", choices=("gil", "wall", "perf", "none"), default="gil")
    ap.add_argument("--variants", default="app",  # "" with --anatomy: no HTTP phase
                    help="comma-separated: app (as is), or '+'-joined bench.http_variants names and "
                    "no-access-log, e.g. app,auth-cache,auth-cache+no-access-log")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--audit-events", type=int, default=100_000)
    ap.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--anatomy", type=int, default=0, metavar="N",
                    help="also time the parts of a registration, a check and an audit page in-process, N times")
    args = ap.parse_args(argv)
    config = parse_config(args.config)
    workdir = Path(tempfile.mkdtemp(prefix="bench-http-profile-"))
    backend = Backend(args.backend, workdir, args.pg_url)
    instance, logdir = workdir / "instance", workdir / "logs"
    instance.mkdir()
    logdir.mkdir()
    files: dict[str, list[Path]] = {}
    phases = [p for p in args.phase.split(",") if p]
    unknown = set(phases) - {k for k, _ in PHASES}
    if unknown:
        ap.error(f"unknown phases: {', '.join(sorted(unknown))}")

    @contextmanager
    def hook(name, server):
        if name not in phases or args.mode == "none":
            yield
            return
        workers = [p for p in server.pids() if p != server.proc.pid]
        if args.mode == "perf":  # PostgreSQL's processes too: its CPU per request is part of the cost
            procs = attach_perf(workers + backend.db_pids(), args.seconds + 1, workdir, name)
        else:
            procs = attach(workers, args.seconds + 1, args.mode, workdir, name)
        try:
            yield
        finally:
            for out, proc in procs:
                _, err = proc.communicate(timeout=120)
                if proc.returncode != 0:
                    say(f"  {args.mode}: {err.decode(errors='replace')[-400:]}")
                files.setdefault(name, []).append(out)

    try:
        env, tokens, deep, _ = prepare_service(backend, args.audit_events, instance, logdir)
        if args.anatomy:
            anatomy(env, deep, args.anatomy)
        runs = [(k, v, attempt) for k, v in enumerate(v for v in args.variants.split(",") if v)
                for attempt in range(3)]
        done_variants = set()
        for k, variant, attempt in runs:
            if k in done_variants:
                continue
            busy = wait_until_idle(120)
            say(f"  variant {variant}: machine {busy:.0%} busy before start")
            parts = [] if variant == "app" else variant.split("+")
            venv = dict(env)
            app_spec = "app:create_app()"
            patches = [p for p in parts if p != "no-access-log"]
            if patches:
                venv["BENCH_VARIANT"] = ",".join(patches)
                app_spec = "bench.http_variants:create_app()"
            files.clear()
            tag = f"{config.key}-v{k}" + (f"r{attempt}" if attempt else "")
            stats_dir = workdir / f"lock-{tag}"
            if "lock-stats" in parts:
                stats_dir.mkdir()
                venv["BENCH_LOCK_STATS"] = str(stats_dir)
            result = run_config(backend, venv, config, tokens, deep, args, logdir, app_spec=app_spec,
                                phases=phases, hook=hook, tag=tag,
                                access_log="no-access-log" not in parts)
            print_config_table(f"{backend.label} [{variant}]", result)
            noisy = max((r["cpu"]["other_share"] for r in result.values() if isinstance(r, dict) and "cpu" in r),
                        default=0.0)
            if noisy <= 0.10 or attempt == 2:
                done_variants.add(k)
            else:
                say(f"  other processes took up to {noisy:.0%} of the machine: measuring {variant} again")
            if "lock-stats" in parts:
                lock_report(stats_dir)
            for phase in phases if args.mode != "none" else []:
                if args.mode == "perf":
                    say(f"\n  perf, {CLIENTS} clients, phase {phase}, variant {variant}")
                    analyse_perf(files.get(phase, []), result.get(phase, {}).get("ok", 0), args.top)
                    continue
                say(f"\n  py-spy --{'gil' if args.mode == 'gil' else 'threads (wall)'}, {CLIENTS} clients, "
                    f"phase {phase}, variant {variant}")
                analyse(files.get(phase, []), args.top)
    finally:
        backend.drop()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
