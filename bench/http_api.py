"""HTTP API throughput and latency of the real app under its HTTP server, beside the raw limits.

    .venv/bin/python -m bench.http_api                      # both backends, 1,000,000 audit events
    .venv/bin/python -m bench.http_api --backend sqlite --quick
    .venv/bin/python -m bench.http_api --backend postgres --skip-mlflow

For each backend the run makes a private service: a temporary directory (the
SQLite file, signing key, signer state, trusted keys, checkpoint mirror) and,
for PostgreSQL, a database ``bench_http_<pid>`` created and dropped by the run.
It migrates it, creates the signing key and every API token with the real
command line (``flask --app app ledger init-key``, ``flask --app app tokens
create ... --json``, with the environment variables pointing at that
service), fills the audit trail with ``--audit-events`` events through the
ledger and its projections (``Ledger.append_many``, 1,000 entries per
transaction, subjects ``model:<name>@<v>`` over 1,000 models), then starts
the app on 127.0.0.1 (``'app:create_app()'``, access log on, as ``make run``
does: granian, or gunicorn's sync or gthread workers) once per server
configuration and drives it with 16
concurrent clients (threads, one keep-alive HTTP/1.1 connection each; see
``bench/http_load.py``). Every phase is bounded: ``--requests`` requests or
``--seconds`` seconds, whichever comes first.

Phases, per worker configuration:

- ``GET /healthz`` (the app's cheapest route: Flask plus its hooks);
- model version registrations (``POST /api/v1/models/{m}/versions``, every
  version distinct, 4 author principals);
- evidence submissions (``POST .../evidence``, validation_report, on those
  versions, by 4 other principals);
- approvals (``POST .../approvals``, 16 approver principals, one per client,
  none of them author or evidence submitter, each version signed at most once
  by each of them);
- the audit trail filtered by model (``GET /api/v1/audit/events?model=X&limit=100``):
  first pages, then pages deep in (the cursor of the 900th newest event of
  the model, i.e. page 10);
- deployment checks (``POST /api/v1/deployments/check``) on compliant
  high-risk versions (DPIA, bias report, explainability report, model card,
  validation report and the three sign-offs): every answer must be allow.

Beside them, in the same run: a trivial WSGI JSON app under the same
server settings (the ceiling of the server on this machine); the durable
one-row-per-commit rate of the database with the plain driver (sqlite3 with
WAL + synchronous=FULL, psycopg with synchronous_commit=on), with 1 and with
16 connections, for a ledger-like row and for what a deployment check writes
(a 7 KB entry, a decision row and an audit row in one transaction; the checks
are compared with that); the pure evaluation time of the policy set
(``governance.policy.engine.evaluate`` on a built context) and what the
in-process parts of a check cost; and MLflow's model registry
(``mlflow server``, installed in ``bench/.mlflow-venv``, over a SQLite file)
creating model versions over HTTP with the same client (``--skip-mlflow`` to
leave it out).

Results are printed and written as JSON to ``bench/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from .http_load import call, encode, machine_busy, run_phase
from .machine import conninfo, machine_info
from .http_servers import DEFAULT_CONFIG, ROOT, VENV_BIN, WorkerConfig, parse_config, start_server

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RESULTS_DIR = ROOT / "bench" / "results"
CLIENTS = 16
AREAS = ("model_risk", "compliance", "privacy")
AUDIT_MODELS = 1000  # at 1,000,000 events: ~1,000 events per model (fewer models for a smaller fill)
AUDIT_KIND = "bench.model.observed"  # no projection handler: the audit row only, as any kind gets
DEEP_OFFSET = 900  # the deep page starts after the 900 newest events of the model (page 10)
CHECK_VERSIONS = ("c1", "c2", "c3", "c4")
TARGETS = {
    "registrations_per_s": 700.0,
    "audit_p99_ms": 50.0,
    "checks_per_s": {"sqlite": 1000.0, "postgres": 600.0},
    "checks_p99_ms": 20.0,
}
FULL_CONFIGS = ("granian-2x1", "granian-2x4", "granian-3x1", "sync-2", "gthread-2x4", "sync-3")
QUICK_CONFIGS = ("granian-2x1", "sync-2")
FUTURE = "2099-01-01T00:00:00Z"

log_lock = threading.Lock()


def say(message: str = "") -> None:
    with log_lock:
        print(message, flush=True)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- machine --------------------------------------------------------------------------------

def background_busy(seconds: float = 1.0) -> float:
    """Fraction of the machine busy right now (nothing of ours running)."""
    b0 = machine_busy()
    time.sleep(seconds)
    b1 = machine_busy()
    return (b1[0] - b0[0]) / max(1, b1[1] - b0[1])


def wait_until_idle(limit_s: float, threshold: float = 0.10) -> float:
    """Wait (up to ``limit_s``) until the machine is under ``threshold`` busy; return the last reading."""
    deadline = time.monotonic() + limit_s
    busy = background_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = background_busy(2.0)
    return busy


# -- backends -------------------------------------------------------------------------------

class Backend:
    def __init__(self, name: str, workdir: Path, pg_url: str):
        self.name = name
        self.label = "SQLite" if name == "sqlite" else "PostgreSQL"
        self.workdir = workdir
        self.admin_url = pg_url
        self.database = f"bench_http_{os.getpid()}"
        self.created = False
        self.url = ""

    def create(self) -> str:
        if self.name == "sqlite":
            self.url = f"sqlite:///{self.workdir / 'ledger.db'}"
        else:
            with psycopg.connect(conninfo(self.admin_url), autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{self.database}"')
            self.created = True
            self.url = make_url(self.admin_url).set(database=self.database).render_as_string(
                hide_password=False)
        return self.url

    def drop(self) -> None:
        if self.created:
            with psycopg.connect(conninfo(self.admin_url), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.created = False

    def settle(self) -> None:
        """Leave the filled and seeded database as a long-running service's would be.

        On PostgreSQL the first reads of a million fresh rows set their hint
        bits (dirtying the pages again), autovacuum and the checkpointer write
        the fill out later, and the planner's statistics predate the seed; so
        ``VACUUM (ANALYZE)`` then ``CHECKPOINT``. SQLite: a truncating WAL
        checkpoint. This does not remove every advantage of measuring second
        (docs/performance.md: on PostgreSQL the first server configuration
        measured after the seed still writes more slowly than the next).
        """
        if self.name == "sqlite":
            conn = sqlite3.connect(self.workdir / "ledger.db")
            try:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.close()
            if busy:
                say("  WAL checkpoint after the seed was blocked by a reader")
            return
        with psycopg.connect(conninfo(self.url), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
            conn.execute("CHECKPOINT")

    def db_pids(self) -> list[int]:
        """PostgreSQL processes whose CPU is the database's: our backends and the shared ones."""
        if self.name == "sqlite":
            return []
        try:
            with psycopg.connect(conninfo(self.admin_url), autocommit=True) as conn:
                rows = conn.execute("SELECT pid, backend_type, datname FROM pg_stat_activity "
                                    "WHERE pid <> pg_backend_pid()").fetchall()
        except psycopg.Error:
            return []
        return [pid for pid, kind, db in rows
                if db == self.database or (db is None and kind != "client backend")]

    def size(self) -> str:
        if self.name == "sqlite":
            total = sum(p.stat().st_size for p in self.workdir.glob("ledger.db*"))
            return f"{total / 2**20:.0f} MiB"
        with psycopg.connect(conninfo(self.admin_url)) as conn:
            size = conn.execute("SELECT pg_database_size(%s)", (self.database,)).fetchone()[0]
        return f"{size / 2**20:.0f} MiB"


def service_env(backend: Backend, instance: Path) -> dict:
    """The environment variables that point the app (CLI and server) at this service."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "LEDGER_", "POLICY_", "OIDC_", "GATE_", "GOV_"))}
    key = instance / "signing.key"
    env.update({
        "DATABASE_URL": backend.url,
        "LEDGER_ORIGIN": "bench.example/ml-governance-ledger",
        "LEDGER_SIGNING_KEY": str(key),
        "LEDGER_SIGNER_STATE": f"{key}.state.json",
        "LEDGER_TRUSTED_KEYS": f"{key}.trusted.json",
        "LEDGER_CHECKPOINT_DIR": str(instance / "checkpoints"),
        "LEDGER_VERIFY_STATE": str(instance / "verify-state.json"),
        "POLICY_DIR": str(ROOT / "policies"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def app_config(env: dict) -> dict:
    """The same configuration for an in-process app (filling, pure evaluation)."""
    return {
        "DATABASE_URL": env["DATABASE_URL"], "DATABASE_SCHEMA": None,
        "LEDGER_ORIGIN": env["LEDGER_ORIGIN"], "LEDGER_SIGNING_KEY": env["LEDGER_SIGNING_KEY"],
        "LEDGER_SIGNING_KEY_PASSPHRASE": None, "LEDGER_SIGNER_STATE": env["LEDGER_SIGNER_STATE"],
        "LEDGER_TRUSTED_KEYS": env["LEDGER_TRUSTED_KEYS"],
        "LEDGER_CHECKPOINT_DIR": env["LEDGER_CHECKPOINT_DIR"],
        "LEDGER_VERIFY_STATE": env["LEDGER_VERIFY_STATE"], "LEDGER_BACKGROUND_CHECKPOINTS": False,
        "POLICY_DIR": env["POLICY_DIR"],
    }


def flask_cli(env: dict, *args: str) -> str:
    done = subprocess.run([str(VENV_BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def create_tokens(env: dict, specs: list[tuple[str, list[str]]]) -> dict[str, str]:
    """Create one token per (principal, roles) with ``flask tokens create --json``, two at a time."""
    tokens: dict[str, str] = {}
    pending = list(specs)
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = []
        for principal, roles in batch:
            cmd = [str(VENV_BIN / "flask"), "--app", "app", "tokens", "create", "--name", principal,
                   "--actor", "bench", "--description", "bench.http_api", "--json"]
            for role in roles:
                cmd += ["--role", role]
            procs.append((principal, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                                      stderr=subprocess.PIPE, text=True)))
        for principal, proc in procs:
            out, err = proc.communicate(timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"tokens create {principal} failed: {err[-2000:]}")
            tokens[principal] = json.loads(out.strip().splitlines()[-1])["token"]
    return tokens


# -- the scenario ---------------------------------------------------------------------------

class Principals:
    """Who does what (principals are people; separation of duties compares them)."""

    authors = [f"author-{i}" for i in range(4)]
    validators = [f"validator-{i}" for i in range(4)]
    approvers = [f"approver-{i:02d}" for i in range(CLIENTS)]
    deployer = "deployer-0"
    auditor = "auditor-0"
    check_author = "author-check"
    check_submitter = "validator-check"

    @classmethod
    def specs(cls) -> list[tuple[str, list[str]]]:
        return ([(p, ["author"]) for p in cls.authors + cls.validators
                 + [cls.check_author, cls.check_submitter]]
                + [(p, [f"approver:{AREAS[i % 3]}"]) for i, p in enumerate(cls.approvers)]
                + [(cls.deployer, ["deployer"]), (cls.auditor, ["auditor"])])


EVIDENCE_VALIDATION = {"passed": True, "metrics": {"auc": 0.81, "ks": 0.4}, "thresholds": {"auc": 0.75},
                       "dataset": {"name": "loans", "version": "v1"}, "summary": "holdout 2026Q3"}
CHECK_EVIDENCE = {
    "privacy_assessment": {"status": "approved", "reviewer": "dpo@bank.example", "expires_at": FUTURE,
                           "findings": ["income is personal data"], "reference": "DPIA-7"},
    "bias_report": {"attributes": [
        {"attribute": "sex", "groups": ["F", "M"],
         "metrics": {"disparate_impact_ratio": 0.91, "demographic_parity_difference": 0.04},
         "group_metrics": {"F": {"selection_rate": 0.31}, "M": {"selection_rate": 0.34}}},
        {"attribute": "age_band", "groups": ["<30", "30-60", ">60"],
         "metrics": {"disparate_impact_ratio": 0.87, "demographic_parity_difference": 0.06}}],
        "dataset": {"name": "loans", "version": "v1"}, "sample_size": 20000},
    "explainability_report": {"method": "shap.TreeExplainer", "feature_importances": [
        {"feature": f, "importance": w} for f, w in
        (("income", 0.41), ("age", 0.18), ("debt_ratio", 0.15), ("tenure", 0.09), ("region", 0.04))]},
    "model_card": {"content": "# Credit risk\n\nScores loan applications for the retail bank.",
                   "sections": {"limitations": "not for mortgages", "evaluation": "holdout 2026Q3"}},
    "validation_report": EVIDENCE_VALIDATION,
}


def seed(port: int, tokens: dict[str, str]) -> None:
    """Datasets, the models versions are registered on, and compliant versions for checks."""
    author = tokens[Principals.authors[0]]
    call(port, "POST", "/api/v1/datasets", {"name": "loans", "owner": "dana", "source_system": "warehouse"},
         author)
    call(port, "POST", "/api/v1/datasets/loans/versions", {
        "version": "v1", "content_sha256": sha("loans@v1"), "uri": "s3://data/loans/v1",
        "schema": [{"name": "age", "type": "int"}, {"name": "name", "type": "string"},
                   {"name": "income", "type": "float"}, {"name": "sex", "type": "string"}],
        "pii_columns": ["name"], "legal_basis": "contract", "retention_period": "P5Y",
        "row_count": 250000}, author)
    for i in range(CLIENTS):
        call(port, "POST", "/api/v1/models", {
            "name": f"reg-{i:02d}", "owner": "eve", "risk_tier": "limited", "uses_personal_data": True,
            "protected_attributes": ["sex"], "tags": ["bench"], "description": "registrations"}, author)
    check_author = tokens[Principals.check_author]
    call(port, "POST", "/api/v1/models", {
        "name": "credit-risk", "owner": "eve", "risk_tier": "high", "uses_personal_data": True,
        "protected_attributes": ["sex", "age_band"], "tags": ["retail", "credit"],
        "intended_use": "retail loan decisions"}, check_author)
    for version in CHECK_VERSIONS:
        call(port, "POST", "/api/v1/models/credit-risk/versions", {
            "version": version, "artifact_sha256": sha(f"credit-risk@{version}"),
            "artifact_uri": f"s3://models/credit-risk/{version}", "framework": "xgboost",
            "training_datasets": [{"name": "loans", "version": "v1"}],
            "metrics": {"auc": 0.83, "ks": 0.41}}, check_author)
        for kind, fields in CHECK_EVIDENCE.items():
            call(port, "POST", f"/api/v1/models/credit-risk/versions/{version}/evidence",
                 {"kind": kind, "fields": fields}, tokens[Principals.check_submitter])
        for i, area in enumerate(AREAS):  # approvers 0, 1, 2 hold model_risk, compliance, privacy
            call(port, "POST", f"/api/v1/models/credit-risk/versions/{version}/approvals",
                 {"role": area, "decision": "approve", "comment": f"{area} reviewed"},
                 tokens[Principals.approvers[i]])


def audit_models(total: int) -> int:
    """How many models the fill spreads over: ~1,000 events each, at most AUDIT_MODELS."""
    return max(1, min(AUDIT_MODELS, total // 1000))


def fill_audit(env: dict, total: int, backend: Backend, seed_value: int = 20261125) -> dict:
    """Append ``total`` entries through the ledger and its projections, 1,000 per transaction."""
    from app import create_app

    models = audit_models(total)
    app = create_app(app_config(env))
    logging.getLogger().setLevel(logging.WARNING)
    ledger = app.extensions["ledger"]
    rng = random.Random(seed_value)
    batch = 1000
    done = 0
    t0 = time.perf_counter()
    next_report = 100_000
    while done < total:
        n = min(batch, total - done)
        items = []
        for k in range(n):
            m = rng.randrange(models)
            v = rng.randrange(1, 11)
            items.append({"kind": AUDIT_KIND, "actor": f"monitor-{m % 7}",
                          "subject": f"model:audit-m{m:04d}@{v}",
                          "payload": {"metric": "auc", "value": round(rng.random(), 4),
                                      "window": done + k, "source": "bench"}})
        ledger.append_many(items)
        done += n
        if done >= next_report:
            say(f"    filled {done:,} entries ({done / (time.perf_counter() - t0):,.0f}/s)")
            next_report += 100_000
    seconds = time.perf_counter() - t0
    engine = app.extensions["db_engine"]
    # The cursor of the page that starts after the DEEP_OFFSET newest events of a model.
    from governance.audit.trail import encode_cursor

    sample = random.Random(7).sample(range(models), min(models, 256))
    deep = []
    p = "?" if backend.name == "sqlite" else "%s"
    with engine.connect() as conn:
        for m in sample:
            row = conn.exec_driver_sql(
                f"SELECT seq FROM gov_audit_event WHERE model_name = {p} ORDER BY seq DESC "
                f"LIMIT 1 OFFSET {DEEP_OFFSET - 1}", (f"audit-m{m:04d}",)).first()
            if row is not None:
                deep.append((f"audit-m{m:04d}", encode_cursor(row[0])))
        events = conn.exec_driver_sql("SELECT COUNT(*) FROM gov_audit_event").scalar()
    engine.dispose()
    return {"entries": total, "seconds": seconds, "per_s": total / seconds if seconds else 0.0,
            "audit_rows": events, "models": models, "deep_cursors": deep}


# -- phases on one server -------------------------------------------------------------------

PHASES = (("healthz", "GET /healthz"), ("registrations", "registrations"), ("evidence", "evidence"),
          ("approvals", "approvals"), ("audit_first", "audit page 1"), ("audit_deep", "audit page 10"),
          ("audit_first_1", "audit p.1, 1 client"), ("audit_deep_1", "audit p.10, 1 client"),
          ("checks", "deployment checks"))


def decision_allow(status: int, body: bytes) -> None:
    from .http_load import HttpError

    if b'"decision":"allow"' not in body and b'"decision": "allow"' not in body:
        raise HttpError(f"check did not allow: {body[:300]!r}")


def run_config(backend: Backend, env: dict, config: WorkerConfig, tokens: dict[str, str],
               deep: list, args, logdir: Path, tag: str) -> dict:
    """Start the app under ``config``'s server and run every phase against it."""
    server = start_server("app:create_app()", config, env, logdir, f"{backend.name}-{tag}")
    groups = {"server": server.pids, "db": backend.db_pids}
    bound = dict(clients=CLIENTS, max_requests=args.requests, max_seconds=args.seconds,
                 cpu_groups=groups)
    out: dict = {"config": config.label, "title": config.title, "default": config == DEFAULT_CONFIG}
    wanted = {k for k, _ in PHASES}
    if not deep:
        wanted -= {"audit_deep", "audit_deep_1"}
    if args.audit_events < 1000:
        wanted -= {"audit_first", "audit_first_1"}

    def measure(key, *a, **kw):
        if key in wanted:
            out[key] = run_phase(*a, **kw).as_json()

    try:
        # Warm-up: every worker loads the policy set and opens connections.
        deployer = tokens[Principals.deployer]
        warm = run_phase("warm-up", server.port, lambda i, n: encode(
            "POST", "/api/v1/deployments/check",
            {"model": "credit-risk", "version": CHECK_VERSIONS[i % 4], "environment": "prod"}, deployer)
            if n < 4 else None, CLIENTS, 200, 30, check=decision_allow)
        if warm.errors:
            raise RuntimeError(f"warm-up checks failed: {warm.error_samples[:3]}")

        measure("healthz", "GET /healthz", server.port, lambda i, n: encode("GET", "/healthz"), **bound)

        authors = [tokens[p] for p in Principals.authors]
        registered: list[list[int]] = [[] for _ in range(CLIENTS)]

        def register(i: int, n: int) -> bytes:
            model = f"reg-{i:02d}"
            version = f"{tag}.{i}.{n}"
            return encode("POST", f"/api/v1/models/{model}/versions", {
                "version": version, "artifact_sha256": sha(f"{model}@{version}"),
                "artifact_uri": f"s3://models/{model}/{version}/model.pkl", "framework": "sklearn",
                "description": "nightly retrain",
                "training_datasets": [{"name": "loans", "version": "v1"}],
                "metrics": {"auc": 0.81, "ks": 0.4, "rows": 250000}}, authors[i % len(authors)])

        def registered_ok(i, status, body, n_of=[0] * CLIENTS):
            if status == 201:
                registered[i].append(n_of[i])
            n_of[i] += 1

        measure("registrations", "registrations", server.port, register, expect=(201,),
                after=registered_ok, **bound)
        versions = [(f"reg-{i:02d}", f"{tag}.{i}.{n}") for i in range(CLIENTS) for n in registered[i]]
        if not versions:
            raise RuntimeError("no version was registered")
        # Interleave clients so that every slice of the list mixes models.
        versions.sort(key=lambda mv: (int(mv[1].rsplit(".", 1)[1]), mv[0]))

        validators = [tokens[p] for p in Principals.validators]

        def submit(i: int, n: int) -> bytes:
            model, version = versions[(i + n * CLIENTS) % len(versions)]
            return encode("POST", f"/api/v1/models/{model}/versions/{version}/evidence",
                          {"kind": "validation_report", "fields": EVIDENCE_VALIDATION},
                          validators[i % len(validators)])

        measure("evidence", "evidence", server.port, submit, expect=(201,), **bound)

        approvers = [tokens[p] for p in Principals.approvers]

        def approve(i: int, n: int) -> bytes | None:
            if n >= len(versions):
                return None  # this approver has signed every version once
            model, version = versions[(i * len(versions) // CLIENTS + n) % len(versions)]
            return encode("POST", f"/api/v1/models/{model}/versions/{version}/approvals",
                          {"role": AREAS[i % 3], "decision": "approve", "comment": "reviewed the evidence"},
                          approvers[i])

        measure("approvals", "approvals", server.port, approve, expect=(201,), **bound)

        auditor = tokens[Principals.auditor]

        models = audit_models(args.audit_events)

        def first_page(i: int, n: int) -> bytes:
            m = (i * 7919 + n * 104729) % models
            return encode("GET", f"/api/v1/audit/events?model=audit-m{m:04d}&limit=100", token=auditor)

        def full_page(status: int, body: bytes) -> None:
            from .http_load import HttpError

            if b'"next_cursor":null' in body or b'"next_cursor": null' in body:
                raise HttpError("a first page of a model with ~1,000 events had no next page")

        measure("audit_first", "audit first page", server.port, first_page, expect=(200,),
                check=full_page, **bound)

        def deep_page(i: int, n: int) -> bytes:
            model, cursor = deep[(i * 31 + n) % len(deep)]
            return encode("GET", f"/api/v1/audit/events?model={model}&limit=100&cursor={cursor}",
                          token=auditor)

        measure("audit_deep", "audit deep page", server.port, deep_page, expect=(200,), **bound)
        # The same two queries from one client: the query's own latency, without the queue
        # that 16 clients build in front of 2 cores.
        single = {**bound, "clients": 1, "max_requests": min(args.requests, 1000)}
        measure("audit_first_1", "audit first page, 1 client", server.port, first_page, expect=(200,),
                check=full_page, **single)
        measure("audit_deep_1", "audit deep page, 1 client", server.port, deep_page, expect=(200,), **single)

        def check(i: int, n: int) -> bytes:
            return encode("POST", "/api/v1/deployments/check", {
                "model": "credit-risk", "version": CHECK_VERSIONS[(i + n) % 4], "environment": "prod"},
                deployer)

        measure("checks", "checks", server.port, check, expect=(200,), check=decision_allow, **bound)
    finally:
        server.stop()
    return out


# -- raw limits -----------------------------------------------------------------------------

RAW_ROW = ("2026-11-25T12:00:00.000000Z", "model.version.registered", "author-0",
           "model:reg-00@1", os.urandom(300).hex().encode(), os.urandom(32))
# What a deployment check commits: its ledger entry (the canonical form with
# the whole context, ~7 KB), a decision row (one secondary index) and an
# audit row (four), in one durable transaction.
RAW_CHECK_ENTRY = RAW_ROW[:4] + (os.urandom(3500).hex().encode(), os.urandom(32))
RAW_CHECK_DECISION = ("credit-risk", "c1", "prod", "allow")
RAW_CHECK_AUDIT = (RAW_ROW[0], "deployment.decision.recorded", "deployer",
                   "credit-risk", "allow credit-risk@c1 to prod")
RAW_SHAPES = ("row", "check")


def _raw_tables(suffix: str, serial: str, blob: str) -> list[str]:
    return [
        f"CREATE TABLE raw{suffix} (seq {serial} PRIMARY KEY, ts TEXT, kind TEXT, actor TEXT, "
        f"subject TEXT, canonical {blob}, leaf_hash {blob})",
        f"CREATE TABLE raw_decision{suffix} (decision_id TEXT PRIMARY KEY, model TEXT, version TEXT, "
        "environment TEXT, decision TEXT, seq BIGINT)",
        f"CREATE INDEX raw_decision_version{suffix} ON raw_decision{suffix} (model, version, environment)",
        f"CREATE TABLE raw_audit{suffix} (seq BIGINT PRIMARY KEY, ts TEXT, kind TEXT, actor TEXT, "
        "model TEXT, summary TEXT)",
        *(f"CREATE INDEX raw_audit_{name}{suffix} ON raw_audit{suffix} ({columns})" for name, columns in (
            ("model", "model, seq"), ("kind", "kind, seq"), ("actor", "actor, seq"), ("ts", "ts"))),
    ]


def raw_sqlite(workdir: Path, threads: int, max_rows: int, max_seconds: float, shape: str = "row") -> dict:
    """Durable commits on the bare driver: one ledger-like row each, or what a check writes (``shape``)."""
    path = workdir / f"raw-{shape}-{threads}.db"

    def connect():
        conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    setup = connect()
    for ddl in _raw_tables("", "INTEGER", "BLOB"):
        setup.execute(ddl)
    setup.close()
    entry_sql = "INSERT INTO raw (ts, kind, actor, subject, canonical, leaf_hash) VALUES (?,?,?,?,?,?)"

    def one(conn):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(entry_sql, RAW_ROW)
        conn.execute("COMMIT")

    def check(conn):
        conn.execute("BEGIN IMMEDIATE")
        seq = conn.execute(entry_sql, RAW_CHECK_ENTRY).lastrowid
        conn.execute("INSERT INTO raw_decision VALUES (?,?,?,?,?,?)", (f"dc-{seq}", *RAW_CHECK_DECISION, seq))
        conn.execute("INSERT INTO raw_audit VALUES (?,?,?,?,?,?)", (seq, *RAW_CHECK_AUDIT))
        conn.execute("COMMIT")

    return _raw_threads(connect, check if shape == "check" else one, threads, max_rows, max_seconds)


def raw_postgres(url: str, threads: int, max_rows: int, max_seconds: float, shape: str = "row") -> dict:
    """As :func:`raw_sqlite`; a check's three rows go in one statement, then ``COMMIT`` (as the ledger does)."""
    info = conninfo(url)
    suffix = f"_{shape}_{threads}"
    with psycopg.connect(info, autocommit=True) as conn:
        for ddl in _raw_tables(suffix, "BIGSERIAL", "BYTEA"):
            conn.execute(ddl)

    def connect():
        conn = psycopg.connect(info)
        conn.execute("SET synchronous_commit = on")
        conn.commit()
        return conn

    sql = (f"INSERT INTO raw{suffix} (ts, kind, actor, subject, canonical, leaf_hash) "
           "VALUES (%s,%s,%s,%s,%s,%s)")
    check_sql = (f"WITH e AS ({sql} RETURNING seq), "
                 f"d AS (INSERT INTO raw_decision{suffix} SELECT 'dc-' || seq, %s, %s, %s, %s, seq FROM e) "
                 f"INSERT INTO raw_audit{suffix} SELECT seq, %s, %s, %s, %s, %s FROM e")
    check_args = RAW_CHECK_ENTRY + RAW_CHECK_DECISION + RAW_CHECK_AUDIT

    def one(conn):
        conn.execute(sql, RAW_ROW)
        conn.commit()

    def check(conn):
        conn.execute(check_sql, check_args)
        conn.commit()

    return _raw_threads(connect, check if shape == "check" else one, threads, max_rows, max_seconds)


def _raw_threads(connect, one, threads: int, max_rows: int, max_seconds: float) -> dict:
    import itertools

    counter = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    conns = [connect() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    stop = [0.0]

    def worker(i):
        conn, mine = conns[i], latencies[i]
        barrier.wait()
        while next(counter) < max_rows and time.perf_counter() < stop[0]:
            t0 = time.perf_counter()
            one(conn)
            mine.append((time.perf_counter() - t0) * 1000)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    t0 = time.perf_counter()
    stop[0] = t0 + max_seconds
    barrier.wait()
    for t in ts:
        t.join()
    seconds = time.perf_counter() - t0
    for c in conns:
        c.close()
    flat = sorted(x for lst in latencies for x in lst)
    n = len(flat)
    return {"threads": threads, "rows": n, "seconds": seconds, "per_s": n / seconds,
            "p50_ms": flat[n // 2] if n else None, "p99_ms": flat[min(n - 1, int(n * 0.99))] if n else None}


def measure_trivial(config: WorkerConfig, logdir: Path, args) -> dict:
    server = start_server("bench.http_trivial:app", config, dict(os.environ), logdir,
                          f"trivial-{config.key}", ready_path="/")
    try:
        r = run_phase("trivial", server.port, lambda i, n: encode("GET", "/"), CLIENTS, args.requests * 2,
                      min(args.seconds, 10), expect=(200,), cpu_groups={"server": server.pids})
    finally:
        server.stop()
    return r.as_json()


# -- in-process costs of a check ------------------------------------------------------------

def measure_policy(env: dict, n: int) -> dict:
    """Pure evaluation of the policy set on a built context, and the other in-process parts of a check."""
    import orjson

    from app import create_app
    from governance.gate import decisions
    from governance.policy.context import build_context
    from governance.policy.engine import evaluate
    from ledger.canonical import storable_canonical_bytes

    app = create_app(app_config(env))
    logging.getLogger().setLevel(logging.WARNING)
    ledger = app.extensions["ledger"]
    registry = app.extensions["policies"]
    engine = app.extensions["db_engine"]
    policy_set = registry.current()
    now = datetime.now(timezone.utc)

    def timed(fn, count):
        values = []
        for _ in range(count):
            t0 = time.perf_counter()
            fn()
            values.append((time.perf_counter() - t0) * 1e6)
        values.sort()
        return {"n": count, "mean_us": statistics.fmean(values), "p50_us": values[len(values) // 2],
                "p99_us": values[min(len(values) - 1, int(len(values) * 0.99))]}

    with engine.connect() as conn:
        context, _ = build_context(conn, "credit-risk", CHECK_VERSIONS[0], "prod", now)
        context_bytes = storable_canonical_bytes(context)
        recorded = orjson.loads(context_bytes)
        decision = evaluate(policy_set, recorded)
        for _ in range(50):
            evaluate(policy_set, recorded)
        result = {
            "rules": len(policy_set.rules), "decision": decision.decision,
            "context_bytes": len(context_bytes),
            "evaluate": timed(lambda: evaluate(policy_set, recorded), n),
            "build_context": timed(lambda: build_context(conn, "credit-risk", CHECK_VERSIONS[0], "prod", now),
                                   max(50, n // 10)),
            "canonical_context": timed(lambda: orjson.loads(storable_canonical_bytes(context)), n),
        }
    # The whole check in-process (context, evaluation, durable append with its projection),
    # without HTTP, authentication or request parsing.
    result["gate_check"] = timed(lambda: decisions.check(ledger, registry, Principals.deployer, "credit-risk",
                                                    CHECK_VERSIONS[1], "prod", 900), max(50, n // 10))
    engine.dispose()
    return result


# -- reporting ------------------------------------------------------------------------------

def _best(configs: list[dict], phase: str, key: str = "per_s") -> dict:
    usable = [c for c in configs if phase in c and c[phase]["ok"] > 0] or configs
    if key == "per_s":
        return max(usable, key=lambda c: c[phase]["per_s"])
    return min(usable, key=lambda c: c[phase][key])


def _fmt(x, digits=1) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return f"{x:,.{digits}f}"


def print_config_table(backend_label: str, c: dict) -> None:
    say(f"\n  {backend_label}, {c['title']}{' (make run default)' if c['default'] else ''}")
    say(f"  {'phase':<20}{'ok/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'err':>6}{'client':>8}"
        f"{'server':>8}{'(sys)':>7}{'db':>7}{'other':>7}{'machine':>9}")
    for key, label in PHASES:
        if key not in c:
            continue
        r = c[key]
        cpu = r["cpu"]
        mark = "*" if cpu["other_share"] > 0.10 else " "
        say(f"  {label:<20}{_fmt(r['per_s'], 0):>9}{_fmt(r['p50_ms'], 2):>9}{_fmt(r['p99_ms'], 2):>9}"
            f"{r['errors']:>6}{cpu['client_share']:>8.0%}{cpu.get('server_share', 0):>8.0%}"
            f"{cpu.get('server_sys_share', 0):>7.0%}{cpu.get('db_share', 0):>7.0%}"
            f"{cpu['other_share']:>7.0%}{mark}{cpu['machine_busy']:>8.0%}")
        for sample in r["error_samples"][:2]:
            say(f"      error: {sample[:200]}")


def summary_rows(b: dict, trivial: dict) -> list[dict]:
    """One row per phase: default config, best config, target."""
    configs = b["configs"]
    default = next(c for c in configs if c["default"])
    backend = b["backend"]
    rows = []
    for key, label in PHASES:
        if key not in default:
            continue
        best = _best(configs, key)
        d, bb = default[key], best[key]
        row = {"phase": label, "default": d, "best": bb, "best_config": best["config"],
               "trivial_default": trivial.get(DEFAULT_CONFIG.label, {}).get("per_s"),
               "trivial_best": trivial.get(best["config"], {}).get("per_s")}
        if key in ("registrations", "evidence", "approvals", "checks"):
            # checks beside raw commits of what a check writes, the other writes beside one-row commits
            one, sixteen = raw_keys(key)
            row["raw16_ratio"] = bb["per_s"] / b["raw"][sixteen]["per_s"]
            row["raw1_ratio"] = bb["per_s"] / b["raw"][one]["per_s"]
        if key == "registrations":
            row["target"] = f">= {TARGETS['registrations_per_s']:.0f}/s"
            row["met"] = bb["per_s"] >= TARGETS["registrations_per_s"]
            row["met_default"] = d["per_s"] >= TARGETS["registrations_per_s"]
        elif key.startswith("audit_"):
            row["target"] = f"p99 <= {TARGETS['audit_p99_ms']:.0f} ms"
            best_p99 = _best(configs, key, "p99_ms")
            row["best_config"] = best_p99["config"]
            row["best"] = bb = best_p99[key]
            row["trivial_best"] = trivial.get(best_p99["config"], {}).get("per_s")
            row["met"] = bb["p99_ms"] <= TARGETS["audit_p99_ms"]
            row["met_default"] = d["p99_ms"] <= TARGETS["audit_p99_ms"]
        elif key == "checks":
            t = TARGETS["checks_per_s"][backend]
            row["target"] = f">= {t:.0f}/s, p99 <= {TARGETS['checks_p99_ms']:.0f} ms"
            ok = [c for c in configs if c[key]["per_s"] >= t and c[key]["p99_ms"] <= TARGETS["checks_p99_ms"]]
            if ok:
                best = max(ok, key=lambda c: c[key]["per_s"])
                row["best_config"], row["best"] = best["config"], best[key]
                row["trivial_best"] = trivial.get(best["config"], {}).get("per_s")
            row["met"] = bool(ok)
            row["met_default"] = d["per_s"] >= t and d["p99_ms"] <= TARGETS["checks_p99_ms"]
        rows.append(row)
    return rows


def raw_keys(phase: str) -> tuple[str, str]:
    """The raw-commit figures (1 and 16 connections) a write phase is compared with."""
    return ("check1", "check16") if phase == "checks" else ("1", "16")


def trivial_ratio(row: dict) -> float | None:
    """The best figure of a summary row over the trivial app's under the same configuration."""
    return row["best"]["per_s"] / row["trivial_best"] if row.get("trivial_best") else None


def target_status(row: dict) -> str:
    """The row's target with its verdict (best configuration, then the default), or ''."""
    if not row.get("target"):
        return ""
    default = "met" if row["met_default"] else "missed"
    return f"{row['target']}  {'met' if row['met'] else 'MISSED'} (default: {default})"


def print_summary(b: dict, trivial: dict) -> None:
    say(f"\n  {b['label']}: default ({DEFAULT_CONFIG.title}) and best configuration per phase")
    say(f"  {'phase':<20}{'default ok/s':>13}{'p50':>7}{'p99':>8}  {'best config':<13}{'ok/s':>8}"
        f"{'p50':>7}{'p99':>8}{'/trivial':>9}{'/raw16':>8}{'/raw1':>7}  target")
    for row in b["summary"]:
        d, bb = row["default"], row["best"]
        say(f"  {row['phase']:<20}{_fmt(d['per_s'], 0):>13}{_fmt(d['p50_ms'], 1):>7}{_fmt(d['p99_ms'], 1):>8}"
            f"  {row['best_config']:<13}{_fmt(bb['per_s'], 0):>8}{_fmt(bb['p50_ms'], 1):>7}"
            f"{_fmt(bb['p99_ms'], 1):>8}{_fmt(trivial_ratio(row), 3):>9}"
            f"{_fmt(row.get('raw16_ratio'), 2):>8}{_fmt(row.get('raw1_ratio'), 2):>7}  {target_status(row)}")


def print_raw(b: dict) -> None:
    r1, r16 = b["raw"]["1"], b["raw"]["16"]
    what = ("sqlite3, WAL, synchronous=FULL, BEGIN IMMEDIATE" if b["backend"] == "sqlite"
            else "psycopg, synchronous_commit=on")
    say(f"  raw durable one-row commits ({what}): 1 connection {r1['per_s']:,.0f}/s "
        f"(p50 {r1['p50_ms']:.2f} ms), 16 connections {r16['per_s']:,.0f}/s "
        f"(p50 {r16['p50_ms']:.2f} ms, p99 {r16['p99_ms']:.2f} ms)")
    c1, c16 = b["raw"]["check1"], b["raw"]["check16"]
    say(f"  raw durable check-shaped commits (a 7 KB entry, a decision row, an audit row with 4 "
        f"indexes; the checks row compares with these): 1 connection {c1['per_s']:,.0f}/s "
        f"(p50 {c1['p50_ms']:.2f} ms), 16 connections {c16['per_s']:,.0f}/s "
        f"(p50 {c16['p50_ms']:.2f} ms, p99 {c16['p99_ms']:.2f} ms)")


def print_policy(b: dict) -> None:
    p = b["policy"]
    say(f"  policy set: {p['rules']} rules, context {p['context_bytes']:,} bytes, decision {p['decision']}")
    for key, label in (("evaluate", "pure evaluate()"), ("canonical_context", "canonical bytes + reload"),
                       ("build_context", "build_context (SQL)"),
                       ("gate_check", "gate.check in-process (no HTTP)")):
        t = p[key]
        say(f"    {label:<32} mean {t['mean_us']:>8,.0f} us  p50 {t['p50_us']:>8,.0f} us  "
            f"p99 {t['p99_us']:>8,.0f} us  (n={t['n']})")


# -- main -----------------------------------------------------------------------------------

def prepare_service(backend: Backend, audit_events: int, instance: Path, logdir: Path):
    """Create the database, migrate, key, tokens (flask CLI), fill, seed; return (env, tokens, deep, fill)."""
    backend.create()
    env = service_env(backend, instance)
    t0 = time.perf_counter()
    flask_cli(env, "db", "upgrade")
    flask_cli(env, "ledger", "init-key")
    tokens = create_tokens(env, Principals.specs())
    say(f"  migrated, key and {len(tokens)} tokens created with the flask CLI "
        f"in {time.perf_counter() - t0:.1f} s")
    say(f"  filling the audit trail with {audit_events:,} entries (append_many, 1,000 per transaction)")
    fill = fill_audit(env, audit_events, backend)
    deep = fill.pop("deep_cursors")
    say(f"  filled {fill['entries']:,} entries in {fill['seconds']:.1f} s ({fill['per_s']:,.0f}/s); "
        f"{fill['audit_rows']:,} audit rows over {fill['models']} models; {len(deep)} deep cursors; "
        f"database {backend.size()}")
    server = start_server("app:create_app()", DEFAULT_CONFIG, env, logdir, f"{backend.name}-seed")
    try:
        seed(server.port, tokens)
    finally:
        server.stop()
    backend.settle()
    return env, tokens, deep, fill


def run_backend(name: str, args, workdir: Path, trivial: dict) -> dict:
    backend = Backend(name, workdir, args.pg_url)
    instance = workdir / "instance"
    instance.mkdir(parents=True)
    logdir = workdir / "logs"
    logdir.mkdir()
    out: dict = {"backend": name, "label": backend.label}
    try:
        say(f"\n== {backend.label} ==")
        env, tokens, deep, fill = prepare_service(backend, args.audit_events, instance, logdir)
        out["fill"] = fill

        out["configs"] = []
        for config in args.configs:
            for attempt in range(args.retries + 1):
                busy = wait_until_idle(args.wait_idle) if args.wait_idle else background_busy()
                say(f"  {config.title}: (machine {busy:.0%} busy before start)")
                result = run_config(backend, env, config, tokens, deep, args, logdir,
                                    tag=config.key + (f"-r{attempt}" if attempt else ""))
                result["background_busy_before"] = busy
                result["attempt"] = attempt
                noisy = max(r["cpu"]["other_share"] for r in result.values()
                            if isinstance(r, dict) and "cpu" in r)
                result["max_other_share"] = noisy
                print_config_table(backend.label, result)
                if noisy <= args.max_other or attempt == args.retries:
                    break
                say(f"  other processes took up to {noisy:.0%} of the machine during a phase: "
                    f"measuring {config.label} again")
            out["configs"].append(result)

        if args.wait_idle:
            wait_until_idle(args.wait_idle)
        say("  raw database limits ...")
        raw, target = (raw_sqlite, workdir) if name == "sqlite" else (raw_postgres, backend.url)
        out["raw"] = {(str(t) if shape == "row" else f"{shape}{t}"):
                      raw(target, t, args.requests * 2, min(args.seconds, 10), shape)
                      for shape in RAW_SHAPES for t in (1, 16)}
        print_raw(out)
        if args.wait_idle:
            wait_until_idle(args.wait_idle)
        out["policy"] = measure_policy(env, args.policy_n)
        print_policy(out)
        out["size"] = backend.size()
        out["summary"] = summary_rows(out, trivial)
        print_summary(out, trivial)
    finally:
        backend.drop()
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.http_api", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--quick", action="store_true",
                    help="100,000 audit events, 1,000 requests or 5 s per phase, two configurations")
    ap.add_argument("--skip-mlflow", action="store_true", help="leave out the MLflow comparison")
    ap.add_argument("--requests", type=int, help="request bound per phase (default 5,000; quick 1,000)")
    ap.add_argument("--seconds", type=float, help="time bound per phase (default 20; quick 5)")
    ap.add_argument("--audit-events", type=int, help="entries in the ledger before the HTTP phases "
                    "(default 1,000,000; quick 100,000)")
    ap.add_argument("--configs", help="comma-separated server configurations, e.g. "
                    "granian-2x1,gthread-2x4,sync-4 (default: " + ",".join(FULL_CONFIGS) + ")")
    ap.add_argument("--mlflow-workers", default="1,2", help="mlflow server --workers values (default 1,2)")
    ap.add_argument("--policy-n", type=int, default=2000, help="evaluations timed in-process")
    ap.add_argument("--wait-idle", type=float, default=30.0,
                    help="wait up to this many seconds for an idle machine before each configuration")
    ap.add_argument("--retries", type=int, default=2,
                    help="measure a configuration again (up to this many times) when other processes "
                    "took more than --max-other of the machine during one of its phases")
    ap.add_argument("--max-other", type=float, default=0.10)
    ap.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    ap.add_argument("--json", help="write results here (default bench/results/http-<time>.json)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = ap.parse_args(argv)
    args.requests = args.requests or (1000 if args.quick else 5000)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    if args.audit_events is None:
        args.audit_events = 100_000 if args.quick else 1_000_000
    names = args.configs.split(",") if args.configs else (QUICK_CONFIGS if args.quick else FULL_CONFIGS)
    args.configs = [parse_config(x) for x in names]
    if DEFAULT_CONFIG not in args.configs:
        args.configs.insert(0, DEFAULT_CONFIG)
    args.mlflow_workers = [int(x) for x in args.mlflow_workers.split(",") if x]
    for bound in (args.requests, args.seconds, args.audit_events):
        if bound <= 0:
            ap.error("bounds must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    import granian
    import gunicorn
    info = machine_info(args.pg_url if "postgres" in backends else None, gunicorn=gunicorn.__version__,
                        granian=granian.__version__)
    say(f"bench.http_api — {info['date']}")
    say(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory']}, {info['kernel']}; "
        f"{info['python']}, granian {info['granian']}, gunicorn {info['gunicorn']}, SQLite {info['sqlite']}"
        + (f", PostgreSQL {info.get('postgresql')}" if info.get("postgresql") else "")
        + f"; temp {info['tempdir']}; code {info['code']}")
    say(f"load: {CLIENTS} clients (threads, one keep-alive HTTP/1.1 socket each), "
        f"each phase <= {args.requests:,} requests or {args.seconds:g} s; "
        f"configurations: {', '.join(c.label for c in args.configs)}")
    results: dict = {"machine": info, "args": {k: (v if not isinstance(v, list) else [str(x) for x in v])
                                                for k, v in vars(args).items()},
                     "targets": TARGETS, "backends": []}
    workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    try:
        say("\n== server ceiling: a trivial WSGI JSON app, same settings ==")
        trivial = {}
        for config in args.configs:
            r = measure_trivial(config, workdir, args)
            trivial[config.label] = r
            say(f"  {config.title:<16} {r['per_s']:>8,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                f"p99 {r['p99_ms']:.2f} ms  client CPU {r['cpu']['client_share']:.0%} of the machine, "
                f"server {r['cpu']['server_share']:.0%}")
        results["trivial"] = trivial
        for name in backends:
            bdir = workdir / name
            bdir.mkdir()
            results["backends"].append(run_backend(name, args, bdir, trivial))
        if not args.skip_mlflow:
            say("\n== MLflow model registry (SQLite backend store), same client ==")
            from .http_mlflow import ensure_mlflow, measure_mlflow

            version, why = ensure_mlflow(say)
            results["mlflow"] = {"version": version, "unavailable": why, "runs": []}
            if why:
                say(f"  MLflow unavailable: {why}")
            else:
                say(f"  {version}")
                mdir = workdir / "mlflow"
                mdir.mkdir()
                for workers in args.mlflow_workers:
                    results["mlflow"]["runs"].append(measure_mlflow(
                        mdir, workers, CLIENTS, args.requests, args.seconds, say))
        print_final(results)
    finally:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = Path(args.json) if args.json else RESULTS_DIR / (
            "http-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + ".json")
        path.write_text(json.dumps(results, indent=1, default=str))
        say(f"\nresults: {path}")
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def print_final(results: dict) -> None:
    say("\n== summary ==")
    for b in results["backends"]:
        print_raw(b)
        print_policy(b)
        print_summary(b, results["trivial"])
    m = results.get("mlflow")
    if m and m.get("runs"):
        say(f"\n  {m['version']}, SQLite backend store ({m['runs'][0]['sqlite']})")
        sqlite_b = next((b for b in results["backends"] if b["backend"] == "sqlite"), None)
        for run in m["runs"]:
            c = run["create"]
            ours = ""
            if sqlite_b:
                d = next(x for x in sqlite_b["configs"] if x["default"])["registrations"]
                ours = (f"; ours (SQLite, {DEFAULT_CONFIG.title}) {d['per_s']:,.0f}/s = "
                        f"{d['per_s'] / c['per_s']:.1f}x" if c["per_s"] else "")
            say(f"  mlflow --workers {run['workers']}: model-versions/create {c['per_s']:,.0f}/s "
                f"p50 {c['p50_ms']:.1f} ms p99 {c['p99_ms']:.1f} ms, {c['errors']} errors; "
                f"/health {run['health']['per_s']:,.0f}/s{ours}")
    elif m:
        say(f"\n  MLflow: {m.get('unavailable')}")


if __name__ == "__main__":
    sys.exit(main())
