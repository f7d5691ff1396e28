"""Events by pattern. PostgreSQL: the `events (pattern_id, received_at)` index. SQLite: a sorted index table
that the fold fills, plus the tail of events committed since.

Why SQLite differs: a B-tree index on `(pattern_id, received_at)` takes a commit's rows at one place per
pattern, one page each, so a batch over 3,000 patterns wrote ~20x the pages of a batch of one error and
ingest ran at half the rate (issue 13). `fold` instead appends what committed since the last fold, in key
order, so each page takes all of its rows at once. SQLite commits one writer at a time and numbers a new
row max(rowid) + 1, so "rowid above the mark" is exactly "committed since the last fold", on every process
sharing the file. PostgreSQL has no such commit-ordered position (sequence values are taken before
commit), and logs index tuples rather than pages, so it keeps its index.

Readers do not care which: `of_pattern`, `ids_of`, `newest` and `sources` cover the folded index and the
tail alike, each in one statement (one snapshot, even while a fold moves rows); `move` and `forget` keep the
index true when merges and retention change events.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from agent.store.tables import EventIndexMarkRow, EventPatternIndexRow, EventRow, table_of

log = logging.getLogger(__name__)
EVENTS = table_of(EventRow)
INDEX = table_of(EventPatternIndexRow)
MARK = table_of(EventIndexMarkRow)
_ROWID: ColumnElement[int] = literal_column("events.rowid")
# The tail's columns as no index serves them (SQLite's unary +), so the planner reads the tail by rowid range:
# not every event of a time window through `ix_events_received`, nor all events into an automatic index on
# `pattern_id` for a join.
TAIL_PATTERN: ColumnElement[str] = type_coerce(literal_column("+events.pattern_id"), EVENTS.c.pattern_id.type)
_TAIL_RECEIVED: ColumnElement[dt.datetime] = type_coerce(
    literal_column("+events.received_at"), EVENTS.c.received_at.type
)


def deferred(conn: Connection | Engine) -> bool:
    """Whether this database indexes events by pattern in the fold (SQLite) rather than per commit."""
    return conn.dialect.name == "sqlite"


def in_tail() -> ColumnElement[bool]:
    """SQLite: events committed since the last fold (not in `event_pattern_index` yet)."""
    mark = select(func.coalesce(func.max(MARK.c.last_rowid), 0)).scalar_subquery()
    return mark < _ROWID


@dataclass(frozen=True)
class Source:
    """Where a pattern's events are listed: the table, its columns naming pattern, receipt time and event, and
    a filter."""

    table: Table
    pattern_id: ColumnElement[Any]
    received_at: ColumnElement[Any]
    event_id: ColumnElement[Any]
    where: tuple[ColumnElement[bool], ...] = ()


def sources(conn: Connection | Engine) -> list[Source]:
    """Every place that lists events by pattern; together they hold each event once."""
    if not deferred(conn):
        return [Source(EVENTS, EVENTS.c.pattern_id, EVENTS.c.received_at, EVENTS.c.id)]
    return [
        Source(INDEX, INDEX.c.pattern_id, INDEX.c.received_at, INDEX.c.event_id),
        Source(EVENTS, TAIL_PATTERN, _TAIL_RECEIVED, EVENTS.c.id, (in_tail(),)),
    ]


def ids_of(
    conn: Connection, pattern: Any, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> Select[Any] | CompoundSelect[Any]:
    """The ids of a pattern's events (received in [since, until) when given), for `EVENTS.c.id.in_(...)`.

    `pattern` is an id or a SQL expression (a bind parameter)."""
    selects = []
    for s in sources(conn):
        q = select(s.event_id.label("event_id")).where(s.pattern_id == pattern, *s.where)
        if since is not None:
            q = q.where(s.received_at >= since)
        if until is not None:
            q = q.where(s.received_at < until)
        selects.append(q)
    return selects[0] if len(selects) == 1 else union_all(*selects)


def of_pattern(
    conn: Connection, pattern: Any, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> ColumnElement[bool]:
    """A WHERE clause on `events`: the event is the pattern's (and received in [since, until) when given).

    PostgreSQL: on the event's own columns (its index); SQLite: by id, from the index and the tail."""
    if deferred(conn):
        return EVENTS.c.id.in_(ids_of(conn, pattern, since=since, until=until))
    clauses = [EVENTS.c.pattern_id == pattern]
    if since is not None:
        clauses.append(EVENTS.c.received_at >= since)
    if until is not None:
        clauses.append(EVENTS.c.received_at < until)
    return and_(*clauses)


def newest(conn: Connection | Engine, pattern: Any, limit: int) -> Select[Any]:
    """A statement of the ids of a pattern's `limit` newest events: newest received first, ties by id.

    One statement (each source's newest, then the newest of those), so it reads one snapshot even while a
    fold moves tail rows into the index."""
    order = (EVENTS.c.received_at.desc(), EVENTS.c.id.desc())
    if not deferred(conn):
        return select(EVENTS.c.id).where(EVENTS.c.pattern_id == pattern).order_by(*order).limit(limit)
    arms = [
        select(s.event_id.label("event_id"))
        .where(s.pattern_id == pattern, *s.where)
        .order_by(s.received_at.desc(), s.event_id.desc())
        .limit(limit)
        .subquery()
        for s in sources(conn)
    ]
    candidates = union_all(*(select(a.c.event_id) for a in arms))
    return select(EVENTS.c.id).where(EVENTS.c.id.in_(candidates)).order_by(*order).limit(limit)


TailHook = Callable[[Connection, str, tuple[Any, ...]], None]
"""Called by `fold` with the tail as a WHERE clause on `events` (driver SQL) and its parameters, before the tail
joins the index (`agent.store.tallies` counts it into `patterns` there)."""


def fold(conn: Connection, count: TailHook) -> int:
    """SQLite: count the tail (`count`: `agent.store.tallies.count_tail`) and move it into the index, in key order,
    in the caller's write transaction; rows moved. Only `tallies.fold` should call it: a tail moved uncounted
    would be lost from the patterns' counts.

    The caller holds SQLite's write lock (`lock_for_write` or a first write), so no commit lands between the
    copy and the new mark. The mark names its event too: if the event at the mark's rowid is not that one,
    the rowids were renumbered behind errlearn's back (a dump restored into a new file, a VACUUM, which may
    renumber); the tail is then the events the index does not hold, and the index is rebuilt from `events`."""
    if not deferred(conn):
        return 0
    # The write lock before the mark is read, whatever the caller did: pysqlite runs a SELECT outside any
    # transaction, so a mark read first could be one another fold has moved past by the time the tail is
    # counted, and that tail would be counted twice. A write statement takes the lock (or fails on a stale
    # snapshot); in a transaction that holds it already, it changes nothing.
    conn.exec_driver_sql("UPDATE event_index_mark SET id = id WHERE id = 1")
    mark = conn.exec_driver_sql("SELECT last_rowid, last_event_id FROM event_index_mark WHERE id = 1").first()
    last_rowid = int(mark[0]) if mark is not None else 0
    at = conn.exec_driver_sql("SELECT id FROM events WHERE rowid = ?", (last_rowid,)).scalar() if last_rowid else None
    if mark is not None and last_rowid and at != mark[1]:
        log.warning("events were renumbered (restored or vacuumed): rebuilding the events-by-pattern index")
        count(conn, _NOT_INDEXED, ())
        conn.exec_driver_sql("DELETE FROM event_pattern_index")
        moved = _insert_index(conn, "1", ())
    else:
        count(conn, "rowid > ?", (last_rowid,))
        moved = _insert_index(conn, "rowid > ?", (last_rowid,))
    if moved or mark is None:
        _set_mark(conn, "SELECT rowid, id FROM events ORDER BY rowid DESC LIMIT 1")
    return moved


_NOT_INDEXED = (
    "NOT EXISTS (SELECT 1 FROM event_pattern_index AS i WHERE i.pattern_id = events.pattern_id "
    "AND i.received_at = events.received_at AND i.event_id = events.id)"
)


def _insert_index(conn: Connection, where: str, params: tuple[Any, ...]) -> int:
    moved = conn.exec_driver_sql(
        "INSERT OR IGNORE INTO event_pattern_index (pattern_id, received_at, event_id) "
        f"SELECT pattern_id, received_at, id FROM events WHERE {where} ORDER BY pattern_id, received_at, id",
        params,
    ).rowcount
    return max(int(moved), 0)


def _set_mark(conn: Connection, newest: str, *params: Any) -> None:
    """The mark at the event that `newest` (a query of rowid, id) finds, or at 0 when it finds none."""
    row = conn.exec_driver_sql(newest, params).first()
    conn.exec_driver_sql(
        "INSERT INTO event_index_mark (id, last_rowid, last_event_id) VALUES (1, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET last_rowid = excluded.last_rowid, last_event_id = excluded.last_event_id",
        (row[0], row[1]) if row is not None else (0, None),
    )


def move(conn: Connection, source: str, target: str, event_ids: Sequence[str] | None = None) -> int:
    """Events of `source` (all, or those of `event_ids`) become `target`'s; returns how many moved."""
    if event_ids is None:
        moved = conn.execute(update(EVENTS).where(of_pattern(conn, source)).values(pattern_id=target)).rowcount
        if deferred(conn):
            conn.execute(update(INDEX).where(INDEX.c.pattern_id == source).values(pattern_id=target))
        return int(moved)
    moved = 0
    for i in range(0, len(event_ids), 500):
        chunk = list(event_ids[i : i + 500])
        # `events.pattern_id` is the truth; the index follows it
        stmt = update(EVENTS).where(EVENTS.c.id.in_(chunk), EVENTS.c.pattern_id == source)
        moved += conn.execute(stmt.values(pattern_id=target)).rowcount
        if deferred(conn):
            index = update(INDEX).where(INDEX.c.pattern_id == source, INDEX.c.event_id.in_(chunk))
            conn.execute(index.values(pattern_id=target))
    return moved


def forget(conn: Connection, deleted: Sequence[tuple[str, str, dt.datetime]]) -> None:
    """After deleting events (`(event_id, pattern_id, received_at)` as they were): drop their index rows,
    and keep the mark on an event that is left."""
    if not deferred(conn) or not deleted:
        return
    row = and_(
        INDEX.c.pattern_id == bindparam("p", type_=INDEX.c.pattern_id.type),
        INDEX.c.received_at == bindparam("r", type_=INDEX.c.received_at.type),
        INDEX.c.event_id == bindparam("e", type_=INDEX.c.event_id.type),
    )
    conn.execute(delete(INDEX).where(row), [{"p": p, "r": r, "e": e} for e, p, r in deleted])
    # The mark moves down to the newest event left at or below it: its own event may be gone, and when the
    # newest events are, SQLite hands their rowids out again, to events the index does not hold yet.
    mark = conn.exec_driver_sql("SELECT last_rowid FROM event_index_mark WHERE id = 1").scalar()
    if mark:
        _set_mark(conn, "SELECT rowid, id FROM events WHERE rowid <= ? ORDER BY rowid DESC LIMIT 1", mark)
