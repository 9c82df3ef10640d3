"""The dataset catalogue: datasets and their immutable versions, written through the ledger.

A dataset version records its content digest, schema, PII columns and legal
basis; model versions name the dataset versions they were trained on. As for
models, a repeated registration with identical fields is an idempotent
success and anything different a conflict.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import ConflictError, InvalidRequestError, NotFoundError
from ..projections import tables
from ..projections.projector import AuditFacts, canonical_text, projects
from .rows import json_column, one_row, same_or_conflict

LEGAL_BASES = ("consent", "contract", "legal_obligation", "vital_interests", "public_task",
               "legitimate_interests")
DEFAULT_LINEAGE_NAMESPACE = "ml-governance"

# Hot lookups are built once: constructing a select() costs more than running it.
_DATASET_BY_NAME = sa.select(tables.dataset).where(tables.dataset.c.name == sa.bindparam("name"))
_DATASET_VERSION = sa.select(tables.dataset_version).where(
    tables.dataset_version.c.dataset_name == sa.bindparam("name"),
    tables.dataset_version.c.version == sa.bindparam("version"))


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
            same_or_conflict(f"dataset {payload['name']}", _dataset_payload(existing), payload)
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
        existing = dataset_version_row(conn, dataset_name, payload["version"])
        if existing is not None:
            same_or_conflict(f"dataset version {dataset_name}@{payload['version']}",
                              _dataset_version_payload(existing), payload)
            return {**_dataset_version_json(existing), "created": False}
        entry = writer.append("dataset.version.registered", actor,
                              f"dataset:{dataset_name}@{payload['version']}", payload)
        row = dataset_version_row(conn, dataset_name, payload["version"])
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


def dataset_version_row(conn, name: str, version: str):
    """The projection row of a dataset version, or None."""
    return one_row(conn, _DATASET_VERSION, {"name": name, "version": version})


def _dataset_version_payload(row) -> dict:
    return {"dataset": row.dataset_name, "version": row.version, "content_sha256": row.content_sha256,
            "uri": row.uri, "source_system": row.source_system, "schema": json_column(row.schema),
            "pii_columns": json_column(row.pii_columns), "legal_basis": row.legal_basis,
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
        row = dataset_version_row(conn, name, version)
    if row is None:
        raise NotFoundError(f"no dataset version {name}@{version}")
    return _dataset_version_json(row)
