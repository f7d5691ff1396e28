"""Data for the overview and pattern pages, gathered from the services (kept out of the route handlers).

The few queries the JSON API has no use case for (a pattern's timeline, the service list, a knowledge row)
live here; they read the same tables as `agent.store.analytics`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from agent.api.ui import charts
from agent.api.ui.deps import guide_of, recovery_of
from agent.bootstrap import Services
from agent.domain import Severity
from agent.store import diagnoses, pattern_index
from agent.store.tables import EventRow, KnowledgeRow, PatternRow

log = logging.getLogger(__name__)
EVENTS = EventRow.__table__
PATTERNS = PatternRow.__table__
KNOWLEDGE = KnowledgeRow.__table__
Bucket = Literal["hour", "day"]
MAX_SERVICES_IN_CHART = 7


def _floor(t: dt.datetime, bucket: Bucket) -> dt.datetime:
    t = t.astimezone(dt.UTC) if t.tzinfo else t.replace(tzinfo=dt.UTC)
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if bucket == "day" else t


def bucket_keys(start: dt.datetime, end: dt.datetime, bucket: Bucket) -> list[dt.datetime]:
    """Every bucket start from the one holding `start` to the one holding `end`."""
    step = dt.timedelta(hours=1) if bucket == "hour" else dt.timedelta(days=1)
    out, t = [], _floor(start, bucket)
    while t <= _floor(end, bucket):
        out.append(t)
        t += step
    return out


def _key(t: dt.datetime) -> str:
    """The bucket label SQL produces (`agent.store.analytics`): `2026-11-02T09:00:00Z`."""
    return t.strftime("%Y-%m-%dT%H:00:00Z")


def _label(t: dt.datetime, bucket: Bucket) -> str:
    return t.strftime("%H:00") if bucket == "hour" else t.strftime("%m-%d")


def _bucket_expr(conn: Connection, bucket: Bucket) -> Any:
    col = EVENTS.c.received_at
    if conn.dialect.name == "postgresql":
        return func.to_char(func.date_trunc(bucket, func.timezone("UTC", col)), 'YYYY-MM-DD"T"HH24:00:00"Z"')
    return func.strftime("%Y-%m-%dT%H:00:00Z" if bucket == "hour" else "%Y-%m-%dT00:00:00Z", col)


# -- overview ------------------------------------------------------------------------------------------
def _stacked(trends: list[dict[str, Any]], keys: list[dt.datetime], field: str, names: list[str]) -> list[list[int]]:
    index = {_key(k): i for i, k in enumerate(keys)}
    rows = {n: [0] * len(keys) for n in names}
    for r in trends:
        i = index.get(r["bucket"])
        name = r[field] if r[field] in rows else "other"
        if i is not None and name in rows:
            rows[name][i] += int(r["count"])
    return [rows[n] for n in names]


def event_charts(services: Services, hours: int = 24) -> dict[str, Any]:
    """Events per hour, stacked by service and by severity, plus the numbers behind them."""
    core = services.core
    data = core.analytics(hours=hours, bucket="hour", top=10)
    now = core.clock()
    keys = bucket_keys(now - dt.timedelta(hours=hours), now, "hour")
    labels = [_label(k, "hour") for k in keys]
    per_service = [s["service"] for s in data["per_service"]]
    shown = per_service[:MAX_SERVICES_IN_CHART] + (["other"] if len(per_service) > MAX_SERVICES_IN_CHART else [])
    service_series = [
        charts.Series(name, values, charts.color_for(i))
        for i, (name, values) in enumerate(zip(shown, _stacked(data["trends"], keys, "service", shown), strict=True))
    ]
    severities = [s.value for s in Severity]
    severity_series = [
        charts.Series(name, values, charts.SEVERITY_COLORS[name])
        for name, values in zip(severities, _stacked(data["trends"], keys, "severity", severities), strict=True)
    ]
    return {
        "hours": hours,
        "by_service": charts.bar_chart(labels, service_series, title=f"Events per hour by service, last {hours} h"),
        "by_severity": charts.bar_chart(labels, severity_series, title=f"Events per hour by severity, last {hours} h"),
        "service_series": service_series,
        "severity_series": severity_series,
        "total": sum(sum(s.values) for s in severity_series),
        "top_patterns": data["top_patterns"],
        "new_vs_recurring": data["new_vs_recurring"],
        "per_service": data["per_service"],
    }


def status_panel(services: Services) -> dict[str, Any]:
    """Queue, worker, learning and review state for the overview's status panel (polled by htmx)."""
    status = services.core.status()
    jobs: dict[str, dict[str, int]] = status.get("jobs", {})
    panel: dict[str, Any] = {
        "status": status,
        "jobs": jobs,
        "queued_jobs": sum(n for counts in jobs.values() for s, n in counts.items() if s in ("queued", "running")),
        "failed_jobs": sum(n for counts in jobs.values() for s, n in counts.items() if s in ("failed", "dead")),
        "worker_running": services.worker.running,
        "worker_error": services.worker.last_error,
        "learning_runs": status.get("learning_runs", []),
        "drafts": None,
        "open_proposals": None,
    }
    guide = guide_of(services)
    if guide is not None:
        from agent.guide.models import GuideStatus

        panel["drafts"] = len(guide.entries(GuideStatus.draft, 1000))
    recovery = recovery_of(services)
    if recovery is not None:
        from agent.recovery.models import OPEN_STATUSES

        panel["open_proposals"] = len(recovery.proposals(status=OPEN_STATUSES, limit=500))
    return panel


# -- patterns ------------------------------------------------------------------------------------------
def service_names(services: Services) -> list[str]:
    with services.core.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(PATTERNS.c.service).distinct().order_by(PATTERNS.c.service))]


def timeline(services: Services, pattern_id: str, first_seen: dt.datetime) -> dict[str, Any]:
    """Events of one pattern per hour (young patterns) or per day (last 30 days), as a line chart."""
    now = services.core.clock()
    first = first_seen if first_seen.tzinfo else first_seen.replace(tzinfo=dt.UTC)
    young = now - first <= dt.timedelta(days=2)
    bucket: Bucket = "hour" if young else "day"
    # Young: hourly from first sight (at least 12 buckets); older: daily over at most the last 30 days.
    start = min(first, now - dt.timedelta(hours=11)) if young else max(first, now - dt.timedelta(days=30))
    keys = bucket_keys(start, now, bucket)
    with services.core.engine.connect() as conn:
        b = _bucket_expr(conn, bucket).label("b")
        rows = conn.execute(
            select(b, func.count()).where(pattern_index.of_pattern(conn, pattern_id, since=keys[0])).group_by(b)
        ).all()
    counts = {str(r[0]): int(r[1]) for r in rows}
    values = [counts.get(_key(k), 0) for k in keys]
    unit = "hour" if bucket == "hour" else "day"
    series = [charts.Series("events", values, charts.PALETTE[0])]
    return {
        "chart": charts.line_chart([_label(k, bucket) for k in keys], series, title=f"Events per {unit}"),
        "unit": unit,
        "rows": list(zip([_label(k, bucket) for k in keys], values, strict=True)),
    }


def similar(services: Services, pattern: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Similar past patterns and knowledge with scores (and their diagnoses), or the reason there are none."""
    try:
        hits = services.runtime.retrieval().similar_to_pattern(pattern, k=5, knowledge_k=3)
    except Exception as exc:  # retrieval is optional for the page: show the pattern anyway
        log.warning("similar incidents for %s failed: %s", pattern.id, exc)
        return [], f"similar incidents are unavailable: {type(exc).__name__}: {exc}"
    with services.core.engine.connect() as conn:
        diags = diagnoses.current_for(conn, [h.id for h in hits if h.kind == "pattern"])
    return [
        {
            "kind": h.kind,
            "id": h.id,
            "score": h.score,
            "title": h.title,
            "text": h.document,
            "service": h.metadata.get("service"),
            "diagnosis": diags.get(h.id),
            "why": h.why.summary() if h.why else None,
        }
        for h in hits
    ], None


def pattern_page(services: Services, pattern_id: str) -> dict[str, Any] | None:
    found = services.core.pattern_detail(pattern_id, 10)
    if found is None:
        return None
    pattern, events = found
    hits, similar_error = similar(services, pattern)
    page: dict[str, Any] = {
        "pattern": pattern,
        "events": events,
        "timeline": timeline(services, pattern.id, pattern.first_seen),
        "similar": hits,
        "similar_error": similar_error,
        "diagnosis": services.diagnoser.current(pattern.id),
        "diagnosis_job": diagnosis_job(services, pattern.id),
        "guide_available": False,
        "guide_entry": None,
        "recovery_available": False,
        "proposals": [],
        "outcomes": [],
    }
    guide = guide_of(services)
    if guide is not None:
        from agent.guide import repo as guide_repo

        with guide.engine.connect() as conn:
            page.update(guide_available=True, guide_entry=guide_repo.live_entry_for_pattern(conn, pattern.id))
    recovery = recovery_of(services)
    if recovery is not None:
        page.update(
            recovery_available=True,
            proposals=recovery.proposals(pattern_id=pattern.id, limit=10),
            outcomes=recovery.outcomes_for_pattern(pattern.id),
        )
    return page


def knowledge_row(services: Services, entry_id: str) -> dict[str, Any] | None:
    with services.core.engine.connect() as conn:
        row = conn.execute(
            select(KNOWLEDGE.c.id, KNOWLEDGE.c.title, KNOWLEDGE.c.kind, KNOWLEDGE.c.source, KNOWLEDGE.c.text).where(
                KNOWLEDGE.c.id == entry_id
            )
        ).first()
    return dict(row._mapping) if row else None


def diagnosis_job(services: Services, pattern_id: str) -> Any:
    """The pattern's newest diagnosis job (state, attempts, last error), for the page to say where it stands."""
    from agent.store import jobs

    with services.core.engine.connect() as conn:
        return jobs.latest(conn, "diagnose", pattern_id)
