"""The `ERROR-XXX` number allocator and the guide's lock row (table `guide_counters`).

Not the shared `counters` table: `POST /reset-stats` empties that one, and an id must never be reused.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from agent.guide.models import entry_number
from agent.guide.tables import GuideCounterRow
from agent.store.tables import KnowledgeRow, table_of

COUNTERS = table_of(GuideCounterRow)
KNOWLEDGE = table_of(KnowledgeRow)
ENTRY_COUNTER = "entry"
LEARNING_LOCK = "learning_lock"


def ensure_counter(conn: Connection, name: str) -> None:
    """Create the counter row if it is missing (idempotent, safe under concurrency)."""
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(COUNTERS).values(name=name, value=0).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite_insert(COUNTERS).values(name=name, value=0).on_conflict_do_nothing())
    elif conn.execute(select(COUNTERS.c.name).where(COUNTERS.c.name == name)).first() is None:
        conn.execute(insert(COUNTERS).values(name=name, value=0))


def allocate_number(conn: Connection) -> int:
    """The next entry number, in the caller's transaction: if it rolls back, so does the allocation.

    The counter only grows, so a number is never handed out twice, even after entries are rejected or deleted.
    The UPDATE locks the row until commit, which serialises concurrent allocations. Numbers already used by
    `ERROR-XXX` texts in the knowledge base (a guide imported with `errlearn knowledge import`) are skipped,
    so a new entry never takes over the id of one written elsewhere.
    """
    bump_allocator(conn, _knowledge_max_number(conn))
    value = conn.execute(
        update(COUNTERS)
        .where(COUNTERS.c.name == ENTRY_COUNTER)
        .values(value=COUNTERS.c.value + 1)
        .returning(COUNTERS.c.value)
    ).scalar_one()
    return int(value)


def bump_allocator(conn: Connection, number: int) -> None:
    """Make sure later allocations come after `number` (used when importing entries with their own ids)."""
    ensure_counter(conn, ENTRY_COUNTER)
    conn.execute(
        update(COUNTERS).where(COUNTERS.c.name == ENTRY_COUNTER, COUNTERS.c.value < number).values(value=number)
    )


def _knowledge_max_number(conn: Connection) -> int:
    ids = conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.id.like("ERROR-%")))
    return max((n for (ident,) in ids if (n := entry_number(ident)) is not None), default=0)


def last_number(conn: Connection) -> int:
    value = conn.execute(select(COUNTERS.c.value).where(COUNTERS.c.name == ENTRY_COUNTER)).scalar()
    return int(value or 0)
