"""Read-only web pages for people: the audit trail, overrides, decisions, deployments.

Server-rendered (Jinja2, auto-escaped), one small stylesheet, no JavaScript.
A person signs in by pasting an API token; the signed session cookie keeps
the token id and principal only, and every page request checks the token
again (a revoked or expired token ends the session). Each page needs the
roles its JSON API counterpart needs. POST forms carry a per-session CSRF
token. Errors under ``/ui/`` are HTML pages; the JSON API keeps its JSON
errors. Nothing here appends to the ledger.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint

blp = Blueprint("web", __name__, url_prefix="/ui", template_folder="templates",
                static_folder="static", static_url_path="/static")


def init_app(app) -> None:
    """Configure the session cookie and register the pages."""
    from . import auth, pages, rendering  # noqa: F401  (their routes and hooks join blp)
    from .keys import load_or_create

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_or_create(app.config["WEB_SESSION_KEY_FILE"])
    app.config.update(
        SESSION_COOKIE_NAME="mlg_session",
        SESSION_COOKIE_PATH="/ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
    )
    app.register_blueprint(blp)
