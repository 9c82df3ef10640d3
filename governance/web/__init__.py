"""Read-only web pages for people: the audit trail (and its CSV), overrides, decisions, deployments.

Server-rendered (Jinja2, auto-escaped), one small stylesheet, no JavaScript.
A person signs in by pasting an API token; the signed session cookie keeps
the token id and principal only, and every page request checks the token
again (a revoked or expired token ends the session). Each page needs the
roles its JSON API counterpart needs. POST forms carry a per-session CSRF
token. Errors under ``/ui/`` are HTML pages; the JSON API keeps its JSON
errors. Nothing here appends to the ledger.

May import Flask, the HTTP adapter's query schemas, every governance room and
``ledger``; no room imports it.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint
from flask.sessions import SecureCookieSessionInterface

blp = Blueprint("web", __name__, url_prefix="/ui", template_folder="templates",
                static_folder="static", static_url_path="/static")


class UiSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened only under the cookie's path (``/ui``).

    No browser sends the cookie anywhere else, yet Flask opened a session on
    every request, building a signing serializer each time (~9 µs of every
    API call). Elsewhere the session is Flask's null session: it reads as
    empty and refuses writes, and nothing is ever sent back.
    """

    def open_session(self, app, request):
        prefix = self.get_cookie_path(app).rstrip("/")
        if request.path != prefix and not request.path.startswith(prefix + "/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app) -> None:
    """Configure the session cookie and register the pages."""
    from . import audit, auth, pages, rendering  # noqa: F401  (their routes and hooks join blp)
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
    app.session_interface = UiSessionInterface()
    app.register_blueprint(blp)
