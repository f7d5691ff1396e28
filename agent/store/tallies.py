"""Counts that group commits append and a fold adds up: pattern totals and the stats counters.

A commit used to UPDATE every recurring pattern it touched (count, last_seen, max_severity, resolved) and
the stats counters. A batch spread over many patterns then wrote one table page and one `last_seen` index
page per pattern, and two replicas on one PostgreSQL queued on the row locks of a hot pattern and of the
global counters. Now a commit appends one `pattern_tallies` row per recurring pattern and one
`counter_tallies` row per counter (a page or two, no lock anyone else wants), in the same transaction as its
events, so a crash loses no count. `fold` moves the tallies into `patterns` and `counters` in one
transaction (the writer calls it about once a second, and when it goes idle or stops; any process may).

SQLite appends no pattern tallies: its events are their own. The fold counts the events committed since the
last fold (the tail `agent.store.pattern_index` reads for its index) into their patterns in one statement,
and reads add the tail's events per pattern. A commit over many patterns then writes no row per pattern and
the fold sums them inside SQLite, with no Python per pattern.

Replicas: `fold` deletes the tallies it reads (DELETE … RETURNING), so two folds at once never add a row
twice (the second waits on the first's row locks, then finds those rows gone), and tallies committed after
its statement wait for the next fold. Reads stay exact meanwhile: `pending_patterns` and `pending_counters`
give what is not folded yet, which `agent.store.repo` adds to what it returns.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from agent.store import pattern_index
from agent.store.batch_sql import SEVERITY_RANK, BatchSQL, rank_sql, severity_name_sql
from agent.store.tables import CounterRow, CounterTallyRow, EventRow, PatternRow, PatternTallyRow, table_of

PATTERN_TALLIES = table_of(PatternTallyRow)
COUNTER_TALLIES = table_of(CounterTallyRow)
COUNTERS = table_of(CounterRow)
PATTERNS = table_of(PatternRow)
EVENTS = table_of(EventRow)
_NAMES = {rank: name for name, rank in SEVERITY_RANK.items()}


@dataclass(frozen=True)
class Pending:
    """What tallies not folded yet add to one pattern."""

    n: int
    last_seen: dt.datetime
    max_severity: str


def _combine(rows: Iterable[tuple[str, int, Any, str]]) -> dict[str, tuple[int, Any, str]]:
    """Per pattern: (events summed, the latest `last_seen`, the highest severity). `last_seen` is a datetime,
    or in the fold SQLite's stored text, which sorts as its time does."""
    acc: dict[str, list[Any]] = {}
    for pid, n, seen, sev in rows:
        rank = SEVERITY_RANK.get(sev, -1)
        a = acc.get(pid)
        if a is None:
            acc[pid] = [int(n), seen, rank]
            continue
        a[0] += int(n)
        if seen > a[1]:
            a[1] = seen
        if rank > a[2]:
            a[2] = rank
    return {pid: (n, seen, _NAMES.get(rank, "low")) for pid, (n, seen, rank) in acc.items()}


def fold(conn: Connection, sql: BatchSQL | None = None) -> int:
    """Add every visible tally into `patterns` and `counters` and delete it, in the caller's transaction.

    Returns the tally rows folded. Pattern rows are updated in id order and counters in name order: one lock
    order for every writer and fold, so replicas do not deadlock on them."""
    sql = sql or BatchSQL(conn.dialect.name)
    # SQLite: the events committed since are counted into their patterns, then join the by-pattern index
    pattern_index.fold(conn, count_tail)
    # Driver SQL: `last_seen` goes back as the column stored it (SQLite's text sorts as its time does), so a
    # fold of many thousands of tallies pays no type processing per row.
    taken = conn.exec_driver_sql("DELETE FROM pattern_tallies RETURNING pattern_id, n, last_seen, max_severity").all()
    pending = _combine((r[0], r[1], r[2], r[3]) for r in taken)
    sql.add_to_patterns(conn, [(pid, *added) for pid, added in sorted(pending.items())], stored=True)
    counted = conn.exec_driver_sql("DELETE FROM counter_tallies RETURNING name, value").all()
    sums: dict[str, int] = {}
    for name, value in counted:
        sums[name] = sums.get(name, 0) + int(value)
    if sums:  # one executemany upsert, in name order
        rows = [{"name": k, "value": v} for k, v in sorted(sums.items())]
        conn.execute(_counter_upsert(conn.dialect.name), rows)
    return len(taken) + len(counted)


def count_tail(conn: Connection, where: str, params: tuple[Any, ...]) -> None:
    """SQLite: add the tail's events (`where`, from `pattern_index.fold`) to their patterns, in one statement.

    On SQLite the events are their own tallies: a commit appends no row per pattern (a page per pattern
    per commit was most of what a batch over many patterns cost more than a batch of one), and the fold,
    which reads the tail for the index anyway, sums it per pattern inside SQLite."""
    conn.exec_driver_sql(
        "UPDATE patterns SET count = count + t.n, last_seen = max(patterns.last_seen, t.last_seen), "
        f"max_severity = CASE WHEN t.rank > {rank_sql('patterns.max_severity')} THEN {severity_name_sql('t.rank')} "
        "ELSE patterns.max_severity END, resolved = 0 "
        f"FROM (SELECT pattern_id, count(*) AS n, max(timestamp) AS last_seen, max({rank_sql('severity')}) AS rank "
        f"FROM events WHERE {where} GROUP BY pattern_id) AS t WHERE patterns.id = t.pattern_id",
        params,
    )


@functools.cache
def _counter_upsert(dialect: str) -> Any:
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(COUNTERS)
    return ins.on_conflict_do_update(index_elements=["name"], set_={"value": COUNTERS.c.value + ins.excluded.value})


def pending_patterns(conn: Connection, pattern_ids: Sequence[str] | None = None) -> dict[str, Pending]:
    """What is not folded yet adds, per pattern (all patterns, or those in `pattern_ids`): the tallies, and on
    SQLite the tail of events."""
    if pattern_ids is not None and not pattern_ids:
        return {}
    t = PATTERN_TALLIES.c
    # (pattern column, severity column, the select): grouped by both, as each severity rank is combined in Python
    sources: list[tuple[ColumnElement[str], ColumnElement[str], Select[Any]]] = [
        (t.pattern_id, t.max_severity, select(t.pattern_id, func.sum(t.n), func.max(t.last_seen), t.max_severity)),
    ]
    if pattern_index.deferred(conn):
        tail, e = pattern_index.TAIL_PATTERN, EVENTS.c
        tail_stmt = select(tail, func.count(), func.max(e.timestamp), e.severity).where(pattern_index.in_tail())
        sources.append((tail, e.severity, tail_stmt))
    rows: list[tuple[str, int, Any, str]] = []
    for pattern, severity, stmt in sources:
        if pattern_ids is not None:
            stmt = stmt.where(pattern.in_(list(pattern_ids)))
        rows.extend((r[0], r[1], r[2], r[3]) for r in conn.execute(stmt.group_by(pattern, severity)))
    return {pid: Pending(*added) for pid, added in _combine(rows).items()}


def seen_since(conn: Connection | Engine, since: dt.datetime, *, strict: bool = False) -> ColumnElement[bool]:
    """A WHERE clause on `patterns`: seen at or after `since` (after, with `strict`), counting what is not folded
    yet (one uncorrelated scan of the small tally table, and on SQLite of the tail, not a lookup per pattern)."""
    after = operator.gt if strict else operator.ge
    t = PATTERN_TALLIES.c
    clauses = [
        after(PATTERNS.c.last_seen, since),
        PATTERNS.c.id.in_(select(t.pattern_id).where(after(t.last_seen, since))),
    ]
    if pattern_index.deferred(conn):
        tail = pattern_index.TAIL_PATTERN
        clauses.append(PATTERNS.c.id.in_(select(tail).where(pattern_index.in_tail(), after(EVENTS.c.timestamp, since))))
    return or_(*clauses)


def pending_counters(conn: Connection) -> dict[str, int]:
    c = COUNTER_TALLIES.c
    return {name: int(v) for name, v in conn.execute(select(c.name, func.sum(c.value)).group_by(c.name))}


def clear_counter_tallies(conn: Connection) -> None:
    """With a stats reset: counts appended before it are reset too."""
    conn.execute(delete(COUNTER_TALLIES))
