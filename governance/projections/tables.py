"""Relational projections of the ledger (and the two stores that are not).

Every ``gov_*`` table except ``gov_token_secret`` and ``gov_document`` is a
projection: rows are written only by the projector (``projector.py``) from ledger
entries, in the same transaction as the entry, and ``flask governance
rebuild`` can drop and rewrite them from the ledger alone. The two exceptions
hold what must never enter the ledger (token secret hashes) or is too large
for it (documents, whose SHA-256 is in the entry). The schema itself is
created by the migrations in ``migrations/versions/``; ``tests/test_schema.py``
checks the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.String(27)
NAME = sa.String(128)
VERSION = sa.String(64)
JSON_TEXT = sa.Text  # canonical JSON (RFC 8785) text

token = sa.Table(
    "gov_token", metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("principal", NAME, nullable=False),
    sa.Column("roles", JSON_TEXT, nullable=False),
    sa.Column("description", sa.String(512), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("created_seq", sa.BigInteger, nullable=False),
    sa.Column("expires_at", TS, nullable=True),
    sa.Column("revoked_at", TS, nullable=True),
    sa.Column("revoked_by", sa.String(256), nullable=True),
    sa.Column("revoked_seq", sa.BigInteger, nullable=True),
    sa.Index("ix_gov_token_principal", "principal"),
)

token_secret = sa.Table(
    "gov_token_secret", metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False),
)

model = sa.Table(
    "gov_model", metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("intended_use", sa.Text, nullable=False),
    sa.Column("risk_tier", sa.String(16), nullable=False),
    sa.Column("uses_personal_data", sa.Boolean, nullable=False),
    sa.Column("protected_attributes", JSON_TEXT, nullable=False),
    sa.Column("tags", JSON_TEXT, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

model_version = sa.Table(
    "gov_model_version", metadata,
    sa.Column("model_name", NAME, sa.ForeignKey("gov_model.name", name="fk_gov_model_version_model"),
              primary_key=True),
    sa.Column("version", VERSION, primary_key=True),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("artifact_uri", sa.String(2048), nullable=False),
    sa.Column("framework", sa.String(128), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("training_datasets", JSON_TEXT, nullable=False),
    sa.Column("metrics", JSON_TEXT, nullable=False),
    sa.Column("lineage_namespace", sa.String(256), nullable=True),
    sa.Column("lineage_name", sa.String(512), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

version_dataset = sa.Table(
    "gov_version_dataset", metadata,
    sa.Column("model_name", NAME, primary_key=True),
    sa.Column("version", VERSION, primary_key=True),
    sa.Column("dataset_name", NAME, primary_key=True),
    sa.Column("dataset_version", VERSION, primary_key=True),
    sa.ForeignKeyConstraint(["model_name", "version"],
                            ["gov_model_version.model_name", "gov_model_version.version"],
                            name="fk_gov_version_dataset_version"),
    sa.ForeignKeyConstraint(["dataset_name", "dataset_version"],
                            ["gov_dataset_version.dataset_name", "gov_dataset_version.version"],
                            name="fk_gov_version_dataset_dataset"),
)

dataset = sa.Table(
    "gov_dataset", metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("source_system", sa.String(256), nullable=False),
    sa.Column("lineage_namespace", sa.String(256), nullable=False),
    sa.Column("lineage_name", sa.String(512), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("lineage_namespace", "lineage_name", name="uq_gov_dataset_lineage"),
)

dataset_version = sa.Table(
    "gov_dataset_version", metadata,
    sa.Column("dataset_name", NAME, sa.ForeignKey("gov_dataset.name",
              name="fk_gov_dataset_version_dataset"), primary_key=True),
    sa.Column("version", VERSION, primary_key=True),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("uri", sa.String(2048), nullable=False),
    sa.Column("source_system", sa.String(256), nullable=False),
    sa.Column("schema", JSON_TEXT, nullable=False),
    sa.Column("pii_columns", JSON_TEXT, nullable=False),
    sa.Column("legal_basis", sa.String(64), nullable=True),
    sa.Column("consent_reference", sa.String(512), nullable=True),
    sa.Column("retention_period", sa.String(32), nullable=True),
    sa.Column("row_count", sa.BigInteger, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

lineage_node = sa.Table(
    "gov_lineage_node", metadata,
    # hex SHA-256 of "<type>\0<namespace>\0<name>": fixed width, whatever the names
    sa.Column("node_id", sa.String(64), primary_key=True),
    sa.Column("node_type", sa.String(16), nullable=False),
    sa.Column("namespace", sa.String(256), nullable=True),
    sa.Column("name", sa.String(512), nullable=True),
    sa.Column("attributes", JSON_TEXT, nullable=False),
    sa.Index("ix_gov_lineage_node_name", "node_type", "namespace", "name"),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

lineage_edge = sa.Table(
    "gov_lineage_edge", metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("relation", sa.String(32), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Index("ix_gov_lineage_edge_target", "target"),
)

lineage_event = sa.Table(
    "gov_lineage_event", metadata,
    # one row per event identity: hex SHA-256 of the canonical [runId, eventType, eventTime]
    sa.Column("event_key", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(16), nullable=True),
    sa.Column("event_time", sa.Text, nullable=False),  # as sent
    sa.Column("content_sha256", sa.String(64), nullable=False),  # of the event's canonical bytes
    sa.Column("seq", sa.BigInteger, nullable=False),
)

evidence = sa.Table(
    "gov_evidence", metadata,
    sa.Column("evidence_id", sa.String(32), primary_key=True),
    sa.Column("model_name", NAME, nullable=False),
    sa.Column("version", VERSION, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("fields", JSON_TEXT, nullable=False),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("document_sha256", sa.String(64), nullable=True),
    sa.Column("digest", sa.String(64), nullable=False),  # leaf hash of the evidence entry
    sa.Column("supersedes", sa.String(32), nullable=True),
    sa.Column("superseded_by", sa.String(32), nullable=True),
    sa.Column("submitted_at", TS, nullable=False),
    sa.Column("submitted_by", sa.String(256), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(["model_name", "version"],
                            ["gov_model_version.model_name", "gov_model_version.version"],
                            name="fk_gov_evidence_version"),
    sa.Index("ix_gov_evidence_version", "model_name", "version"),
)

document = sa.Table(
    "gov_document", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("media_type", sa.String(128), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("uploaded_at", TS, nullable=False),
    sa.Column("uploaded_by", sa.String(256), nullable=False),
)

approval = sa.Table(
    "gov_approval", metadata,
    sa.Column("approval_id", sa.String(32), primary_key=True),
    sa.Column("model_name", NAME, nullable=False),
    sa.Column("version", VERSION, nullable=False),
    sa.Column("area", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("evidence", JSON_TEXT, nullable=False),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("decided_at", TS, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", TS, nullable=True),
    sa.Column("revoked_by", sa.String(256), nullable=True),
    sa.Column("revoke_reason", sa.Text, nullable=True),
    sa.Column("revoked_seq", sa.BigInteger, nullable=True),
    # a new sign-off by the same person in the same area supersedes the standing one
    sa.Column("supersedes", sa.String(32), nullable=True),
    sa.Column("superseded_by", sa.String(32), nullable=True),
    sa.ForeignKeyConstraint(["model_name", "version"],
                            ["gov_model_version.model_name", "gov_model_version.version"],
                            name="fk_gov_approval_version"),
    sa.Index("ix_gov_approval_version", "model_name", "version"),
)

audit_event = sa.Table(
    "gov_audit_event", metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
    sa.Column("ts", TS, nullable=False),
    sa.Column("kind", sa.String(128), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(512), nullable=False),
    sa.Column("model_name", NAME, nullable=True),
    sa.Column("version", VERSION, nullable=True),
    sa.Column("summary", sa.String(512), nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("leaf_hash", sa.String(64), nullable=False),
    sa.Index("ix_gov_audit_model_seq", "model_name", "seq"),
    sa.Index("ix_gov_audit_kind_seq", "kind", "seq"),
    sa.Index("ix_gov_audit_actor_seq", "actor", "seq"),
    sa.Index("ix_gov_audit_ts", "ts"),
)

policy_set = sa.Table(
    "gov_policy_set", metadata,
    # one row per load: a set can become active again after another one
    sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("loaded_at", TS, nullable=False),
    sa.Column("loaded_by", sa.String(256), nullable=False),
    sa.Column("files", JSON_TEXT, nullable=False),  # [[name, sha256], ...]
    sa.Column("rule_count", sa.Integer, nullable=False),
    sa.Index("ix_gov_policy_set_digest", "digest"),
)

decision = sa.Table(
    "gov_decision", metadata,
    sa.Column("decision_id", sa.String(32), primary_key=True),
    sa.Column("model_name", NAME, nullable=False),
    sa.Column("version", VERSION, nullable=False),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),
    sa.Column("policy_digest", sa.String(64), nullable=False),
    sa.Column("input_digest", sa.String(64), nullable=False),
    sa.Column("state_seq", sa.BigInteger, nullable=False),
    sa.Column("override_id", sa.String(32), nullable=True),
    sa.Column("decided_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("deployment_id", sa.String(32), nullable=True),
    sa.Index("ix_gov_decision_version", "model_name", "version", "environment"),
)

deployment = sa.Table(
    "gov_deployment", metadata,
    sa.Column("deployment_id", sa.String(32), primary_key=True),
    sa.Column("model_name", NAME, nullable=False),
    sa.Column("version", VERSION, nullable=False),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # deploy | rollback
    sa.Column("decision_id", sa.String(32), nullable=True),
    sa.Column("previous_version", VERSION, nullable=True),
    sa.Column("rolls_back", sa.String(32), nullable=True),
    sa.Column("rolled_back_by", sa.String(32), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Index("ix_gov_deployment_model_env", "model_name", "environment", "seq"),
)

override = sa.Table(
    "gov_override", metadata,
    sa.Column("override_id", sa.String(32), primary_key=True),
    sa.Column("model_name", NAME, nullable=False),
    sa.Column("version", VERSION, nullable=False),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("justification", sa.Text, nullable=False),
    sa.Column("requested_by", sa.String(256), nullable=False),
    sa.Column("requested_at", TS, nullable=False),
    sa.Column("requested_seq", sa.BigInteger, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("confirmed_by", sa.String(256), nullable=True),
    sa.Column("confirmed_at", TS, nullable=True),
    sa.Column("confirmed_seq", sa.BigInteger, nullable=True),
    sa.Index("ix_gov_override_version", "model_name", "version", "environment"),
)

# Parents before children: rebuild deletes in reverse and inserts in this order.
PROJECTION_TABLES_IN_ORDER = [token, model, dataset, dataset_version, model_version, version_dataset,
                              lineage_node, lineage_edge, lineage_event, evidence, approval, policy_set,
                              override, decision, deployment, audit_event]
