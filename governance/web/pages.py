"""The read-only pages: overrides, a decision, deployments, one entry (the audit trail: ``audit.py``).

Each page validates its query with the marshmallow schema of its JSON API
counterpart (unknown parameters are refused there too), needs the same roles,
and calls the same domain read function; ``governance.gate.views`` adds which
entries a break-glass override is behind so they can be flagged.
"""

from __future__ import annotations

import json
import re

import marshmallow as ma
from flask import current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound

from ledger.serialize import entry_json

from ..api.gate import HistoryQuery, OverrideQuery
from ..gate import decisions, deployments, views
from ..identity.principals import READ_ROLES
from . import blp
from .auth import require_page_roles
from .errors import BadQueryError
from .rendering import describe

AUDIT_ROLES = ("auditor", "admin")  # as GET /api/v1/audit/events and /api/v1/ledger/entries
_DECISION_ID = re.compile(r"^dc-\d{1,16}\Z")


def load_query(schema: ma.Schema) -> dict:
    """Validate the query string with ``schema``; empty form fields count as absent."""
    repeated = sorted(name for name in request.args if len(request.args.getlist(name)) > 1)
    if repeated:
        raise BadQueryError(f"invalid query: give each parameter once ({', '.join(repeated)})")
    raw = {name: value for name, value in request.args.items() if value != ""}
    try:
        return schema.load(raw)
    except ma.ValidationError as e:
        raise BadQueryError(f"invalid query: {describe(e.normalized_messages())}") from e


def query_filters(*drop: str) -> dict:
    """The non-empty query parameters as given, less ``drop`` (for pagination links)."""
    return {name: value for name, value in request.args.items() if value != "" and name not in drop}


def engine():
    """The database engine of the app."""
    return current_app.extensions["db_engine"]


@blp.route("/")
def index():
    """The audit trail for those who may read it, deployments for everyone else."""
    if g.principal.has_any(AUDIT_ROLES):
        return redirect(url_for("web.audit_page"))
    return redirect(url_for("web.deployments_page"))


@blp.route("/overrides")
@require_page_roles(*READ_ROLES)
def overrides_page():
    """Every break-glass override with its status and entries."""
    query = load_query(OverrideQuery())
    return render_template("overrides.html", overrides=views.override_details(engine(), query.get("model")),
                           filters=query_filters())


@blp.route("/decisions/<decision_id>")
@require_page_roles(*READ_ROLES)
def decision_page(decision_id: str):
    """One recorded decision: allow or deny, each rule's result, digests, override."""
    if not _DECISION_ID.match(decision_id):
        raise NotFound(f"no decision {decision_id[:40]}")
    decision = decisions.get_decision(current_app.extensions["ledger"], decision_id)
    override = views.overrides_behind(engine(), [decision["seq"]]).get(decision["seq"])
    return render_template("decision.html", decision=decision, override=override)


@blp.route("/deployments")
@require_page_roles(*READ_ROLES)
def deployments_page():
    """Deployments and rollbacks, newest first, override-made ones flagged."""
    query = load_query(HistoryQuery())
    history = deployments.history(engine(), **query)
    behind = views.overrides_behind(engine(), [d["seq"] for d in history])
    older = (url_for("web.deployments_page", **query_filters("before_seq"), before_seq=history[-1]["seq"])
             if len(history) == query["limit"] else None)
    return render_template("deployments.html", deployments=history, overrides=behind, older=older,
                           filters=query_filters())


@blp.route("/entries/<int:seq>")
@require_page_roles(*AUDIT_ROLES)
def entry_page(seq: int):
    """One ledger entry exactly as stored, with the link to its inclusion proof."""
    entry = current_app.extensions["ledger"].entry(seq)
    return render_template("entry.html", entry=entry_json(entry),
                           canonical=entry.canonical.decode("utf-8"),
                           readable=json.dumps(json.loads(entry.canonical), indent=2, ensure_ascii=False))
