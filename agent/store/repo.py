"""Read-side queries over the relational store. Functions take a Connection and return domain objects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, desc, func, insert, or_, select, update

from agent.domain import ErrorEvent, EventKind, GroupMethod, Pattern, Severity
from agent.store import pattern_index
from agent.store.tables import CounterRow, EventRow, JobRow, LearningRunRow, MetaRow, PatternRow, table_of
from agent.store.tallies import Pending, clear_counter_tallies, pending_counters, pending_patterns, seen_since

EVENTS = table_of(EventRow)
PATTERNS = table_of(PatternRow)
COUNTERS = table_of(CounterRow)
META = table_of(MetaRow)
JOBS = table_of(JobRow)
RUNS = table_of(LearningRunRow)


def _event(row: Any) -> ErrorEvent:
    return ErrorEvent(
        id=row.id,
        pattern_id=row.pattern_id,
        service=row.service,
        context=row.context,
        error_type=row.error_type,
        error_message=row.error_message,
        severity=Severity(row.severity),
        kind=EventKind(row.kind),
        stack_trace=row.stack_trace,
        stack_truncated=row.stack_truncated,
        additional_data=row.additional_data or {},
        timestamp=row.timestamp,
        received_at=row.received_at,
    )


def _pattern(row: Any) -> Pattern:
    return Pattern(
        id=row.id,
        fingerprint=row.fingerprint,
        service=row.service,
        error_type=row.error_type,
        template=row.template,
        method=GroupMethod(row.method),
        reason=row.reason,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        count=row.count,
        max_severity=Severity(row.max_severity),
        sample_event_id=row.sample_event_id,
        resolved=row.resolved,
    )


def get_event(conn: Connection, event_id: str) -> ErrorEvent | None:
    row = conn.execute(select(EVENTS).where(EVENTS.c.id == event_id)).first()
    return _event(row) if row else None


def get_events(conn: Connection, event_ids: Sequence[str]) -> list[ErrorEvent]:
    if not event_ids:
        return []
    rows = conn.execute(select(EVENTS).where(EVENTS.c.id.in_(list(event_ids)))).all()
    return [_event(r) for r in rows]


def _with_pending(p: Pattern, pending: Pending | None) -> Pattern:
    """A pattern plus what tallies not folded yet add to it (`agent.store.tallies`)."""
    if pending is None:
        return p
    severity = Severity(pending.max_severity)
    return p.model_copy(
        update={
            "count": p.count + pending.n,
            "last_seen": max(p.last_seen, pending.last_seen),
            "max_severity": severity if severity.rank > p.max_severity.rank else p.max_severity,
            "resolved": False,  # a recurring pattern reopens, as the fold will record
        }
    )


def _patterns(conn: Connection, rows: Sequence[Any]) -> list[Pattern]:
    pending = pending_patterns(conn, [r.id for r in rows])
    return [_with_pending(_pattern(r), pending.get(r.id)) for r in rows]


def get_pattern(conn: Connection, pattern_id: str) -> Pattern | None:
    row = conn.execute(select(PATTERNS).where(PATTERNS.c.id == pattern_id)).first()
    return _patterns(conn, [row])[0] if row else None


def get_patterns(conn: Connection, pattern_ids: Sequence[str]) -> list[Pattern]:
    if not pattern_ids:
        return []
    rows = conn.execute(select(PATTERNS).where(PATTERNS.c.id.in_(list(pattern_ids)))).all()
    return _patterns(conn, rows)


def recent_events(conn: Connection, pattern_id: str, limit: int = 10) -> list[ErrorEvent]:
    rows = conn.execute(
        select(EVENTS)
        .where(EVENTS.c.id.in_(pattern_index.newest(conn, pattern_id, limit)))
        .order_by(desc(EVENTS.c.received_at), desc(EVENTS.c.id))
    ).all()
    return [_event(r) for r in rows]


def list_patterns(
    conn: Connection,
    *,
    service: str | None = None,
    severity: Severity | None = None,
    q: str | None = None,
    since: dt.datetime | None = None,
    sort: str = "last_seen",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Pattern], int]:
    stmt = select(PATTERNS).where(PATTERNS.c.merged_into.is_(None))  # a merged pattern lives on in its target
    if service:
        stmt = stmt.where(PATTERNS.c.service == service)
    if severity:
        stmt = stmt.where(PATTERNS.c.max_severity == severity.value)
    if since:
        stmt = stmt.where(seen_since(conn, since))
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(PATTERNS.c.template).like(like),
                func.lower(PATTERNS.c.error_type).like(like),
                func.lower(PATTERNS.c.service).like(like),
            )
        )
    total = conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    order = desc(PATTERNS.c.count) if sort == "count" else desc(PATTERNS.c.last_seen)
    rows = conn.execute(stmt.order_by(order, PATTERNS.c.id).limit(limit).offset(offset)).all()
    return _patterns(conn, rows), int(total)


def count_events(conn: Connection, since: dt.datetime | None = None) -> int:
    stmt = select(func.count()).select_from(EVENTS)
    if since:
        stmt = stmt.where(EVENTS.c.received_at >= since)
    return int(conn.execute(stmt).scalar_one())


def count_patterns(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(PATTERNS)).scalar_one())


def count_unindexed_patterns(conn: Connection) -> int:
    """Patterns that are new or changed since the vector index last saw them."""
    stale = PATTERNS.c.indexed_version < PATTERNS.c.content_version
    return int(conn.execute(select(func.count()).select_from(PATTERNS).where(stale)).scalar_one())


# -- counters and meta ----------------------------------------------------------------------------
def counters(conn: Connection) -> dict[str, int]:
    """The stats counters, with what tallies not folded yet add."""
    out = {name: int(value) for name, value in conn.execute(select(COUNTERS.c.name, COUNTERS.c.value))}
    for name, value in pending_counters(conn).items():
        out[name] = out.get(name, 0) + value
    return out


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(META.c.value).where(META.c.key == key)).scalar()


def set_meta(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(META).where(META.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(META).values(key=key, value=value))


def reset_counters(conn: Connection, now: dt.datetime) -> None:
    """Zero the stats counters; events are never touched."""
    conn.execute(delete(COUNTERS))
    clear_counter_tallies(conn)
    set_meta(conn, "stats_reset_at", now.isoformat())


# -- learning runs -------------------------------------------------------------------------------
def record_learning_request(conn: Connection, trigger: str, now: dt.datetime) -> int:
    result = conn.execute(insert(RUNS).values(trigger=trigger, status="queued", requested_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def learning_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(select(RUNS).order_by(desc(RUNS.c.id)).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def job_counts(conn: Connection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind, status, n in conn.execute(
        select(JOBS.c.kind, JOBS.c.status, func.count()).group_by(JOBS.c.kind, JOBS.c.status)
    ):
        out.setdefault(kind, {})[status] = int(n)
    return out
