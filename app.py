"""Application factory: ``create_app(config=None)`` is the one way in.

Configuration comes from environment variables (listed in docs/operations.md);
tests pass a dict that overrides them. This is the one place that wires the
libraries to Flask: it builds the engine, the ledger, the projector (every
room's projections, registered here), the policy registry and the OIDC
validator, then lets each adapter register itself with its ``init_app``:
``ledger.http``, ``ledger.cli``, ``governance.api``, ``governance.web`` and
``governance.cli``. ``cli`` is the ``mlgov`` command (pyproject.toml): the
app's command groups, ``flask --app app ...``, under one name.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import click
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app, jsonify
from flask.cli import FlaskGroup, routes_command, shell_command
from flask_smorest import Api
from sqlalchemy.exc import DataError, OperationalError, ProgrammingError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

import ledger.cli
import ledger.http
from governance import api as governance_api
from governance import cli as governance_cli
from governance import web as governance_web
from governance.approvals import signoffs
from governance.evidence import records
from governance.gate import decisions, deployments, overrides
from governance.identity import tokens
from governance.identity.oidc import OidcValidator
from governance.lineage import events
from governance.policy import registry as policy_registry
from governance.projections.projector import Projector
from governance.registry import datasets, models
from ledger import Ledger, LedgerStore, make_engine, settings_from_config
from ledger.errors import LedgerError
from ledger.http import ContractPlugin, ErrorSchema, FastJSONProvider, describe_validation, error_body

# Every room whose entries have projections, in the order their kinds were introduced.
PROJECTED_MODULES = (tokens, models, datasets, events, records, signoffs, policy_registry, decisions,
                     deployments, overrides)

BASE_DIR = Path(__file__).resolve().parent
ALEMBIC_INI = BASE_DIR / "migrations" / "alembic.ini"


def _instance_dir() -> Path:
    # A checkout keeps its database and keys in instance/ beside app.py. An
    # installed package (pip install .) has app.py in site-packages, no place
    # for them: they go to <prefix>/var/mlgov, as Flask puts an installed
    # app's instance folder under <prefix>/var.
    if (BASE_DIR / "pyproject.toml").is_file():
        return BASE_DIR / "instance"
    return Path(sys.prefix) / "var" / "mlgov"


INSTANCE_DIR = _instance_dir()


def database_settings() -> tuple[str, str | None]:
    """Return (DATABASE_URL, DATABASE_SCHEMA) from the environment, with defaults."""
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'ledger.db'}"
    return url, os.environ.get("DATABASE_SCHEMA") or None


def config_from_env() -> dict:
    """Return the configuration read from environment variables."""
    env = os.environ.get
    url, schema = database_settings()
    key = env("LEDGER_SIGNING_KEY") or str(INSTANCE_DIR / "ledger-signing.key")
    return {
        "DATABASE_URL": url,
        "DATABASE_SCHEMA": schema,
        "LEDGER_ORIGIN": env("LEDGER_ORIGIN", "localhost/ml-governance-ledger"),
        "LEDGER_SIGNING_KEY": key,
        "LEDGER_SIGNING_KEY_PASSPHRASE": env("LEDGER_SIGNING_KEY_PASSPHRASE"),
        "LEDGER_SIGNER_STATE": env("LEDGER_SIGNER_STATE") or f"{key}.state.json",
        "LEDGER_TRUSTED_KEYS": env("LEDGER_TRUSTED_KEYS") or f"{key}.trusted.json",
        "LEDGER_CHECKPOINT_DIR": env("LEDGER_CHECKPOINT_DIR", str(INSTANCE_DIR / "checkpoints")),
        "LEDGER_CHECKPOINT_EVERY": int(env("LEDGER_CHECKPOINT_EVERY", "10000")),
        "LEDGER_CHECKPOINT_SECONDS": float(env("LEDGER_CHECKPOINT_SECONDS", "60")),
        "LEDGER_VERIFY_STATE": env("LEDGER_VERIFY_STATE") or str(INSTANCE_DIR / "ledger-verify-state.json"),
        "LEDGER_MAX_PAYLOAD_BYTES": int(env("LEDGER_MAX_PAYLOAD_BYTES", str(1024 * 1024))),
        "LEDGER_BACKGROUND_CHECKPOINTS": env("LEDGER_BACKGROUND_CHECKPOINTS", "1") == "1",
        "MAX_CONTENT_LENGTH": int(env("MAX_CONTENT_LENGTH", str(6 * 1024 * 1024))),
        "POLICY_DIR": env("POLICY_DIR") or str(BASE_DIR / "policies"),
        "GATE_DECISION_TTL_SECONDS": int(env("GATE_DECISION_TTL_SECONDS", "900")),
        "GOV_MAX_DOCUMENT_BYTES": int(env("GOV_MAX_DOCUMENT_BYTES", str(5 * 1024 * 1024))),
        "OIDC_ISSUER": env("OIDC_ISSUER"),
        "OIDC_AUDIENCE": env("OIDC_AUDIENCE"),
        "OIDC_JWKS_FILE": env("OIDC_JWKS_FILE"),
        "OIDC_ROLES_CLAIM": env("OIDC_ROLES_CLAIM", "roles"),
        "OIDC_PRINCIPAL_CLAIM": env("OIDC_PRINCIPAL_CLAIM", "sub"),
        "OIDC_ALGORITHMS": env("OIDC_ALGORITHMS", "RS256,ES256,EdDSA"),
        "SECRET_KEY": env("SECRET_KEY") or None,
        "WEB_SESSION_KEY_FILE": env("WEB_SESSION_KEY_FILE") or str(INSTANCE_DIR / "web-session.key"),
        "SESSION_COOKIE_SECURE": env("SESSION_COOKIE_SECURE", "0") == "1",
    }


class JsonErrorApi(Api):
    """flask-smorest Api whose error bodies always carry code, status, message.

    Its OpenAPI document has no catch-all ``default`` response: each
    operation declares the errors it answers, all with the one body
    (``ErrorSchema``, named ``Error``); a ``OneOfSchema`` body is a
    discriminated ``oneOf``.
    """

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def __init__(self, app: Flask | None = None):
        super().__init__(app, spec_kwargs={"marshmallow_plugin": ContractPlugin()})

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        headers = dict(headers or {})
        for name, value in error.get_headers():  # e.g. Allow on 405, which smorest drops
            if name.lower() != "content-type":
                headers.setdefault(name, value)
        if "errors" in payload and code == 422 and "message" not in payload:
            payload["message"] = "validation failed: " + describe_validation(payload["errors"])
        payload.setdefault("message", error.description if code < 500 else "internal error")
        return payload, code, headers


def create_app(config: dict | None = None) -> Flask:
    """Build the application; ``config`` overrides values from the environment."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    try:  # the default SQLite file and keys go here; SQLite makes no directory
        os.makedirs(app.instance_path, exist_ok=True)
    except OSError:
        pass  # settings point elsewhere, or /readyz and the commands say what is missing
    app.json = FastJSONProvider(app)
    app.config.update(config_from_env())
    app.config.update({
        "API_TITLE": "ML governance ledger",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {"components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"}}}},
    })
    if config:
        app.config.update(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    engine = app.extensions["db_engine"] = make_engine(app.config["DATABASE_URL"],
                                                       schema=app.config["DATABASE_SCHEMA"])
    ledger_service = app.extensions["ledger"] = Ledger(LedgerStore(engine), settings_from_config(app.config))
    projector = app.extensions["projector"] = Projector(PROJECTED_MODULES)
    ledger_service.add_projector(projector.project)
    app.extensions["policies"] = policy_registry.PolicyRegistry(app.config["POLICY_DIR"], ledger_service)
    if app.config.get("OIDC_ISSUER"):
        app.extensions["oidc"] = OidcValidator(
            issuer=app.config["OIDC_ISSUER"], audience=app.config["OIDC_AUDIENCE"],
            jwks_file=app.config["OIDC_JWKS_FILE"],
            roles_claim=app.config.get("OIDC_ROLES_CLAIM") or "roles",
            principal_claim=app.config.get("OIDC_PRINCIPAL_CLAIM") or "sub",
            algorithms=tuple((app.config.get("OIDC_ALGORITHMS") or "RS256,ES256,EdDSA").split(",")))

    api = JsonErrorApi(app)
    ledger.http.init_app(app, api)
    ledger.cli.init_app(app)
    governance_api.init_app(app, api)
    governance_web.init_app(app)
    governance_cli.init_app(app)

    app.register_error_handler(DataError, _value_refused_by_database)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(ProgrammingError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected_error)
    ledger.http.guard_the_door(app)
    _register_health(app)
    _register_db_cli(app)
    if app.config["LEDGER_BACKGROUND_CHECKPOINTS"]:
        _start_checkpoints_on_first_request(app, ledger_service)
    return app


def _value_refused_by_database(error: Exception):
    current_app.logger.warning("value refused by the database: %s", error.orig)
    return error_body(400, HTTP_STATUS_CODES[400],
                      "a value in the request cannot be stored (wrong type or length)"), 400


def _database_unavailable(error: Exception):
    current_app.logger.error("database error: %s", error)
    return error_body(503, HTTP_STATUS_CODES[503],
                      "the database is unavailable or not migrated; retry later"), 503


def _unexpected_error(error: Exception):
    if isinstance(error, HTTPException):  # routed here only if smorest did not take it
        return error_body(error.code, error.name, error.description), error.code
    current_app.logger.exception("unhandled error")
    return error_body(500, HTTP_STATUS_CODES[500], "internal error"), 500


def _start_checkpoints_on_first_request(app: Flask, ledger_service) -> None:
    # Done lazily in the serving process (each worker of the server, before it
    # answers its first request), never in CLI commands, where a signature or
    # a background signer would be a surprise. A fresh server thus answers
    # its first GET /api/v1/ledger/checkpoint with a checkpoint (of size 0).
    started = {"pid": None}
    lock = threading.Lock()

    @app.before_request
    def _checkpoints():
        if started["pid"] != os.getpid():
            with lock:
                if started["pid"] != os.getpid():
                    ledger_service.sign_checkpoint_at_start()
                    ledger_service.start_checkpoint_timer()
                    started["pid"] = os.getpid()


def alembic_config(connection=None) -> AlembicConfig:
    """Return the Alembic config, optionally bound to an open connection."""
    cfg = AlembicConfig(str(ALEMBIC_INI))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migration_head() -> str:
    """Return the newest migration revision."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_database(engine) -> None:
    """Apply every migration to the engine's database."""
    from alembic import command

    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "head")
        conn.commit()


def _register_health(app: Flask) -> None:
    head = migration_head()

    @app.get("/healthz")
    def healthz():
        """Process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        """Database reachable, migrations at head, signing key loaded, no rollback."""
        engine = app.extensions["db_engine"]
        service = app.extensions["ledger"]
        checks = {}
        try:
            with engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
            checks["database"] = "ok"
            checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
        except Exception as e:  # any driver error means not ready
            checks["database"] = f"unreachable: {e.__class__.__name__}"
            checks["migrations"] = "unknown"
        if checks["database"] == "ok" and checks["migrations"] == "ok":
            try:
                key = service.signing_key()
                checks["signing_key"] = f"ok ({key.key_id[:16]})"
            except LedgerError as e:
                current_app.logger.error("signing key unusable: %s", e)
                checks["signing_key"] = "unusable (details in the server log)"
            try:
                service.ensure_writable()
                checks["ledger"] = "ok"
            except LedgerError as e:
                checks["ledger"] = str(e)
        checks["policies"] = app.extensions["policies"].status()
        if "oidc" in app.extensions:
            checks["oidc"] = "ok" if Path(app.config["OIDC_JWKS_FILE"]).is_file() else "JWKS file missing"
        ready = all(v == "ok" or v.startswith(("ok ", "warn:")) for v in checks.values())
        return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), (200 if ready else 503)


def _register_db_cli(app: Flask) -> None:
    @app.cli.group("db")
    def db_cli():
        """Database schema (Alembic migrations)."""

    @db_cli.command("upgrade")
    def upgrade():
        """Apply every pending migration."""
        upgrade_database(app.extensions["db_engine"])
        click.echo(f"database at {migration_head()}")


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False, load_dotenv=False)
def cli():
    """Operator commands of the ML governance ledger: flask --app app ... under one name.

    Each command opens the database and key files itself: run it with the
    server's DATABASE_URL, DATABASE_SCHEMA and LEDGER_* settings.
    """


# The app is create_app and the settings come from the environment, so
# FlaskGroup's --app and --env-file would only mislead.
cli.params = [param for param in cli.params if param.name not in ("app", "env_file")]
cli.add_command(routes_command)
cli.add_command(shell_command)
