"""Model registry and dataset catalogue, written through the ledger.

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

import json

import orjson
import sqlalchemy as sa

from ledger.db import select_all

from . import tables
from .errors import ConflictError, InvalidRequestError, NotFoundError
from .projections import AuditFacts, canonical_text, projects

RISK_TIERS = ("minimal", "limited", "high")
LEGAL_BASES = ("consent", "contract", "legal_obligation", "vital_interests", "public_task",
               "legitimate_interests")
DEFAULT_LINEAGE_NAMESPACE = "ml-governance"


def model_subject(name: str, version: str | None = None) -> str:
    """Return the ledger subject of a model or model version."""
    return f"model:{name}@{version}" if version else f"model:{name}"


def _loads(text):
    return json.loads(text) if text is not None else None


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
            _same_or_conflict(f"model {payload['name']}", _model_payload(existing), payload)
            return {**_model_json(existing), "created": False}
        entry = writer.append("model.registered", actor, model_subject(payload["name"]), payload)
        row = _model_row(writer.connection, payload["name"])
    return {**_model_json(row), "created": True, "seq": entry.seq}


def _same_or_conflict(what: str, recorded: dict, submitted: dict) -> None:
    different = sorted(k for k in submitted if recorded.get(k) != submitted[k])
    if different:
        raise ConflictError(f"{what} is already registered with different {', '.join(different)}",
                            errors={k: ["differs from the registered value"] for k in different})


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
_DATASET_BY_NAME = sa.select(tables.dataset).where(tables.dataset.c.name == sa.bindparam("name"))
_DATASET_VERSION = sa.select(tables.dataset_version).where(
    tables.dataset_version.c.dataset_name == sa.bindparam("name"),
    tables.dataset_version.c.version == sa.bindparam("version"))
_MODEL_VERSION = sa.select(tables.model_version).where(
    tables.model_version.c.model_name == sa.bindparam("name"),
    tables.model_version.c.version == sa.bindparam("version"))


def _one_row(conn, statement, params: dict):
    """The row a prebuilt lookup finds, or None.

    On the driver (select_all), not through SQLAlchemy's execution layer:
    registrations, evidence submissions and sign-offs read these, some under
    the append lock (on SQLite 33 -> 10 us a read; on PostgreSQL, outside a
    transaction, one autocommit round trip instead of BEGIN, SELECT, ROLLBACK).
    """
    rows = select_all(conn, {"row": statement}, params)["row"]
    return rows[0] if rows else None


def _model_row(conn, name: str):
    return _one_row(conn, _MODEL_BY_NAME, {"name": name})


def _model_payload(row) -> dict:
    return {"name": row.name, "description": row.description, "owner": row.owner,
            "intended_use": row.intended_use, "risk_tier": row.risk_tier,
            "uses_personal_data": row.uses_personal_data,
            "protected_attributes": _loads(row.protected_attributes), "tags": _loads(row.tags)}


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


# -- datasets -----------------------------------------------------------------

def register_dataset(ledger, actor: str, data: dict) -> dict:
    """Register a dataset (a named, versioned data source)."""
    payload = {
        "name": data["name"], "description": data.get("description", ""), "owner": data["owner"],
        "source_system": data["source_system"],
        "lineage_namespace": data.get("lineage_namespace") or DEFAULT_LINEAGE_NAMESPACE,
        "lineage_name": data.get("lineage_name") or data["name"],
    }
    with ledger.transaction() as writer:
        conn = writer.connection
        existing = _dataset_row(conn, payload["name"])
        if existing is not None:
            _same_or_conflict(f"dataset {payload['name']}", _dataset_payload(existing), payload)
            return {**_dataset_json(existing), "created": False}
        clash = conn.execute(sa.select(tables.dataset.c.name).where(
            tables.dataset.c.lineage_namespace == payload["lineage_namespace"],
            tables.dataset.c.lineage_name == payload["lineage_name"])).first()
        if clash:
            raise ConflictError(f"dataset {clash.name} already uses lineage identity "
                                f"{payload['lineage_namespace']}/{payload['lineage_name']}")
        entry = writer.append("dataset.registered", actor, f"dataset:{payload['name']}", payload)
        row = _dataset_row(conn, payload["name"])
    return {**_dataset_json(row), "created": True, "seq": entry.seq}


@projects("dataset.registered")
def _dataset_registered(conn, entry):
    p = entry.payload
    conn.execute(tables.dataset.insert(), dict(
        name=p["name"], description=p["description"], owner=p["owner"],
        source_system=p["source_system"], lineage_namespace=p["lineage_namespace"],
        lineage_name=p["lineage_name"], created_at=entry.ts, created_by=entry.actor, seq=entry.seq))
    return AuditFacts(f"dataset {p['name']} registered from {p['source_system']}")


def _dataset_row(conn, name: str):
    return conn.execute(_DATASET_BY_NAME, {"name": name}).first()


def _dataset_payload(row) -> dict:
    return {"name": row.name, "description": row.description, "owner": row.owner,
            "source_system": row.source_system, "lineage_namespace": row.lineage_namespace,
            "lineage_name": row.lineage_name}


def _dataset_json(row) -> dict:
    return {**_dataset_payload(row), "created_at": row.created_at, "created_by": row.created_by,
            "seq": row.seq}


def list_datasets(engine, limit: int = 100, after: str | None = None) -> list[dict]:
    """Return datasets ordered by name."""
    query = sa.select(tables.dataset).order_by(tables.dataset.c.name).limit(limit)
    if after:
        query = query.where(tables.dataset.c.name > after)
    with engine.connect() as conn:
        return [_dataset_json(r) for r in conn.execute(query)]


def register_dataset_version(ledger, actor: str, dataset_name: str, data: dict) -> dict:
    """Register a dataset version: content digest, schema, PII columns, legal basis."""
    columns = [{"name": c["name"], "type": c["type"]} for c in data.get("schema", [])]
    names = [c["name"] for c in columns]
    if len(set(names)) != len(names):
        raise InvalidRequestError("schema column names must be unique",
                                  errors={"schema": ["duplicate column name"]})
    pii = sorted(set(data.get("pii_columns", [])))
    unknown = [c for c in pii if columns and c not in names]
    if unknown:
        raise InvalidRequestError(f"PII columns not in the schema: {', '.join(unknown)}",
                                  errors={"pii_columns": [f"not in schema: {c}" for c in unknown]})
    payload = {
        "dataset": dataset_name, "version": data["version"], "content_sha256": data["content_sha256"],
        "uri": data.get("uri", ""), "source_system": data.get("source_system", ""),
        "schema": columns, "pii_columns": pii, "legal_basis": data.get("legal_basis"),
        "consent_reference": data.get("consent_reference"),
        "retention_period": data.get("retention_period"), "row_count": data.get("row_count"),
    }
    with ledger.transaction() as writer:
        conn = writer.connection
        parent = _dataset_row(conn, dataset_name)
        if parent is None:
            raise NotFoundError(f"no dataset {dataset_name!r}: register it first")
        if not payload["source_system"]:
            payload["source_system"] = parent.source_system
        existing = _dataset_version_row(conn, dataset_name, payload["version"])
        if existing is not None:
            _same_or_conflict(f"dataset version {dataset_name}@{payload['version']}",
                              _dataset_version_payload(existing), payload)
            return {**_dataset_version_json(existing), "created": False}
        entry = writer.append("dataset.version.registered", actor,
                              f"dataset:{dataset_name}@{payload['version']}", payload)
        row = _dataset_version_row(conn, dataset_name, payload["version"])
    return {**_dataset_version_json(row), "created": True, "seq": entry.seq}


@projects("dataset.version.registered")
def _dataset_version_registered(conn, entry):
    p = entry.payload
    conn.execute(tables.dataset_version.insert(), dict(
        dataset_name=p["dataset"], version=p["version"], content_sha256=p["content_sha256"],
        uri=p["uri"], source_system=p["source_system"], schema=canonical_text(p["schema"]),
        pii_columns=canonical_text(p["pii_columns"]), legal_basis=p["legal_basis"],
        consent_reference=p["consent_reference"], retention_period=p["retention_period"],
        row_count=p["row_count"], created_at=entry.ts, created_by=entry.actor, seq=entry.seq))
    pii = f", PII columns {', '.join(p['pii_columns'])}" if p["pii_columns"] else ""
    return AuditFacts(f"dataset version {p['dataset']}@{p['version']} registered{pii}")


def _dataset_version_row(conn, name: str, version: str):
    return _one_row(conn, _DATASET_VERSION, {"name": name, "version": version})


def _dataset_version_payload(row) -> dict:
    return {"dataset": row.dataset_name, "version": row.version, "content_sha256": row.content_sha256,
            "uri": row.uri, "source_system": row.source_system, "schema": _loads(row.schema),
            "pii_columns": _loads(row.pii_columns), "legal_basis": row.legal_basis,
            "consent_reference": row.consent_reference, "retention_period": row.retention_period,
            "row_count": row.row_count}


def _dataset_version_json(row) -> dict:
    return {**_dataset_version_payload(row), "created_at": row.created_at,
            "created_by": row.created_by, "seq": row.seq}


def list_dataset_versions(engine, name: str) -> list[dict]:
    """Return the versions of a dataset in registration order."""
    t = tables.dataset_version
    with engine.connect() as conn:
        if _dataset_row(conn, name) is None:
            raise NotFoundError(f"no dataset {name!r}")
        rows = conn.execute(sa.select(t).where(t.c.dataset_name == name).order_by(t.c.seq))
        return [_dataset_version_json(r) for r in rows]


def get_dataset_version(engine, name: str, version: str) -> dict:
    """Return one dataset version."""
    with engine.connect() as conn:
        row = _dataset_version_row(conn, name, version)
    if row is None:
        raise NotFoundError(f"no dataset version {name}@{version}")
    return _dataset_version_json(row)


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
            row = _dataset_version_row(conn, name, version)
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
            _same_or_conflict(f"version {model_name}@{payload['version']}",
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
    return _one_row(conn, _MODEL_VERSION, {"name": name, "version": version})


def _version_payload(row) -> dict:
    lineage = ({"namespace": row.lineage_namespace, "name": row.lineage_name}
               if row.lineage_namespace else None)
    return {"model": row.model_name, "version": row.version, "artifact_sha256": row.artifact_sha256,
            "artifact_uri": row.artifact_uri, "framework": row.framework,
            "description": row.description, "metrics": _loads(row.metrics),
            "training_datasets": _loads(row.training_datasets), "lineage": lineage}


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

