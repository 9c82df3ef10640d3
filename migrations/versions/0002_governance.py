"""Governance projections (identity, registry, lineage, evidence, approvals, audit).

Revision ID: 0002_governance
Revises: 0001_ledger
Create Date: 2026-11-25

Every ``gov_*`` table but ``gov_token_secret`` and ``gov_document`` is a
projection of ledger entries and can be rebuilt from them
(``flask governance rebuild``).
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_governance"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gov_audit_event',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('ts', sa.String(length=27), nullable=False),
    sa.Column('kind', sa.String(length=128), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('subject', sa.String(length=512), nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=True),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('summary', sa.String(length=512), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('leaf_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_index('ix_gov_audit_actor_seq', 'gov_audit_event', ['actor', 'seq'], unique=False)
    op.create_index('ix_gov_audit_kind_seq', 'gov_audit_event', ['kind', 'seq'], unique=False)
    op.create_index('ix_gov_audit_model_seq', 'gov_audit_event', ['model_name', 'seq'], unique=False)
    op.create_index('ix_gov_audit_ts', 'gov_audit_event', ['ts'], unique=False)
    op.create_table('gov_dataset',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=False),
    sa.Column('source_system', sa.String(length=256), nullable=False),
    sa.Column('lineage_namespace', sa.String(length=256), nullable=False),
    sa.Column('lineage_name', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.String(length=27), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name'),
    sa.UniqueConstraint('lineage_namespace', 'lineage_name', name='uq_gov_dataset_lineage')
    )
    op.create_table('gov_document',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=128), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_at', sa.String(length=27), nullable=False),
    sa.Column('uploaded_by', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('gov_lineage_edge',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('relation', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'target', 'relation')
    )
    op.create_index('ix_gov_lineage_edge_target', 'gov_lineage_edge', ['target'], unique=False)
    op.create_table('gov_lineage_node',
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('node_type', sa.String(length=16), nullable=False),
    sa.Column('namespace', sa.String(length=256), nullable=True),
    sa.Column('name', sa.String(length=512), nullable=True),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('node_id')
    )
    op.create_index('ix_gov_lineage_node_name', 'gov_lineage_node', ['node_type', 'namespace', 'name'], unique=False)
    op.create_table('gov_model',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=False),
    sa.Column('intended_use', sa.Text(), nullable=False),
    sa.Column('risk_tier', sa.String(length=16), nullable=False),
    sa.Column('uses_personal_data', sa.Boolean(), nullable=False),
    sa.Column('protected_attributes', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_at', sa.String(length=27), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('gov_token',
    sa.Column('token_id', sa.String(length=32), nullable=False),
    sa.Column('principal', sa.String(length=128), nullable=False),
    sa.Column('roles', sa.Text(), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.String(length=27), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('created_seq', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.String(length=27), nullable=True),
    sa.Column('revoked_at', sa.String(length=27), nullable=True),
    sa.Column('revoked_by', sa.String(length=256), nullable=True),
    sa.Column('revoked_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('token_id')
    )
    op.create_index('ix_gov_token_principal', 'gov_token', ['principal'], unique=False)
    op.create_table('gov_token_secret',
    sa.Column('token_id', sa.String(length=32), nullable=False),
    sa.Column('secret_sha256', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('token_id')
    )
    op.create_table('gov_dataset_version',
    sa.Column('dataset_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.String(length=2048), nullable=False),
    sa.Column('source_system', sa.String(length=256), nullable=False),
    sa.Column('schema', sa.Text(), nullable=False),
    sa.Column('pii_columns', sa.Text(), nullable=False),
    sa.Column('legal_basis', sa.String(length=64), nullable=True),
    sa.Column('consent_reference', sa.String(length=512), nullable=True),
    sa.Column('retention_period', sa.String(length=32), nullable=True),
    sa.Column('row_count', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.String(length=27), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_name'], ['gov_dataset.name'], name='fk_gov_dataset_version_dataset'),
    sa.PrimaryKeyConstraint('dataset_name', 'version')
    )
    op.create_table('gov_model_version',
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('artifact_uri', sa.String(length=2048), nullable=False),
    sa.Column('framework', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('training_datasets', sa.Text(), nullable=False),
    sa.Column('metrics', sa.Text(), nullable=False),
    sa.Column('lineage_namespace', sa.String(length=256), nullable=True),
    sa.Column('lineage_name', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.String(length=27), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_name'], ['gov_model.name'], name='fk_gov_model_version_model'),
    sa.PrimaryKeyConstraint('model_name', 'version')
    )
    op.create_table('gov_approval',
    sa.Column('approval_id', sa.String(length=32), nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('area', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('decided_at', sa.String(length=27), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.String(length=27), nullable=True),
    sa.Column('revoked_by', sa.String(length=256), nullable=True),
    sa.Column('revoke_reason', sa.Text(), nullable=True),
    sa.Column('revoked_seq', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['model_name', 'version'], ['gov_model_version.model_name', 'gov_model_version.version'], name='fk_gov_approval_version'),
    sa.PrimaryKeyConstraint('approval_id')
    )
    op.create_index('ix_gov_approval_version', 'gov_approval', ['model_name', 'version'], unique=False)
    op.create_table('gov_evidence',
    sa.Column('evidence_id', sa.String(length=32), nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('fields', sa.Text(), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('document_sha256', sa.String(length=64), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('supersedes', sa.String(length=32), nullable=True),
    sa.Column('superseded_by', sa.String(length=32), nullable=True),
    sa.Column('submitted_at', sa.String(length=27), nullable=False),
    sa.Column('submitted_by', sa.String(length=256), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_name', 'version'], ['gov_model_version.model_name', 'gov_model_version.version'], name='fk_gov_evidence_version'),
    sa.PrimaryKeyConstraint('evidence_id')
    )
    op.create_index('ix_gov_evidence_version', 'gov_evidence', ['model_name', 'version'], unique=False)
    op.create_table('gov_version_dataset',
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('dataset_name', sa.String(length=128), nullable=False),
    sa.Column('dataset_version', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['dataset_name', 'dataset_version'], ['gov_dataset_version.dataset_name', 'gov_dataset_version.version'], name='fk_gov_version_dataset_dataset'),
    sa.ForeignKeyConstraint(['model_name', 'version'], ['gov_model_version.model_name', 'gov_model_version.version'], name='fk_gov_version_dataset_version'),
    sa.PrimaryKeyConstraint('model_name', 'version', 'dataset_name', 'dataset_version')
    )


def downgrade() -> None:
    for table in ("gov_audit_event", "gov_approval", "gov_evidence", "gov_document",
                  "gov_lineage_edge", "gov_lineage_node", "gov_version_dataset",
                  "gov_model_version", "gov_dataset_version", "gov_dataset", "gov_model",
                  "gov_token_secret", "gov_token"):
        op.drop_table(table)
