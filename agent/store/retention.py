"""Retention: raw events expire; patterns, diagnoses, guide entries and the stats counters stay.

An event expires when it was *received* more than `days` ago (the server's clock: a client's `timestamp` may be
anything). An expired event is still kept when

* it is one of the newest `keep_samples` events of its pattern, so a pattern never loses all its samples;
* a provider in `referenced` names it (current diagnoses, live guide entries, open recovery proposals: see
  `agent.store.retention_refs`).

Deletion runs in batches of at most `batch` events, each in its own short write transaction that holds no lock
while it reads: the candidates are chosen on a read-only connection first, and the DELETE re-checks the SQL
providers, so a reference committed meanwhile still protects its event. Patterns whose `sample_event_id` went are
pointed at their newest remaining event in the same transaction. Pattern `count`, `first_seen`, `last_seen` and the
`counters` table are never touched, so `/stats` and pattern totals stay what they were.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Select, bindparam, delete, select, update

from agent.store import pattern_index, tallies
from agent.store.db import lock_for_write
from agent.store.retention_refs import ReferencedIds, default_references
from agent.store.sink_rotation import SinkPlan, SinkRotation
from agent.store.tables import EventRow, PatternRow, table_of

if TYPE_CHECKING:
    from agent.settings import Settings

log = logging.getLogger(__name__)
EVENTS = table_of(EventRow)
PATTERNS = table_of(PatternRow)
Clock = Callable[[], dt.datetime]
DeletedHook = Callable[[list[str]], None]
"""Called after each committed batch with the deleted event ids (e.g. to drop their vectors, were they embedded)."""


@dataclass(frozen=True)
class ServiceSlice:
    """Expired events of one service: how many, and the received times of the oldest and newest."""

    service: str
    events: int
    oldest: dt.datetime
    newest: dt.datetime


@dataclass
class _Tally:
    slices: dict[str, list[Any]] = field(default_factory=dict)
    kept_samples: int = 0
    kept_referenced: int = 0

    def add(self, service: str, received_at: dt.datetime) -> None:
        s = self.slices.get(service)
        if s is None:
            self.slices[service] = [1, received_at, received_at]
        else:
            s[0] += 1
            s[1] = min(s[1], received_at)
            s[2] = max(s[2], received_at)

    def services(self) -> tuple[ServiceSlice, ...]:
        return tuple(ServiceSlice(k, v[0], v[1], v[2]) for k, v in sorted(self.slices.items()))


def _slices_dict(slices: Sequence[ServiceSlice]) -> list[dict[str, Any]]:
    return [
        {"service": s.service, "events": s.events, "oldest": s.oldest.isoformat(), "newest": s.newest.isoformat()}
        for s in slices
    ]


@dataclass(frozen=True)
class PrunePlan:
    """What `run()` would delete now (the dry run)."""

    now: dt.datetime
    cutoff: dt.datetime | None
    """Events received before this expire; None when event retention is off (`days` is 0)."""
    services: tuple[ServiceSlice, ...]
    kept_samples: int
    """Expired events kept because they are among the newest samples of their pattern."""
    kept_referenced: int
    """Expired events kept because a diagnosis, guide entry, proposal (or other provider) references them."""
    samples_to_repoint: int
    """Patterns whose `sample_event_id` would go and be pointed at their newest remaining event."""
    sinks: SinkPlan | None

    @property
    def events(self) -> int:
        return sum(s.events for s in self.services)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "events": self.events,
            "services": _slices_dict(self.services),
            "kept_samples": self.kept_samples,
            "kept_referenced": self.kept_referenced,
            "samples_to_repoint": self.samples_to_repoint,
            "sinks": self.sinks.as_dict() if self.sinks else None,
        }


@dataclass(frozen=True)
class PruneReport:
    """What `run()` did."""

    started_at: dt.datetime
    finished_at: dt.datetime
    cutoff: dt.datetime | None
    services: tuple[ServiceSlice, ...]
    batches: int
    """Write transactions that deleted events (each at most `batch` events)."""
    kept_samples: int
    kept_referenced: int
    """Includes `referenced_at_delete`."""
    referenced_at_delete: int
    """Chosen for deletion but referenced by the time the DELETE ran (the re-check caught them)."""
    repointed: int
    sinks: SinkPlan | None
    complete: bool = True
    """False when `max_seconds` ran out before every expired event was looked at."""

    @property
    def deleted(self) -> int:
        return sum(s.events for s in self.services)

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "deleted": self.deleted,
            "services": _slices_dict(self.services),
            "batches": self.batches,
            "kept_samples": self.kept_samples,
            "kept_referenced": self.kept_referenced,
            "referenced_at_delete": self.referenced_at_delete,
            "repointed": self.repointed,
            "complete": self.complete,
            "sinks": self.sinks.as_dict() if self.sinks else None,
        }


@dataclass(frozen=True)
class _Candidate:
    id: str
    pattern_id: str
    service: str
    received_at: dt.datetime


class Retention:
    """Deletes expired events in batches and rotates the JSONL sinks. `plan()` looks, `run()` acts.

    Args:
        engine: the database.
        clock: now, in UTC (injected so tests can age events).
        days: events received longer ago expire; 0 keeps events forever.
        keep_samples: newest events of each pattern kept however old (at least 1).
        batch: most events deleted per transaction.
        referenced: providers of event ids that must stay; `default_references()` gives the built-in ones.
        sinks: JSONL sink rotation to run after the events, if any.
        on_deleted: called with each committed batch's deleted ids (to drop their vectors, were events embedded).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        days: float,
        keep_samples: int,
        batch: int,
        referenced: Sequence[ReferencedIds] = (),
        sinks: SinkRotation | None = None,
        on_deleted: DeletedHook | None = None,
    ) -> None:
        if keep_samples < 1:
            raise ValueError("keep_samples must be at least 1: a pattern must keep a sample")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.engine = engine
        self.clock = clock
        self.days = days
        self.keep_samples = keep_samples
        self.batch = batch
        self.referenced = list(referenced)
        self.sinks = sinks
        self.on_deleted = on_deleted

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Engine,
        *,
        clock: Clock,
        referenced: Sequence[ReferencedIds] | None = None,
        on_deleted: DeletedHook | None = None,
    ) -> Retention:
        """Build from settings, with the built-in reference providers unless `referenced` is given."""
        # getattr with the proposed defaults until agent/settings.py carries the retention fields.
        sinks = SinkRotation(
            settings.sink_dir,
            clock=clock,
            max_bytes=settings.sink_max_bytes,
            backups=settings.sink_backups,
            max_age_days=float(settings.sink_max_age_days),
        )
        return cls(
            engine,
            clock=clock,
            days=float(settings.retention_days),
            keep_samples=settings.retention_keep_samples,
            batch=settings.retention_batch,
            referenced=default_references() if referenced is None else referenced,
            sinks=sinks,
            on_deleted=on_deleted,
        )

    def cutoff(self, now: dt.datetime) -> dt.datetime | None:
        return now - dt.timedelta(days=self.days) if self.days > 0 else None

    # -- the dry run ---------------------------------------------------------------------------------------
    def plan(self) -> PrunePlan:
        """What `run()` would delete now. Deletes nothing."""
        now = self.clock()
        cutoff = self.cutoff(now)
        tally = _Tally()
        repoint = 0
        if cutoff is not None:
            with self.engine.connect() as conn:
                referenced, _ = self._references(conn)
                samples = {r for r in conn.execute(select(PATTERNS.c.sample_event_id)).scalars() if r}
            for page in self._pages(cutoff, referenced, tally):
                for c in page:
                    tally.add(c.service, c.received_at)
                    repoint += c.id in samples
        sinks = self.sinks.plan() if self.sinks else None
        return PrunePlan(now, cutoff, tally.services(), tally.kept_samples, tally.kept_referenced, repoint, sinks)

    # -- the real run --------------------------------------------------------------------------------------
    def run(self, *, max_seconds: float | None = None) -> PruneReport:
        """Delete expired, unreferenced events beyond each pattern's newest samples; then rotate the sinks.

        Args:
            max_seconds: stop starting new batches after this long (the worker's other tasks wait while it runs);
                the next run carries on where this one stopped. None: until done.
        """
        started = self.clock()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        complete = True
        cutoff = self.cutoff(started)
        tally = _Tally()
        batches = repointed = rechecked = 0
        if cutoff is not None:
            with self.engine.connect() as conn:
                referenced, queries = self._references(conn)
            for page in self._pages(cutoff, referenced, tally):
                if batches and deadline is not None and time.monotonic() >= deadline:
                    complete = False  # at least one batch per run, so a short budget still makes progress
                    break
                deleted, moved = self._delete(page, cutoff, queries)
                batches += 1
                repointed += moved
                rechecked += len(page) - len(deleted)
                for c in deleted:
                    tally.add(c.service, c.received_at)
                if deleted and self.on_deleted is not None:
                    self.on_deleted([c.id for c in deleted])
        sinks = self.sinks.run() if self.sinks else None
        report = PruneReport(
            started_at=started,
            finished_at=self.clock(),
            cutoff=cutoff,
            services=tally.services(),
            batches=batches,
            kept_samples=tally.kept_samples,
            kept_referenced=tally.kept_referenced + rechecked,
            referenced_at_delete=rechecked,
            repointed=repointed,
            sinks=sinks,
            complete=complete,
        )
        if report.deleted or (sinks and sinks.actions):
            log.info(
                "retention: deleted %d events in %d batches (kept %d samples, %d referenced), %d sink actions",
                report.deleted,
                batches,
                report.kept_samples,
                report.kept_referenced,
                len(sinks.actions) if sinks else 0,
            )
        return report

    # -- internals -----------------------------------------------------------------------------------------
    def _references(self, conn: Connection) -> tuple[set[str], list[Select[Any]]]:
        """All referenced ids now (to choose candidates) and the SQL providers (to re-check in each DELETE)."""
        ids: set[str] = set()
        queries: list[Select[Any]] = []
        for provider in self.referenced:
            result = provider(conn)
            if isinstance(result, Select):
                queries.append(result)
                ids.update(str(v) for v in conn.execute(result).scalars() if v is not None)
            else:
                ids.update(result)
        return ids, queries

    def _pages(self, cutoff: dt.datetime, referenced: set[str], tally: _Tally) -> Iterator[list[_Candidate]]:
        """Deletable events, oldest first, in pages of at most `batch`; reads never overlap a write transaction."""
        after: dt.datetime | None = None
        keep: dict[str, frozenset[str]] = {}
        newest = self._newest()
        pending: list[_Candidate] = []
        done = False
        while not done or pending:
            with self.engine.connect() as conn:
                while not done and len(pending) < self.batch:
                    rows, after, done = self._read(conn, cutoff, after)
                    for event_id, pattern_id, service, received_at in rows:
                        samples = keep.get(pattern_id)
                        if samples is None:
                            samples = keep[pattern_id] = frozenset(
                                conn.execute(newest, {"pattern": pattern_id}).scalars()
                            )
                        if event_id in samples:
                            tally.kept_samples += 1
                        elif event_id in referenced:
                            tally.kept_referenced += 1
                        else:
                            pending.append(_Candidate(event_id, pattern_id, service, received_at))
            while len(pending) >= self.batch or (done and pending):
                page, pending = pending[: self.batch], pending[self.batch :]
                yield page

    def _read(
        self, conn: Connection, cutoff: dt.datetime, after: dt.datetime | None
    ) -> tuple[Sequence[Any], dt.datetime | None, bool]:
        """The next expired events by received time: (rows, the last time read, whether that was all of them).

        The walk orders by `received_at` alone, so both databases read the `received_at` index in order with no
        sort (ordering by a second column made PostgreSQL sort the whole remaining range for every page). Events
        received at the same instant (one ingest request) are read together: when a page ends inside such a
        group, the rest of the group is fetched too, so the next page can start strictly after it.
        """
        cols = (EVENTS.c.id, EVENTS.c.pattern_id, EVENTS.c.service, EVENTS.c.received_at)
        stmt = select(*cols).where(EVENTS.c.received_at < cutoff)
        if after is not None:
            stmt = stmt.where(EVENTS.c.received_at > after)
        rows = conn.execute(stmt.order_by(EVENTS.c.received_at).limit(self.batch)).all()
        if len(rows) < self.batch:
            return rows, (rows[-1].received_at if rows else after), True
        last = rows[-1].received_at
        group = conn.execute(select(*cols).where(EVENTS.c.received_at == last)).all()
        return [r for r in rows if r.received_at != last] + list(group), last, False

    def _newest(self) -> Select[Any]:
        """A pattern's newest `keep_samples` events (newest received first, ties by id); built once, run per pattern."""
        return pattern_index.newest(self.engine, bindparam("pattern"), self.keep_samples)

    def _delete(
        self, page: list[_Candidate], cutoff: dt.datetime, queries: list[Select[Any]]
    ) -> tuple[list[_Candidate], int]:
        """One write transaction: delete the page (minus what became referenced) and repoint patterns' samples."""
        by_id = {c.id: c for c in page}
        stmt = delete(EVENTS).where(EVENTS.c.id.in_(list(by_id)), EVENTS.c.received_at < cutoff)
        for query in queries:
            sub = query.subquery()
            ref = sub.c[0]
            stmt = stmt.where(EVENTS.c.id.not_in(select(ref).where(ref.is_not(None))))
        with self.engine.begin() as conn:
            if pattern_index.deferred(conn):  # SQLite counts events at the fold: count the tail before any goes
                lock_for_write(conn)
                tallies.fold(conn)
            deleted = conn.execute(stmt.returning(EVENTS.c.id, EVENTS.c.pattern_id, EVENTS.c.received_at)).all()
            pattern_index.forget(conn, [(r[0], r[1], r[2]) for r in deleted])
            gone = [r[0] for r in deleted]
            moved = self._repoint(conn, gone, {r[1] for r in deleted}) if gone else 0
        return [by_id[i] for i in gone], moved

    @staticmethod
    def _repoint(conn: Connection, gone: list[str], pattern_ids: set[str]) -> int:
        """Point patterns whose sample was deleted at their newest remaining event.

        Patterns are looked up by primary key, as `sample_event_id` has no index.
        """
        moved = 0
        for pid in sorted(pattern_ids):
            newest = pattern_index.newest(conn, pid, 1).scalar_subquery()
            result = conn.execute(
                update(PATTERNS)
                .where(PATTERNS.c.id == pid, PATTERNS.c.sample_event_id.in_(gone))
                .values(sample_event_id=newest)
            )
            moved += int(result.rowcount)
        return moved
