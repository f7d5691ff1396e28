"""guide entries, links, revisions, rejections, id allocator

Revision ID: 0003g
Revises: 0002
Create Date: 2026-11-29 21:20:12.292077
"""
from alembic import op
import sqlalchemy as sa



revision = '0003g'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('guide_counters',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('guide_entries',
    sa.Column('id', sa.String(length=20), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('error_type', sa.String(length=256), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('symptoms', sa.JSON(), nullable=False),
    sa.Column('root_cause', sa.Text(), nullable=False),
    sa.Column('solution_steps', sa.JSON(), nullable=False),
    sa.Column('prevention_tips', sa.JSON(), nullable=False),
    sa.Column('commands', sa.JSON(), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('prompt_name', sa.String(length=100), nullable=True),
    sa.Column('prompt_version', sa.Integer(), nullable=True),
    sa.Column('prompt_sha256', sa.String(length=64), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('evidence_hash', sa.String(length=64), nullable=False),
    sa.Column('proposal', sa.JSON(), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('superseded_by', sa.String(length=20), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('guide_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guide_entries_status'), ['status'], unique=False)

    op.create_table('guide_rejections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('pattern_id', sa.String(length=32), nullable=False),
    sa.Column('evidence_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('entry_id', sa.String(length=20), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('guide_rejections', schema=None) as batch_op:
        batch_op.create_index('ix_guide_rejections_pattern_hash', ['pattern_id', 'evidence_hash'], unique=False)

    op.create_table('guide_entry_patterns',
    sa.Column('entry_id', sa.String(length=20), nullable=False),
    sa.Column('pattern_id', sa.String(length=32), nullable=False),
    sa.Column('how', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('evidence_hash', sa.String(length=64), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['guide_entries.id'], ),
    sa.ForeignKeyConstraint(['pattern_id'], ['patterns.id'], ),
    sa.PrimaryKeyConstraint('entry_id', 'pattern_id')
    )
    with op.batch_alter_table('guide_entry_patterns', schema=None) as batch_op:
        batch_op.create_index('ix_guide_entry_patterns_pattern', ['pattern_id'], unique=False)

    op.create_table('guide_revisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.String(length=20), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('author', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('evidence_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['guide_entries.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('entry_id', 'revision', name='uq_guide_revisions_entry_revision')
    )
    _no_update_trigger()


def _no_update_trigger() -> None:
    """Revision rows are never changed (removing an entry may still remove its history)."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER guide_revisions_no_update BEFORE UPDATE ON guide_revisions "
            "BEGIN SELECT RAISE(ABORT, 'guide_revisions is append-only'); END"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION guide_revisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'guide_revisions is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER guide_revisions_no_update BEFORE UPDATE ON guide_revisions "
            "FOR EACH ROW EXECUTE FUNCTION guide_revisions_append_only()"
        )


def _drop_trigger() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS guide_revisions_no_update")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS guide_revisions_no_update ON guide_revisions")
        op.execute("DROP FUNCTION IF EXISTS guide_revisions_append_only()")


def downgrade() -> None:
    _drop_trigger()
    op.drop_table('guide_revisions')
    with op.batch_alter_table('guide_entry_patterns', schema=None) as batch_op:
        batch_op.drop_index('ix_guide_entry_patterns_pattern')

    op.drop_table('guide_entry_patterns')
    with op.batch_alter_table('guide_rejections', schema=None) as batch_op:
        batch_op.drop_index('ix_guide_rejections_pattern_hash')

    op.drop_table('guide_rejections')
    with op.batch_alter_table('guide_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guide_entries_status'))

    op.drop_table('guide_entries')
    op.drop_table('guide_counters')
