"""Did an approved entry prevent its errors? Occurrences of its patterns before and after approval."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select, union_all

from agent.guide.models import GuideStatus
from agent.guide.tables import GuideEntryRow, GuideLinkRow
from agent.store import pattern_index
from agent.store.tables import table_of

ENTRIES = table_of(GuideEntryRow)
LINKS = table_of(GuideLinkRow)
MIN_SPAN_DAYS = 1.0
"""Rates are per day over at least one day, so a burst in the first minutes after approval is not a huge rate."""


def _days(start: dt.datetime, end: dt.datetime) -> float:
    return max((end - start).total_seconds() / 86400.0, 0.0)


def _rate(count: int, days: float) -> float:
    return round(count / max(days, MIN_SPAN_DAYS), 4)


def prevention_metrics(engine: Engine, now: dt.datetime, entry_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """For each approved entry: occurrences of its linked patterns before and after it was approved.

    `before` spans from the first stored occurrence to the approval, `after` from the approval to `now`;
    rates are events per day (over at least `MIN_SPAN_DAYS`). `change` is the relative change of the rate
    (-1.0: the errors stopped), None when there was nothing before. Occurrences are counted by the time
    errlearn received them. Ordered by entry number.

    Args:
        engine: the database.
        now: the end of the `after` window.
        entry_ids: only these entries (default: every approved entry).
    """
    entries = select(ENTRIES.c.id, ENTRIES.c.number, ENTRIES.c.title, ENTRIES.c.approved_at).where(
        ENTRIES.c.status == GuideStatus.approved.value
    )
    if entry_ids is not None:
        entries = entries.where(ENTRIES.c.id.in_(entry_ids))
    with engine.connect() as conn:
        by_entry = _counts(conn, now, entry_ids)
        rows = conn.execute(entries.order_by(ENTRIES.c.number)).all()
        patterns: dict[str, list[str]] = {}
        for link in conn.execute(select(LINKS.c.entry_id, LINKS.c.pattern_id).order_by(LINKS.c.pattern_id)):
            patterns.setdefault(link.entry_id, []).append(link.pattern_id)
    out: list[dict[str, Any]] = []
    for r in rows:
        n_before, n_after, first_seen = by_entry.get(r.id, (0, 0, None))
        approved = r.approved_at or now
        before_days = _days(first_seen, approved) if first_seen is not None and first_seen < approved else 0.0
        after_days = _days(approved, now)
        rate_before = _rate(n_before, before_days)
        rate_after = _rate(n_after, after_days)
        out.append(
            {
                "entry_id": r.id,
                "title": r.title,
                "approved_at": approved.isoformat(),
                "pattern_ids": patterns.get(r.id, []),
                "before": {"events": n_before, "days": round(before_days, 3), "per_day": rate_before},
                "after": {"events": n_after, "days": round(after_days, 3), "per_day": rate_after},
                "change": round((rate_after - rate_before) / rate_before, 4) if rate_before > 0 else None,
            }
        )
    return out


def _counts(
    conn: Connection, now: dt.datetime, entry_ids: list[str] | None
) -> dict[str, tuple[int, int, dt.datetime | None]]:
    """Per approved entry: events of its patterns before approval, after it (up to `now`), and the first.

    One statement over every place that lists events by pattern (`pattern_index.sources`), summed here."""
    approved_at = ENTRIES.c.approved_at
    parts = []
    for s in pattern_index.sources(conn):
        before = func.coalesce(func.sum(case((s.received_at < approved_at, 1), else_=0)), 0)
        after = func.coalesce(func.sum(case(((s.received_at >= approved_at) & (s.received_at <= now), 1), else_=0)), 0)
        part = (
            select(ENTRIES.c.id, before.label("before"), after.label("after"), func.min(s.received_at).label("first"))
            .select_from(
                ENTRIES.join(LINKS, LINKS.c.entry_id == ENTRIES.c.id).join(s.table, s.pattern_id == LINKS.c.pattern_id)
            )
            .where(ENTRIES.c.status == GuideStatus.approved.value, *s.where)
            .group_by(ENTRIES.c.id)
        )
        if entry_ids is not None:
            part = part.where(ENTRIES.c.id.in_(entry_ids))
        parts.append(part)
    out: dict[str, tuple[int, int, dt.datetime | None]] = {}
    for r in conn.execute(parts[0] if len(parts) == 1 else union_all(*parts)):
        before_n, after_n, first = out.get(r[0], (0, 0, None))
        seen = _as_utc(r[3]) if r[3] is not None else None
        if seen is not None and (first is None or seen < first):
            first = seen
        out[r[0]] = (before_n + int(r[1]), after_n + int(r[2]), first)
    return out


def _as_utc(value: Any) -> dt.datetime:
    # min() over a UTCDateTime column comes back raw on SQLite (a string or a naive datetime).
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    return value.astimezone(dt.UTC)  # type: ignore[no-any-return]
