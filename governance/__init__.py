"""The governance domain: models, datasets, lineage, evidence, approvals,
deployments and explanations, all written through the ledger.

Its relational tables are projections of ledger entries (``projections.py``);
this package may import ``ledger``, never the reverse. Importing the package
itself is cheap (the pipeline client, ``python -m governance.client``, needs
nothing but the standard library); ``init_app`` loads the rest.
"""

from __future__ import annotations

from pathlib import Path


def init_app(app, api) -> None:
    """Wire projections, authentication, error rendering, policies, API, web pages and CLI into the app."""
    from ledger.http import AUTHORIZER_KEY

    # Importing the domain modules registers their projections.
    from . import (  # noqa: F401
        approvals, evidence, gate, identity, lineage, overrides, policy_registry, projections, registry,
    )
    from .api import register
    from .cli import governance_cli, tokens_cli
    from .errors import GovernanceError
    from .policy_cli import policy_cli
    from .web import init_app as init_web

    app.config.setdefault("GOV_MAX_DOCUMENT_BYTES", 5 * 1024 * 1024)
    app.extensions["ledger"].add_projector(projections.project)
    app.extensions["policies"] = policy_registry.PolicyRegistry(app.config["POLICY_DIR"],
                                                                app.extensions["ledger"])
    app.extensions[AUTHORIZER_KEY] = identity.authorizer
    if app.config.get("OIDC_ISSUER"):
        app.extensions["oidc"] = identity.OidcValidator(
            issuer=app.config["OIDC_ISSUER"], audience=app.config["OIDC_AUDIENCE"],
            jwks_file=app.config["OIDC_JWKS_FILE"],
            roles_claim=app.config.get("OIDC_ROLES_CLAIM") or "roles",
            principal_claim=app.config.get("OIDC_PRINCIPAL_CLAIM") or "sub",
            algorithms=tuple((app.config.get("OIDC_ALGORITHMS") or "RS256,ES256,EdDSA").split(",")))
    app.register_error_handler(GovernanceError, _render)
    register(api)
    init_web(app)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(governance_cli)
    app.cli.add_command(policy_cli)


def _render(error):
    from werkzeug.http import HTTP_STATUS_CODES

    from ledger.http import error_body

    from .errors import AuthenticationError, status_of

    code = status_of(error)
    headers = {"WWW-Authenticate": 'Bearer realm="ml-governance"'} if isinstance(
        error, AuthenticationError) else {}
    errors = {error.location: error.errors} if error.errors and error.location else error.errors
    return error_body(code, HTTP_STATUS_CODES.get(code, "Error"), str(error), errors), code, headers


def readiness_checks(app) -> dict[str, str]:
    """Return governance-specific readiness checks (name -> 'ok', 'warn: ...' or a reason)."""
    checks = {"policies": app.extensions["policies"].status()}
    if "oidc" in app.extensions:
        checks["oidc"] = "ok" if Path(app.config["OIDC_JWKS_FILE"]).is_file() else "JWKS file missing"
    return checks
