"""Models and their immutable versions, written through the ledger.

Every registration is one ledger entry; its projection rows are written in the
same transaction by the handlers below. Checks that depend on what exists
(model registered? dataset version registered? version already there?) run
inside the ledger transaction, under the append lock, so two concurrent
requests cannot both pass them.

Registered versions are immutable: registering the same version again with
identical fields is an idempotent success (the original entry is returned),
with anything different it is a conflict.
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from ..errors import InvalidRequestError, NotFoundError
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects
from .datasets import dataset_version_row
from .rows import json_column, one_row, same_or_conflict

RISK_TIERS = ("minimal", "limited", "high")


def model_subject(name: str, version: str | None = None) -> str:
    """Return the ledger subject of a model or model version."""
    return f"model:{name}@{version}" if version else f"model:{name}"


# -- models -------------------------------------------------------------------

def register_model(ledger, actor: str, data: dict) -> dict:
    """Register a model; 409 if the name is taken (identical re-registration is idempotent)."""
    payload = {
        "name": data["name"], "description": data.get("description", ""), "owner": data["owner"],
        "intended_use": data.get("intended_use", ""), "risk_tier": data["risk_tier"],
        "uses_personal_data": data["uses_personal_data"],
        "protected_attributes": sorted(set(data.get("protected_attributes", []))),
        "tags": sorted(set(data.get("tags", []))),
    }
    with ledger.transaction() as writer:
        existing = _model_row(writer.connection, payload["name"])
        if existing is not None:
            same_or_conflict(f"model {payload['name']}", _model_payload(existing), payload)
            return {**_model_json(existing), "created": False}
        entry = writer.append("model.registered", actor, model_subject(payload["name"]), payload)
        row = _model_row(writer.connection, payload["name"])
    return {**_model_json(row), "created": True, "seq": entry.seq}


@projects("model.registered")
def _model_registered(conn, entry):
    p = entry.payload
    conn.execute(tables.model.insert(), dict(
        name=p["name"], description=p["description"], owner=p["owner"],
        intended_use=p["intended_use"], risk_tier=p["risk_tier"],
        uses_personal_data=p["uses_personal_data"],
        protected_attributes=canonical_text(p["protected_attributes"]),
        tags=canonical_text(p["tags"]), created_at=entry.ts, created_by=entry.actor, seq=entry.seq))
    return AuditFacts(f"model {p['name']} registered ({p['risk_tier']} risk, owner {p['owner']})",
                      model=p["name"])


# Hot lookups are built once: constructing a select() costs more than running it.
_MODEL_BY_NAME = sa.select(tables.model).where(tables.model.c.name == sa.bindparam("name"))
_MODEL_VERSION = sa.select(tables.model_version).where(
    tables.model_version.c.model_name == sa.bindparam("name"),
    tables.model_version.c.version == sa.bindparam("version"))


def _model_row(conn, name: str):
    return one_row(conn, _MODEL_BY_NAME, {"name": name})


def _model_payload(row) -> dict:
    return {"name": row.name, "description": row.description, "owner": row.owner,
            "intended_use": row.intended_use, "risk_tier": row.risk_tier,
            "uses_personal_data": row.uses_personal_data,
            "protected_attributes": json_column(row.protected_attributes), "tags": json_column(row.tags)}


def _model_json(row) -> dict:
    return {**_model_payload(row), "created_at": row.created_at, "created_by": row.created_by,
            "seq": row.seq}


def get_model(engine, name: str) -> dict:
    """Return a model with its version list."""
    with engine.connect() as conn:
        row = _model_row(conn, name)
        if row is None:
            raise NotFoundError(f"no model {name!r}")
        versions = conn.execute(
            sa.select(tables.model_version.c.version, tables.model_version.c.created_at,
                      tables.model_version.c.seq)
            .where(tables.model_version.c.model_name == name)
            .order_by(tables.model_version.c.seq)).all()
    return {**_model_json(row), "versions": [dict(v._mapping) for v in versions]}


def list_models(engine, risk_tier: str | None = None, tag: str | None = None,
                limit: int = 100, after: str | None = None) -> list[dict]:
    """Return models ordered by name, optionally filtered."""
    query = sa.select(tables.model).order_by(tables.model.c.name).limit(limit)
    if risk_tier:
        query = query.where(tables.model.c.risk_tier == risk_tier)
    if after:
        query = query.where(tables.model.c.name > after)
    if tag:
        # tags is canonical JSON: the tag's own encoding, quotes included, can
        # only occur as that element (a quote inside a string is escaped).
        needle = canonical_text(tag).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(tables.model.c.tags.like(f"%{needle}%", escape="\\"))
    with engine.connect() as conn:
        return [_model_json(r) for r in conn.execute(query)]


# -- model versions -----------------------------------------------------------

def register_version(ledger, actor: str, model_name: str, data: dict) -> dict:
    """Register an immutable model version trained on registered dataset versions."""
    refs = data.get("training_datasets", [])
    keys = [(r["name"], r["version"]) for r in refs]
    if len(set(keys)) != len(keys):
        raise InvalidRequestError("training_datasets lists a dataset version twice",
                                  errors={"training_datasets": ["duplicate reference"]})
    lineage = data.get("lineage")
    payload = {
        "model": model_name, "version": data["version"], "artifact_sha256": data["artifact_sha256"],
        "artifact_uri": data.get("artifact_uri", ""), "framework": data.get("framework", ""),
        "description": data.get("description", ""), "metrics": data.get("metrics", {}),
        "lineage": {"namespace": lineage["namespace"], "name": lineage["name"]} if lineage else None,
    }
    # Models and dataset versions never change once registered, so they are
    # read before taking the append lock; only "is this version new?" must be
    # asked under it.
    with ledger.store.engine.connect() as conn:
        if _model_row(conn, model_name) is None:
            raise NotFoundError(f"no model {model_name!r}: register it first")
        datasets = []
        missing = []
        for name, version in sorted(keys):
            row = dataset_version_row(conn, name, version)
            if row is None:
                missing.append(f"{name}@{version}")
            else:
                datasets.append({"name": name, "version": version,
                                 "content_sha256": row.content_sha256})
    if missing:
        raise InvalidRequestError(
            f"training datasets are not registered: {', '.join(missing)}",
            errors={"training_datasets": [f"not registered: {m}" for m in missing]})
    payload["training_datasets"] = datasets
    with ledger.transaction() as writer:
        existing = _version_row(writer.connection, model_name, payload["version"])
        if existing is not None:
            same_or_conflict(f"version {model_name}@{payload['version']}",
                              _version_payload(existing), payload)
            return {**_version_json(existing), "created": False}
        entry = writer.append("model.version.registered", actor,
                              model_subject(model_name, payload["version"]), payload)
    # Answer from the entry itself (what the projection was built from), not a read-back.
    recorded = orjson.loads(entry.canonical)["payload"]
    return {**recorded, "created_at": entry.ts, "created_by": entry.actor, "seq": entry.seq,
            "created": True}


@projects("model.version.registered")
def _version_registered(conn, entry):
    p = entry.payload
    lineage = p["lineage"] or {}
    conn.execute(tables.model_version.insert(), dict(
        model_name=p["model"], version=p["version"], artifact_sha256=p["artifact_sha256"],
        artifact_uri=p["artifact_uri"], framework=p["framework"], description=p["description"],
        training_datasets=canonical_text(p["training_datasets"]), metrics=canonical_text(p["metrics"]),
        lineage_namespace=lineage.get("namespace"), lineage_name=lineage.get("name"),
        created_at=entry.ts, created_by=entry.actor, seq=entry.seq))
    if p["training_datasets"]:
        conn.execute(sa.insert(tables.version_dataset), [
            {"model_name": p["model"], "version": p["version"], "dataset_name": d["name"],
             "dataset_version": d["version"]} for d in p["training_datasets"]])
    return AuditFacts(f"version {p['model']}@{p['version']} registered, artifact "
                      f"{p['artifact_sha256'][:12]}", model=p["model"], version=p["version"])


def _version_row(conn, name: str, version: str):
    return one_row(conn, _MODEL_VERSION, {"name": name, "version": version})


def _version_payload(row) -> dict:
    lineage = ({"namespace": row.lineage_namespace, "name": row.lineage_name}
               if row.lineage_namespace else None)
    return {"model": row.model_name, "version": row.version, "artifact_sha256": row.artifact_sha256,
            "artifact_uri": row.artifact_uri, "framework": row.framework,
            "description": row.description, "metrics": json_column(row.metrics),
            "training_datasets": json_column(row.training_datasets), "lineage": lineage}


def _version_json(row) -> dict:
    return {**_version_payload(row), "created_at": row.created_at, "created_by": row.created_by,
            "seq": row.seq}


def version_row(conn, name: str, version: str):
    """Return the projection row of a model version, or raise NotFoundError."""
    row = _version_row(conn, name, version)
    if row is None:
        if _model_row(conn, name) is None:
            raise NotFoundError(f"no model {name!r}")
        raise NotFoundError(f"no version {version!r} of model {name!r}")
    return row


def get_version(engine, name: str, version: str) -> dict:
    """Return one model version (without its evidence and approvals)."""
    with engine.connect() as conn:
        return _version_json(version_row(conn, name, version))


def list_versions(engine, name: str) -> list[dict]:
    """Return the versions of a model in registration order."""
    t = tables.model_version
    with engine.connect() as conn:
        if _model_row(conn, name) is None:
            raise NotFoundError(f"no model {name!r}")
        rows = conn.execute(sa.select(t).where(t.c.model_name == name).order_by(t.c.seq))
        return [_version_json(r) for r in rows]

