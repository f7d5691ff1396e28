"""pattern_tallies and counter_tallies: group commits append counts, a fold adds them up (issues 13, 16)

Revision ID: 0010
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pattern_tallies",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("pattern_id", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_severity", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "counter_tallies",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    # What no fold added yet goes into the totals first (counts; last_seen and severity are left as they are).
    op.execute(
        "UPDATE patterns SET count = count + COALESCE("
        "(SELECT SUM(t.n) FROM pattern_tallies t WHERE t.pattern_id = patterns.id), 0)"
    )
    op.execute(
        "INSERT INTO counters (name, value) SELECT t.name, 0 FROM counter_tallies t "
        "WHERE t.name NOT IN (SELECT name FROM counters) GROUP BY t.name"
    )
    op.execute(
        "UPDATE counters SET value = value + COALESCE("
        "(SELECT SUM(t.value) FROM counter_tallies t WHERE t.name = counters.name), 0)"
    )
    op.drop_table("counter_tallies")
    op.drop_table("pattern_tallies")
