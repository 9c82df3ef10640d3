"""Superseded sign-offs, and OpenLineage events by identity.

Revision ID: 0004_signoffs_lineage_events
Revises: 0003_gate
Create Date: 2026-12-05

``gov_approval`` gains ``supersedes`` and ``superseded_by`` (a new sign-off by
the same person in the same area supersedes the standing one);
``gov_lineage_event`` holds one row per OpenLineage event identity (run,
event type, event time), so that a repeated event is answered with the entry
already recorded. Both are projections. Entries recorded before have no
superseded sign-offs; their lineage events are indexed here by the upgrade, as
the projection (``governance/lineage/events.py``) does, first entry first.
"""
import hashlib
import json

from alembic import op
import sqlalchemy as sa

from ledger.canonical import canonical_bytes

revision = "0004_signoffs_lineage_events"
down_revision = "0003_gate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('gov_approval') as batch:
        batch.add_column(sa.Column('supersedes', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('superseded_by', sa.String(length=32), nullable=True))
    op.create_table('gov_lineage_event',
    sa.Column('event_key', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=16), nullable=True),
    sa.Column('event_time', sa.Text(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('event_key')
    )
    _index_recorded_lineage_events()


def _index_recorded_lineage_events() -> None:
    conn = op.get_bind()
    events = sa.table('gov_lineage_event', *(sa.column(c) for c in (
        'event_key', 'run_id', 'event_type', 'event_time', 'content_sha256', 'seq')))
    rows, seen = [], set()
    for seq, canonical in conn.execute(sa.text(
            "SELECT e.seq, e.canonical FROM ledger_entry e JOIN gov_audit_event a ON a.seq = e.seq "
            "WHERE a.kind = 'lineage.run_event.recorded' ORDER BY e.seq")):
        event = json.loads(bytes(canonical))["payload"]["event"]
        run_id, event_type, event_time = event["run"]["runId"], event.get("eventType"), event["eventTime"]
        key = hashlib.sha256(canonical_bytes([run_id, event_type, event_time])).hexdigest()
        if key not in seen:
            seen.add(key)
            rows.append({"event_key": key, "run_id": run_id, "event_type": event_type,
                         "event_time": event_time, "seq": seq,
                         "content_sha256": hashlib.sha256(canonical_bytes(event)).hexdigest()})
    if rows:
        op.bulk_insert(events, rows)


def downgrade() -> None:
    op.drop_table('gov_lineage_event')
    with op.batch_alter_table('gov_approval') as batch:
        batch.drop_column('superseded_by')
        batch.drop_column('supersedes')
