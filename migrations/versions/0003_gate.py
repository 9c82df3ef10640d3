"""Deployment gate: policy sets, decisions, deployments, break-glass overrides.

Revision ID: 0003_gate
Revises: 0002_governance
Create Date: 2026-11-25

All four tables are projections of ledger entries (policy.set.loaded,
deployment.decision.recorded, deployment.recorded, deployment.rolled_back,
deployment.override.requested / confirmed).
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_gate"
down_revision = "0002_governance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gov_decision',
    sa.Column('decision_id', sa.String(length=32), nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=8), nullable=False),
    sa.Column('policy_digest', sa.String(length=64), nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('state_seq', sa.BigInteger(), nullable=False),
    sa.Column('override_id', sa.String(length=32), nullable=True),
    sa.Column('decided_at', sa.String(length=27), nullable=False),
    sa.Column('expires_at', sa.String(length=27), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('deployment_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('decision_id')
    )
    op.create_index('ix_gov_decision_version', 'gov_decision', ['model_name', 'version', 'environment'], unique=False)
    op.create_table('gov_deployment',
    sa.Column('deployment_id', sa.String(length=32), nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('decision_id', sa.String(length=32), nullable=True),
    sa.Column('previous_version', sa.String(length=64), nullable=True),
    sa.Column('rolls_back', sa.String(length=32), nullable=True),
    sa.Column('rolled_back_by', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('at', sa.String(length=27), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('deployment_id')
    )
    op.create_index('ix_gov_deployment_model_env', 'gov_deployment', ['model_name', 'environment', 'seq'], unique=False)
    op.create_table('gov_override',
    sa.Column('override_id', sa.String(length=32), nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('justification', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=256), nullable=False),
    sa.Column('requested_at', sa.String(length=27), nullable=False),
    sa.Column('requested_seq', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.String(length=27), nullable=False),
    sa.Column('confirmed_by', sa.String(length=256), nullable=True),
    sa.Column('confirmed_at', sa.String(length=27), nullable=True),
    sa.Column('confirmed_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('override_id')
    )
    op.create_index('ix_gov_override_version', 'gov_override', ['model_name', 'version', 'environment'], unique=False)
    op.create_table('gov_policy_set',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('loaded_at', sa.String(length=27), nullable=False),
    sa.Column('loaded_by', sa.String(length=256), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('rule_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_index('ix_gov_policy_set_digest', 'gov_policy_set', ['digest'], unique=False)


def downgrade() -> None:
    for table in ("gov_deployment", "gov_decision", "gov_override", "gov_policy_set"):
        op.drop_table(table)
