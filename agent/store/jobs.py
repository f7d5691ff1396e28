"""Durable jobs in the database: enqueue once per subject, claim safely, retry with backoff.

Claiming uses `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so many workers can share the
queue. SQLite has one writer at a time; there an `UPDATE … WHERE id = (SELECT …) RETURNING` in a
single statement is atomic, which gives the same guarantee.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from agent.store.tables import JobRow, table_of

JOBS = table_of(JobRow)


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str
    attempts: int
    max_attempts: int
    payload: dict[str, Any]


def enqueue(
    conn: Connection,
    kind: str,
    key: str,
    now: dt.datetime,
    *,
    payload: dict[str, Any] | None = None,
    max_attempts: int = 5,
    delay_s: float = 0.0,
) -> bool:
    """Add a job unless one for the same kind+key is already queued or running. True when added."""
    dedupe = f"{kind}:{key}"
    if conn.execute(select(JOBS.c.id).where(JOBS.c.dedupe_key == dedupe)).first() is not None:
        return False
    values = dict(
        kind=kind,
        key=key,
        dedupe_key=dedupe,
        status="queued",
        attempts=0,
        max_attempts=max_attempts,
        run_after=now + dt.timedelta(seconds=delay_s),
        payload=payload or {},
        created_at=now,
        updated_at=now,
    )
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        res = conn.execute(pg_insert(JOBS).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))
        return bool(res.rowcount)
    try:
        with conn.begin_nested():
            conn.execute(JOBS.insert().values(**values))
    except IntegrityError:
        return False
    return True


def claim(engine: Engine, kinds: list[str], now: dt.datetime, *, lease_s: float = 300.0) -> Job | None:
    """Take the next runnable job of the given kinds (expired leases count as runnable)."""
    lease = now + dt.timedelta(seconds=lease_s)
    runnable = and_(
        JOBS.c.kind.in_(kinds),
        or_(
            and_(JOBS.c.status == "queued", JOBS.c.run_after <= now),
            and_(JOBS.c.status == "running", JOBS.c.locked_until < now),
        ),
    )
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            row = conn.execute(
                select(JOBS.c.id)
                .where(runnable)
                .order_by(JOBS.c.run_after, JOBS.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            job_id = row.id
        else:
            conn.execute(text("SELECT 1"))  # start the transaction before reading
            row = conn.execute(select(JOBS.c.id).where(runnable).order_by(JOBS.c.run_after, JOBS.c.id).limit(1)).first()
            if row is None:
                return None
            job_id = row.id
        res = conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, runnable)
            .values(status="running", locked_until=lease, attempts=JOBS.c.attempts + 1, updated_at=now)
            .returning(JOBS.c.id, JOBS.c.kind, JOBS.c.key, JOBS.c.attempts, JOBS.c.max_attempts, JOBS.c.payload)
        ).first()
        if res is None:  # another worker won the race on SQLite
            return None
        return Job(res.id, res.kind, res.key, res.attempts, res.max_attempts, res.payload or {})


def complete(engine: Engine, job: Job, now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id)
            .values(status="done", dedupe_key=None, locked_until=None, last_error=None, updated_at=now)
        )


def release(engine: Engine, job: Job, now: dt.datetime, reason: str) -> bool:
    """Give a claimed job back, runnable now, its attempt not counted: the worker stopped, not the job.

    Only while this claim still holds it (running, not taken over after an expired lease). True when released.
    """
    with engine.begin() as conn:
        res = conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id, JOBS.c.status == "running", JOBS.c.attempts == job.attempts)
            .values(
                status="queued",
                attempts=job.attempts - 1,
                run_after=now,
                locked_until=None,
                last_error=reason[:2000],
                updated_at=now,
            )
        )
        return bool(res.rowcount)


def backoff_s(attempts: int, *, base: float = 5.0, cap: float = 900.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2.0 ** max(0, attempts - 1))


OUTAGE_BACKOFF_CAP_S = 3600.0
"""A job failing because the model is down waits at most this long between tries, and never gives up."""


def fail(engine: Engine, job: Job, now: dt.datetime, error: str, *, outage: bool = False) -> bool:
    """Record a failure; retry later with backoff, or give up after max_attempts. True when it will retry.

    An ``outage`` (the model is unreachable, not the job's fault) retries for as long as it lasts, with
    exponential backoff capped at ``OUTAGE_BACKOFF_CAP_S``: the job runs again once the model is back.
    """
    retry = outage or job.attempts < job.max_attempts
    values: dict[str, Any] = {"last_error": error[:2000], "updated_at": now, "locked_until": None}
    if retry:
        wait = backoff_s(job.attempts, cap=OUTAGE_BACKOFF_CAP_S) if outage else backoff_s(job.attempts)
        values.update(status="queued", run_after=now + dt.timedelta(seconds=wait))
    else:
        values.update(status="failed", dedupe_key=None)
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job.id).values(**values))
    return retry


@dataclass(frozen=True)
class JobState:
    status: str
    attempts: int
    last_error: str | None
    run_after: dt.datetime | None
    updated_at: dt.datetime | None


def latest(conn: Connection, kind: str, key: str) -> JobState | None:
    """The newest job of this kind for this subject, whatever its status."""
    row = conn.execute(
        select(JOBS.c.status, JOBS.c.attempts, JOBS.c.last_error, JOBS.c.run_after, JOBS.c.updated_at)
        .where(JOBS.c.kind == kind, JOBS.c.key == key)
        .order_by(JOBS.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else JobState(row.status, row.attempts, row.last_error, row.run_after, row.updated_at)
