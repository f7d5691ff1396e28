"""grouping v2: stored merge decisions (pattern_aliases), patterns.merged_into; the Drain3 state row goes

Revision ID: 0005
Revises: 0004

Existing patterns keep their ids, counts, events, diagnoses and guide links. Their fingerprints were
made by the old scheme (`drain:<cluster id>`), so later events of those errors get new content-addressed
patterns; the merge pass can fold the new ones into the old (same service, type and template shape).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pattern_aliases",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint"),
    )
    with op.batch_alter_table("pattern_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pattern_aliases_source_id"), ["source_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pattern_aliases_target_id"), ["target_id"], unique=False)
    with op.batch_alter_table("patterns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_patterns_merged_into"), ["merged_into"], unique=False)
    op.drop_table("miner_state")


def downgrade() -> None:
    op.create_table(
        "miner_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("patterns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patterns_merged_into"))
        batch_op.drop_column("merged_into")
    with op.batch_alter_table("pattern_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pattern_aliases_target_id"))
        batch_op.drop_index(batch_op.f("ix_pattern_aliases_source_id"))
    op.drop_table("pattern_aliases")
