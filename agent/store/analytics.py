"""Aggregations for /analytics: trends, top patterns, new vs recurring, per service."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import Connection, case, desc, func, select

from agent.store.tables import EventRow, PatternRow, table_of

EVENTS = table_of(EventRow)
PATTERNS = table_of(PatternRow)

Bucket = Literal["hour", "day"]


def _bucket_expr(conn: Connection, bucket: Bucket) -> Any:
    col = EVENTS.c.received_at
    if conn.dialect.name == "postgresql":
        return func.to_char(func.date_trunc(bucket, func.timezone("UTC", col)), 'YYYY-MM-DD"T"HH24:00:00"Z"')
    fmt = "%Y-%m-%dT%H:00:00Z" if bucket == "hour" else "%Y-%m-%dT00:00:00Z"
    return func.strftime(fmt, col)


def trends(
    conn: Connection, *, since: dt.datetime, bucket: Bucket = "hour", service: str | None = None
) -> list[dict[str, Any]]:
    """Event counts per time bucket, service and severity, oldest first."""
    b = _bucket_expr(conn, bucket).label("bucket")
    stmt = select(b, EVENTS.c.service, EVENTS.c.severity, func.count().label("n")).where(EVENTS.c.received_at >= since)
    if service:
        stmt = stmt.where(EVENTS.c.service == service)
    stmt = stmt.group_by(b, EVENTS.c.service, EVENTS.c.severity).order_by(b)
    return [
        {"bucket": r.bucket, "service": r.service, "severity": r.severity, "count": int(r.n)}
        for r in conn.execute(stmt)
    ]


def top_patterns(conn: Connection, *, since: dt.datetime, limit: int = 10) -> list[dict[str, Any]]:
    n = func.count().label("n")
    stmt = (
        select(EVENTS.c.pattern_id, n)
        .where(EVENTS.c.received_at >= since)
        .group_by(EVENTS.c.pattern_id)
        .order_by(desc(n), EVENTS.c.pattern_id)
        .limit(limit)
    )
    counts = [(r.pattern_id, int(r.n)) for r in conn.execute(stmt)]
    if not counts:
        return []
    info = {
        r.id: r
        for r in conn.execute(
            select(PATTERNS.c.id, PATTERNS.c.service, PATTERNS.c.error_type, PATTERNS.c.template).where(
                PATTERNS.c.id.in_([pid for pid, _ in counts])
            )
        )
    }
    return [
        {
            "pattern_id": pid,
            "count": c,
            "service": info[pid].service,
            "error_type": info[pid].error_type,
            "template": info[pid].template,
        }
        for pid, c in counts
        if pid in info
    ]


def new_vs_recurring(conn: Connection, *, since: dt.datetime) -> dict[str, int]:
    """Patterns active in the window: first seen inside it (new) or before it (recurring)."""
    active = select(EVENTS.c.pattern_id).where(EVENTS.c.received_at >= since).distinct().subquery()
    new, total = conn.execute(
        select(
            func.coalesce(func.sum(case((PATTERNS.c.first_seen >= since, 1), else_=0)), 0), func.count()
        ).select_from(PATTERNS.join(active, PATTERNS.c.id == active.c.pattern_id))
    ).one()
    return {"new": int(new), "recurring": int(total) - int(new)}


def per_service(conn: Connection, *, since: dt.datetime) -> list[dict[str, Any]]:
    stmt = (
        select(
            EVENTS.c.service,
            func.count().label("events"),
            func.count(func.distinct(EVENTS.c.pattern_id)).label("patterns"),
            func.max(EVENTS.c.received_at).label("last"),
        )
        .where(EVENTS.c.received_at >= since)
        .group_by(EVENTS.c.service)
        .order_by(desc("events"))
    )
    return [
        {"service": r.service, "events": int(r.events), "patterns": int(r.patterns), "last_event_at": r.last}
        for r in conn.execute(stmt)
    ]
