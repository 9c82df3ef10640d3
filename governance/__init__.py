"""The governance domain: models, datasets, lineage, evidence, approvals,
deployments and explanations, all written through the ledger.

Its relational tables are projections of ledger entries (``projections.py``);
this package may import ``ledger``, never the reverse.
"""

from __future__ import annotations

from pathlib import Path

from werkzeug.http import HTTP_STATUS_CODES

from ledger.http import AUTHORIZER_KEY, error_body

# Importing the domain modules registers their projections.
from . import approvals, evidence, identity, lineage, projections, registry  # noqa: F401
from .errors import AuthenticationError, GovernanceError, status_of


def init_app(app, api) -> None:
    """Wire projections, authentication, error rendering, API and CLI into the app."""
    from .api import register
    from .cli import governance_cli, tokens_cli

    app.config.setdefault("GOV_MAX_DOCUMENT_BYTES", 5 * 1024 * 1024)
    app.extensions["ledger"].add_projector(projections.project)
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
    app.cli.add_command(tokens_cli)
    app.cli.add_command(governance_cli)


def _render(error: GovernanceError):
    code = status_of(error)
    headers = {"WWW-Authenticate": 'Bearer realm="ml-governance"'} if isinstance(
        error, AuthenticationError) else {}
    return error_body(code, HTTP_STATUS_CODES.get(code, "Error"), str(error), error.errors), code, headers


def readiness_checks(app) -> dict[str, str]:
    """Return governance-specific readiness checks (name -> 'ok' or a reason)."""
    checks = {}
    if "oidc" in app.extensions:
        checks["oidc"] = "ok" if Path(app.config["OIDC_JWKS_FILE"]).is_file() else "JWKS file missing"
    return checks


__all__ = ["init_app", "readiness_checks"]
