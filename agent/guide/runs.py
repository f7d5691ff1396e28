"""The `learning_runs` table: start a run without ever overlapping another, record progress and the result.

Starting is one transaction that first takes the guide's lock row (`SELECT … FOR UPDATE` on PostgreSQL; on
SQLite the first write takes the database's single write lock), marks stale runs failed, refuses when a run
is still running, and only then claims a queued row (`UPDATE … WHERE status = 'queued'`) or inserts a new one.
Two workers, a CLI `errlearn learn` and the API can race here and at most one of them wins.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, insert, or_, select, update

from agent.guide import allocator
from agent.store.tables import EventRow, LearningRunRow, table_of

RUNS = table_of(LearningRunRow)
EVENTS = table_of(EventRow)
MAX_ERRORS_CHARS = 4000


@dataclass(frozen=True)
class StartedRun:
    id: int
    trigger: str
    started_at: dt.datetime


def _lock(conn: Connection) -> None:
    allocator.ensure_counter(conn, allocator.LEARNING_LOCK)
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(allocator.COUNTERS.c.value)
            .where(allocator.COUNTERS.c.name == allocator.LEARNING_LOCK)
            .with_for_update()
        )


def running(conn: Connection) -> Any | None:
    return conn.execute(select(RUNS).where(RUNS.c.status == "running").order_by(RUNS.c.id).limit(1)).first()


def start(
    engine: Engine,
    now: dt.datetime,
    *,
    stale_before: dt.datetime,
    lease_expired_before: dt.datetime | None = None,
    trigger: str | None = None,
    run_id: int | None = None,
) -> StartedRun | None:
    """Claim the queued run `run_id`, or insert and start a new run with `trigger`.

    Returns None when another run is running (and not stale) or the queued row was claimed by someone else.
    """
    with engine.begin() as conn:
        _lock(conn)
        dead = RUNS.c.started_at < stale_before
        if lease_expired_before is not None:  # its holder stopped renewing the lease: killed, or hung
            beat = func.coalesce(RUNS.c.heartbeat_at, RUNS.c.started_at)
            dead = or_(dead, and_(beat.is_not(None), beat < lease_expired_before))
        conn.execute(
            update(RUNS)
            .where(RUNS.c.status == "running", dead)
            .values(status="failed", finished_at=now, errors="stale: its holder stopped (killed?); the lease expired")
        )
        if run_id is None:
            if running(conn) is not None:
                return None
            new_id = conn.execute(
                insert(RUNS).values(
                    trigger=trigger or "manual", status="running", requested_at=now, started_at=now, heartbeat_at=now
                )
            ).inserted_primary_key
            assert new_id is not None
            return StartedRun(int(new_id[0]), trigger or "manual", now)
        other = RUNS.alias("other")
        claimed = conn.execute(
            update(RUNS)
            .where(
                RUNS.c.id == run_id,
                RUNS.c.status == "queued",
                ~exists(select(other.c.id).where(other.c.status == "running")),
            )
            .values(status="running", started_at=now, heartbeat_at=now)
        )
        if claimed.rowcount != 1:
            return None
        row = conn.execute(select(RUNS.c.trigger).where(RUNS.c.id == run_id)).one()
        return StartedRun(run_id, row.trigger, now)


def oldest_queued(engine: Engine) -> int | None:
    with engine.connect() as conn:
        value = conn.execute(select(RUNS.c.id).where(RUNS.c.status == "queued").order_by(RUNS.c.id).limit(1)).scalar()
    return int(value) if value is not None else None


def last_started(engine: Engine) -> dt.datetime | None:
    """When the most recent run (running, finished or failed) started."""
    with engine.connect() as conn:
        row = conn.execute(
            select(RUNS.c.started_at)
            .where(RUNS.c.started_at.is_not(None))
            .order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc())
            .limit(1)
        ).first()
    return row.started_at if row else None


def errors_since(engine: Engine, since: dt.datetime | None) -> bool:
    """Did any error arrive after `since` (any at all when None)?"""
    stmt = select(EVENTS.c.id).limit(1)
    if since is not None:
        stmt = stmt.where(EVENTS.c.received_at > since)
    with engine.connect() as conn:
        return conn.execute(stmt).first() is not None


def progress(engine: Engine, run_id: int, *, examined: int, drafts: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(patterns_examined=examined, drafts_created=drafts))


def finish(
    engine: Engine, run_id: int, now: dt.datetime, *, status: str, examined: int, drafts: int, errors: list[str]
) -> None:
    text = "\n".join(errors)
    if len(text) > MAX_ERRORS_CHARS:
        text = text[: MAX_ERRORS_CHARS - 20] + f"\n… ({len(errors)} errors)"
    with engine.begin() as conn:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status=status,
                finished_at=now,
                patterns_examined=examined,
                drafts_created=drafts,
                errors=text or None,
            )
        )


def heartbeat(engine: Engine, run_id: int, now: dt.datetime) -> bool:
    """Renew the lease of a running run. False when it is no longer running (finished, or taken for dead)."""
    with engine.begin() as conn:
        res = conn.execute(update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == "running").values(heartbeat_at=now))
        return bool(res.rowcount)
