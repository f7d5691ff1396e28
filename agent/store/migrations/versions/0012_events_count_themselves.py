"""SQLite: events committed since the last fold are counted by the fold (they are their own pattern tallies)

Revision ID: 0012
Revises: 0011

Before, a SQLite commit counted a new pattern's events in its INSERT and appended a `pattern_tallies` row per
recurring pattern, so events not yet moved into `event_pattern_index` (what a killed process left) were
counted already. From here the fold counts them (`agent.store.tallies.count_tail`); the upgrade moves them
into the index uncounted, so nothing is counted twice. No schema change; PostgreSQL is untouched.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_NOT_INDEXED = (
    "NOT EXISTS (SELECT 1 FROM event_pattern_index AS i WHERE i.pattern_id = events.pattern_id "
    "AND i.received_at = events.received_at AND i.event_id = events.id)"
)
_RANK = "(CASE {} WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 WHEN 'critical' THEN 3 ELSE -1 END)"
_NAME = "(CASE {} WHEN 0 THEN 'low' WHEN 1 THEN 'medium' WHEN 2 THEN 'high' WHEN 3 THEN 'critical' END)"


def _index_the_tail() -> None:
    op.execute(
        "INSERT OR IGNORE INTO event_pattern_index (pattern_id, received_at, event_id) "
        f"SELECT pattern_id, received_at, id FROM events WHERE {_NOT_INDEXED} ORDER BY pattern_id, received_at, id"
    )
    op.execute(
        "INSERT INTO event_index_mark (id, last_rowid, last_event_id) "
        "SELECT 1, coalesce(max(rowid), 0), (SELECT id FROM events ORDER BY rowid DESC LIMIT 1) FROM events "
        "WHERE true ON CONFLICT (id) DO UPDATE SET last_rowid = excluded.last_rowid, "
        "last_event_id = excluded.last_event_id"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _index_the_tail()  # counted by the release that wrote them


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The release before counts nothing at the fold: count the tail now, then index it.
    op.execute(
        "UPDATE patterns SET count = count + t.n, last_seen = max(patterns.last_seen, t.last_seen), "
        f"max_severity = CASE WHEN t.rank > {_RANK.format('patterns.max_severity')} THEN {_NAME.format('t.rank')} "
        "ELSE patterns.max_severity END, resolved = 0 "
        f"FROM (SELECT pattern_id, count(*) AS n, max(timestamp) AS last_seen, max({_RANK.format('severity')}) AS rank "
        f"FROM events WHERE {_NOT_INDEXED} GROUP BY pattern_id) AS t WHERE patterns.id = t.pattern_id"
    )
    _index_the_tail()
