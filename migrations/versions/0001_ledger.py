"""Ledger tables (entries, checkpoints, public keys) and append-only triggers.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-25

The triggers are the database's own guarantee that ledger rows are never
changed: UPDATE, DELETE (and TRUNCATE on PostgreSQL) are rejected on entries
and checkpoints, whoever issues them. The key table allows one change only:
setting ``retired`` on a key that is not yet retired.
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

# INTEGER PRIMARY KEY is SQLite's rowid: one B-tree instead of two.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.String(27)

PG_REJECT = """
CREATE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$
"""
PG_KEY_GUARD = """
CREATE FUNCTION ledger_key_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR OLD.retired IS NOT NULL OR NEW.retired IS NULL
       OR NEW.key_id <> OLD.key_id OR NEW.public_key <> OLD.public_key
       OR NEW.algorithm <> OLD.algorithm OR NEW.name <> OLD.name OR NEW.created <> OLD.created THEN
        RAISE EXCEPTION 'ledger_key rows can only be retired once: % rejected', TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "ledger_entry",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        # The entry is its canonical bytes and nothing else: no column repeats a
        # field of them (ts, kind, actor, subject are read from the bytes), so
        # there is no second copy to edit behind the hash's back.
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=True),
        sa.CheckConstraint("seq >= 0", name="ck_ledger_entry_seq_nonnegative"),
    )
    op.create_table(
        "ledger_key",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("retired", TS, nullable=True),
    )
    op.create_table(
        "ledger_checkpoint",
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("key_id", sa.String(64), sa.ForeignKey("ledger_key.key_id",
                  name="fk_ledger_checkpoint_key"), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("tree_size >= 0", name="ck_ledger_checkpoint_size_nonnegative"),
    )
    op.create_index("ix_ledger_checkpoint_tree_size", "ledger_checkpoint", ["tree_size"])

    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_REJECT)
        op.execute(PG_KEY_GUARD)
        for table in ("ledger_entry", "ledger_checkpoint"):
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()")
        op.execute("CREATE TRIGGER ledger_key_guard BEFORE UPDATE OR DELETE ON ledger_key "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_key_guard()")
        op.execute("CREATE TRIGGER ledger_key_no_truncate BEFORE TRUNCATE ON ledger_key "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()")
    else:
        for table in ("ledger_entry", "ledger_checkpoint"):
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only: {action} rejected'); END"
                )
        op.execute(
            "CREATE TRIGGER ledger_key_guard BEFORE UPDATE ON ledger_key "
            "WHEN OLD.retired IS NOT NULL OR NEW.retired IS NULL OR NEW.key_id IS NOT OLD.key_id "
            "OR NEW.public_key IS NOT OLD.public_key OR NEW.algorithm IS NOT OLD.algorithm "
            "OR NEW.name IS NOT OLD.name OR NEW.created IS NOT OLD.created "
            "BEGIN SELECT RAISE(ABORT, 'ledger_key rows can only be retired once: UPDATE rejected'); END"
        )
        op.execute(
            "CREATE TRIGGER ledger_key_no_delete BEFORE DELETE ON ledger_key "
            "BEGIN SELECT RAISE(ABORT, 'table ledger_key is append-only: DELETE rejected'); END"
        )


def downgrade() -> None:
    # Dropping the tables drops their triggers; the ledger's history goes with
    # them, which is why nothing but a test database should ever be downgraded.
    op.drop_table("ledger_checkpoint")
    op.drop_table("ledger_key")
    op.drop_table("ledger_entry")
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_key_guard()")
        op.execute("DROP FUNCTION IF EXISTS ledger_reject_change()")
