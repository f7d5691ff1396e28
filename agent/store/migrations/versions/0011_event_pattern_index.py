"""SQLite: events by pattern in a table the fold fills in key order, not a per-commit index (issue 13)

Revision ID: 0011
Revises: 0010

PostgreSQL keeps `ix_events_pattern_received`; see agent/store/pattern_index.py for why they differ.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "event_pattern_index",
        sa.Column("pattern_id", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("pattern_id", "received_at", "event_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "event_index_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_rowid", sa.BigInteger(), nullable=False),
        sa.Column("last_event_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO event_pattern_index (pattern_id, received_at, event_id) "
        "SELECT pattern_id, received_at, id FROM events ORDER BY pattern_id, received_at, id"
    )
    op.execute(
        "INSERT INTO event_index_mark (id, last_rowid, last_event_id) "
        "SELECT 1, coalesce(max(rowid), 0), (SELECT id FROM events ORDER BY rowid DESC LIMIT 1) FROM events"
    )
    op.drop_index("ix_events_pattern_received", table_name="events")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index("ix_events_pattern_received", "events", ["pattern_id", "received_at"])
    op.drop_table("event_index_mark")
    op.drop_table("event_pattern_index")
