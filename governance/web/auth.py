"""Signing in with an API token, the per-request check, CSRF, signing out.

The session (Flask's signed cookie) holds ``token_id``, ``principal`` and
``csrf`` — never the token's secret. Before every page the token is looked up
again by id (``tokens.authenticate_token_id``): a revoked or expired token
clears the session and sends the person back to the sign-in page with the
reason. Every POST form carries ``csrf_token``, compared in constant time
with the session's.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from urllib.parse import urlsplit

from flask import (current_app, flash, g, redirect, render_template, request, session,
                   url_for)

from ..identity import tokens
from ..errors import AuthenticationError, PermissionDeniedError
from . import blp
from .errors import CsrfError

PUBLIC_ENDPOINTS = {"web.login", "web.static"}
LOGIN_FAILED = "Sign-in failed: that token was not accepted."
MAX_TOKEN_FIELD = 200


def csrf_token() -> str:
    """The session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Raise CsrfError unless the form's csrf_token matches the session's."""
    expected = session.get("csrf")
    presented = request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace")):
        raise CsrfError("the form has expired or did not come from this site; reload the page and "
                        "try again")


@blp.context_processor
def _template_globals():
    return {"csrf_token": csrf_token}


@blp.before_request
def _signed_in():
    """Every page but sign-in needs a live session; the token is checked again each time."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    token_id = session.get("token_id")
    if not token_id:
        return redirect(url_for("web.login", next=_local_path(request.full_path)))
    try:
        g.principal = tokens.authenticate_token_id(current_app.extensions["db_engine"], token_id)
    except AuthenticationError as e:
        session.clear()
        flash(f"You were signed out: {e}. Sign in with a valid token.")
        return redirect(url_for("web.login"))
    if request.method == "POST":
        check_csrf()
    return None


def require_page_roles(*roles: str):
    """Decorate a page so it needs a principal holding any of ``roles`` (403 page otherwise)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if not g.principal.has_any(roles):
                raise PermissionDeniedError(
                    f"{g.principal.name} lacks the role this page needs: one of {', '.join(roles)}")
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate


def _local_path(target: str | None) -> str | None:
    """``target`` if it is a path of these pages (no other host, no scheme), else None."""
    if not target or not target.startswith("/ui/") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target.rstrip("?")


@blp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in by pasting an API token."""
    next_page = _local_path(request.values.get("next"))
    if request.method == "GET":
        if session.get("token_id"):
            return redirect(next_page or url_for("web.index"))
        return render_template("login.html", next_page=next_page)
    check_csrf()
    presented = request.form.get("token", "").strip()
    try:
        if len(presented) > MAX_TOKEN_FIELD:
            raise AuthenticationError("token field too long")
        principal = tokens.authenticate_token(current_app.extensions["db_engine"], presented)
    except AuthenticationError as e:
        current_app.logger.info("web sign-in refused: %s", e)
        return render_template("login.html", next_page=next_page, error=LOGIN_FAILED), 401
    session.clear()  # a fresh session (and CSRF token) on every sign-in
    session.permanent = True
    session["token_id"] = principal.token_id
    session["principal"] = principal.name
    csrf_token()
    return redirect(next_page or url_for("web.index"))


@blp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST with the CSRF token)."""
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("web.login"))
