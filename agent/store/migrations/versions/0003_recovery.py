"""recovery: proposals and the append-only audit

The audit table gets triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL): the
application never changes or removes audit rows, and the database holds it to that.

Revision ID: 0003r
Revises: 0002
Create Date: 2026-11-29 21:25:42.532295
"""
from alembic import op
import sqlalchemy as sa



revision = '0003r'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recovery_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('action_id', sa.String(length=100), nullable=True),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('pattern_id', sa.String(length=32), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('argv', sa.JSON(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('recovery_audit', schema=None) as batch_op:
        batch_op.create_index('ix_recovery_audit_action_at', ['action_id', 'at'], unique=False)
        batch_op.create_index('ix_recovery_audit_pattern', ['pattern_id'], unique=False)
        batch_op.create_index('ix_recovery_audit_proposal', ['proposal_id'], unique=False)

    op.create_table('recovery_proposals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('action_id', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('argv', sa.JSON(), nullable=False),
    sa.Column('target', sa.String(length=600), nullable=False),
    sa.Column('dedupe_key', sa.String(length=700), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('pattern_id', sa.String(length=32), nullable=True),
    sa.Column('diagnosis_id', sa.Integer(), nullable=True),
    sa.Column('trigger', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('blocked_reason', sa.Text(), nullable=True),
    sa.Column('decided_by', sa.String(length=100), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_status', sa.String(length=16), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('rate_before', sa.Float(), nullable=True),
    sa.Column('rate_after', sa.Float(), nullable=True),
    sa.Column('outcome_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('recovery_proposals', schema=None) as batch_op:
        batch_op.create_index('ix_recovery_proposals_action_started', ['action_id', 'started_at'], unique=False)
        batch_op.create_index('ix_recovery_proposals_pattern', ['pattern_id'], unique=False)
        batch_op.create_index('ix_recovery_proposals_status', ['status'], unique=False)

    _append_only_triggers()


_SQLITE_TRIGGERS = {
    "recovery_audit_no_update": "BEFORE UPDATE ON recovery_audit",
    "recovery_audit_no_delete": "BEFORE DELETE ON recovery_audit",
}


def _append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name, when in _SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} "
                "BEGIN SELECT RAISE(ABORT, 'recovery_audit is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION recovery_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'recovery_audit is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER recovery_audit_no_change BEFORE UPDATE OR DELETE ON recovery_audit "
            "FOR EACH ROW EXECUTE FUNCTION recovery_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER recovery_audit_no_truncate BEFORE TRUNCATE ON recovery_audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION recovery_audit_append_only()"
        )


def _drop_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS recovery_audit_no_truncate ON recovery_audit")
        op.execute("DROP TRIGGER IF EXISTS recovery_audit_no_change ON recovery_audit")
        op.execute("DROP FUNCTION IF EXISTS recovery_audit_append_only()")


def downgrade() -> None:
    _drop_triggers()
    with op.batch_alter_table('recovery_proposals', schema=None) as batch_op:
        batch_op.drop_index('ix_recovery_proposals_status')
        batch_op.drop_index('ix_recovery_proposals_pattern')
        batch_op.drop_index('ix_recovery_proposals_action_started')

    op.drop_table('recovery_proposals')
    with op.batch_alter_table('recovery_audit', schema=None) as batch_op:
        batch_op.drop_index('ix_recovery_audit_proposal')
        batch_op.drop_index('ix_recovery_audit_pattern')
        batch_op.drop_index('ix_recovery_audit_action_at')

    op.drop_table('recovery_audit')
