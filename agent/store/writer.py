"""The single event writer: groups events, stores them, commits, then acknowledges.

Requests hand their events to one writer thread. It takes everything queued (up to a limit) and
commits it in ONE transaction: events, pattern counters and stats counters. Only
after the commit returns are the callers' futures resolved, so an acknowledged event is durable.
Batching concurrent requests (group commit) is what makes a per-commit fsync affordable.

Pattern assignment is content-addressed (`agent.ingest.grouping`) and honours the stored merge
decisions (`pattern_aliases`), read for each batch's fingerprints: replicas on one database agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, case, delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from agent.domain import Severity
from agent.ids import new_event_id, pattern_id_for
from agent.ingest.grouping import Grouper
from agent.store.sink_queue import Sink
from agent.store.tables import CounterRow, EventRow, IdempotencyKeyRow, PatternAliasRow, PatternRow, table_of

log = logging.getLogger(__name__)
_RETRYABLE = {"40P01", "40001"}
"""PostgreSQL deadlock_detected and serialization_failure."""

EVENTS = table_of(EventRow)
PATTERNS = table_of(PatternRow)
COUNTERS = table_of(CounterRow)
ALIASES = table_of(PatternAliasRow)
IDEMPOTENCY = table_of(IdempotencyKeyRow)


@dataclass(frozen=True)
class Stored:
    event_id: str
    pattern_id: str
    new_pattern: bool


@dataclass
class _PatternInfo:
    id: str
    max_rank: int


class Ack(Protocol):
    """How the writer answers one submission (a `concurrent.futures.Future`, or an `_AsyncAck`)."""

    def done(self) -> bool: ...
    def set_result(self, result: list[Stored]) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


class _LoopWaker:
    """Resolves one event loop's waiting requests from the writer thread with one wake-up per commit.

    `asyncio.wrap_future` costs a `call_soon_threadsafe` (a self-pipe write, and the GIL taken back and forth)
    per request; the writer acknowledges a whole batch at once, so the first ack of a commit schedules one
    drain and the others join its list.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[list[Stored]], list[Stored] | None, BaseException | None]] = []

    def resolve(
        self, fut: asyncio.Future[list[Stored]], result: list[Stored] | None, exc: BaseException | None
    ) -> None:
        with self._lock:
            first = not self._pending
            self._pending.append((fut, result, exc))
        if first:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._pending = self._pending, []
        for fut, result, exc in items:
            if fut.done():  # cancelled: the request went away
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result or [])


class _AsyncAck:
    """An `Ack` for a request awaiting in an event loop: resolved through its loop's `_LoopWaker`."""

    __slots__ = ("_done", "fut", "waker")

    def __init__(self, waker: _LoopWaker) -> None:
        self.waker = waker
        self.fut: asyncio.Future[list[Stored]] = waker.loop.create_future()
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: list[Stored]) -> None:
        self._done = True
        self.waker.resolve(self.fut, result, None)

    def set_exception(self, exception: BaseException) -> None:
        self._done = True
        self.waker.resolve(self.fut, None, exception)


@dataclass
class _Work:
    events: list[dict[str, Any]]
    future: Ack | None
    counters: dict[str, int] = field(default_factory=dict)
    idempotency_key: str | None = None


PatternHook = Callable[[Connection, list[str], list[str]], None]
"""Called inside the writer's transaction with the ids of new patterns and of changed ones."""

CommitRecorder = Callable[[list[dict[str, Any]], list[list[Stored]], float], None]
"""Called after each commit, before the acks, with the rows, the results per request and the seconds it took
(the service passes `agent.metrics.record_commit`: the store does not import the layer above)."""


class WriterStopped(RuntimeError):
    pass


class WriterBusy(RuntimeError):
    """The writer's queue is at its bound (`limit`): nothing of this submission was queued."""


class EventWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        sink: Sink | None = None,
        max_batch: int = 2000,
        pattern_hooks: Sequence[PatternHook] = (),
        on_committed: Callable[[list[dict[str, Any]]], None] | None = None,
        on_commit: CommitRecorder | None = None,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.max_batch = max_batch
        self.pattern_hooks = list(pattern_hooks)
        self.on_committed = on_committed
        self.on_commit = on_commit
        self._queue: queue.Queue[_Work | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._patterns: dict[str, _PatternInfo] = {}
        self._grouper = Grouper()
        self.batches = 0
        self.committed_events = 0
        self._queued_events = 0  # submitted, not yet taken into a transaction (backpressure reads it)
        self._queued_lock = threading.Lock()
        self._waker: _LoopWaker | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="errlearn-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self.sink is not None:
            self.sink.close()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def queued_events(self) -> int:
        """Events handed to the writer and not yet in a transaction."""
        return self._queued_events

    def _enqueue(self, work: _Work, limit: int | None = None) -> None:
        with self._queued_lock:
            if limit is not None and work.events and self._queued_events >= limit:
                raise WriterBusy(f"{self._queued_events} events wait for the writer (limit {limit})")
            self._queued_events += len(work.events)
        self._queue.put(work)

    # -- submitting -------------------------------------------------------------------------
    def submit(
        self,
        events: list[dict[str, Any]],
        counters: dict[str, int] | None = None,
        *,
        idempotency_key: str | None = None,
        limit: int | None = None,
    ) -> Future[list[Stored]]:
        """Queue events; with `limit`, raise `WriterBusy` instead when that many events already wait."""
        fut: Future[list[Stored]] = Future()
        self._submit(_Work(events, fut, counters or {}, idempotency_key), limit)
        return fut

    def _submit(self, work: _Work, limit: int | None) -> None:
        if self._thread is None:
            raise WriterStopped("the event writer is not running")
        self._enqueue(work, limit)

    async def write(
        self,
        events: list[dict[str, Any]],
        counters: dict[str, int] | None = None,
        *,
        idempotency_key: str | None = None,
        limit: int | None = None,
    ) -> list[Stored]:
        waker = self._waker
        if waker is None or waker.loop is not asyncio.get_running_loop():
            waker = self._waker = _LoopWaker(asyncio.get_running_loop())
        ack = _AsyncAck(waker)
        self._submit(_Work(events, ack, counters or {}, idempotency_key), limit)
        return await ack.fut

    def write_sync(self, events: list[dict[str, Any]], timeout: float | None = 60.0) -> list[Stored]:
        return self.submit(events).result(timeout)

    def count(self, counters: dict[str, int]) -> None:
        """Add to durable counters (e.g. rejections) without waiting."""
        if self._thread is not None:
            self._enqueue(_Work([], None, counters))

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            n = len(first.events)
            stop = False
            while n < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                n += len(nxt.events)
            with self._queued_lock:
                self._queued_events -= n
            self._process(batch)
            if stop:
                return

    def _process(self, batch: list[_Work]) -> None:
        started = time.perf_counter()  # metrics
        try:
            results, rows = self._commit_retrying(batch)
        except Exception as exc:  # the batch is not acknowledged; state is reloaded from the DB
            log.exception("writer transaction failed; %d requests get an error", len(batch))
            self._patterns.clear()
            for work in batch:
                if work.future is not None and not work.future.done():
                    work.future.set_exception(exc)
            return
        self.batches += 1
        self.committed_events += len(rows)
        if self.on_commit is not None:  # metrics: before the acks, so they see it
            self.on_commit(rows, results, time.perf_counter() - started)
        if rows and self.sink is not None:  # a hand-off to the sink's thread, before the acks: a close drains it
            try:
                self.sink.append(rows)
            except OSError:
                log.exception("JSONL sink write failed (events are safe in the database)")
        for work, stored in zip(batch, results, strict=True):
            if work.future is not None:
                work.future.set_result(stored)
        if rows and self.on_committed is not None:
            try:
                self.on_committed(rows)
            except Exception:
                log.exception("on_committed hook failed")

    def _commit_retrying(
        self, batch: list[_Work], attempts: int = 5
    ) -> tuple[list[list[Stored]], list[dict[str, Any]]]:
        """`_commit`, again when PostgreSQL picked this transaction as a deadlock victim (replicas or the
        merge pass updating the same pattern rows): the transaction rolled back whole, so a retry is exact."""
        for attempt in range(1, attempts + 1):
            try:
                return self._commit(batch)
            except OperationalError as exc:
                if attempt == attempts or getattr(exc.orig, "sqlstate", None) not in _RETRYABLE:
                    raise
                log.info("writer transaction hit %s; retrying (attempt %d)", type(exc.orig).__name__, attempt)
                self._patterns.clear()
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _replays(self, batch: list[_Work]) -> dict[int, list[Stored] | int]:
        """Works whose Idempotency-Key was already committed (stored results), or repeats an earlier work
        of this batch (its index)."""
        keys = [w.idempotency_key for w in batch if w.idempotency_key]
        if not keys:
            return {}
        with self.engine.connect() as conn:
            stored = {
                k: [Stored(*r) for r in res]
                for k, res in conn.execute(
                    select(IDEMPOTENCY.c.key, IDEMPOTENCY.c.results).where(IDEMPOTENCY.c.key.in_(keys))
                )
            }
        out: dict[int, list[Stored] | int] = {}
        first: dict[str, int] = {}
        for i, w in enumerate(batch):
            k = w.idempotency_key
            if not k:
                continue
            if k in stored:
                out[i] = stored[k]
            elif k in first:
                out[i] = first[k]
            else:
                first[k] = i
        return out

    def _commit(self, batch: list[_Work]) -> tuple[list[list[Stored]], list[dict[str, Any]]]:
        grouper = self._grouper
        replays = self._replays(batch)
        rows: list[dict[str, Any]] = []
        per_work: list[list[tuple[dict[str, Any], Any]]] = []
        for i, work in enumerate(batch):
            items = []
            for ev in [] if i in replays else work.events:
                grouping = grouper.group(
                    service=ev["service"],
                    error_type=ev["error_type"],
                    message=ev["error_message"],
                    stack_trace=ev["stack_trace"],
                )
                row = dict(ev)
                row["id"] = ev.get("id") or new_event_id()  # the ingest buffer names its events when it takes them
                rows.append(row)
                items.append((row, grouping))
            per_work.append(items)

        with self.engine.begin() as conn:
            _lock_for_write(conn)
            all_items = [i for items in per_work for i in items]
            targets = _merge_targets(conn, {g.fingerprint for _, g in all_items})
            for row, grouping in all_items:
                row["pattern_id"] = targets.get(grouping.fingerprint) or pattern_id_for(grouping.fingerprint)
            new_ids, changed_ids = self._upsert_patterns(conn, all_items)
            if rows:
                conn.execute(insert(EVENTS), rows)
            counters: dict[str, int] = {}
            for work in batch:
                for k, v in work.counters.items():
                    counters[k] = counters.get(k, 0) + v
            for row in rows:
                for key in ("received", f"service:{row['service']}", f"severity:{row['severity']}"):
                    counters[key] = counters.get(key, 0) + 1
            if counters:
                self._add_counters(conn, counters)
            if new_ids or changed_ids:
                for hook in self.pattern_hooks:
                    hook(conn, sorted(new_ids), sorted(changed_ids))
            fresh = [
                [Stored(r["id"], r["pattern_id"], r["pattern_id"] in new_ids) for r, _ in items] for items in per_work
            ]
            now = dt.datetime.now(dt.UTC)
            keyed = [
                {"key": w.idempotency_key, "results": [list(s.__dict__.values()) for s in fresh[i]], "created_at": now}
                for i, w in enumerate(batch)
                if w.idempotency_key and i not in replays
            ]
            if keyed:
                conn.execute(insert(IDEMPOTENCY), keyed)
            if self.batches % 1000 == 0:  # keys are kept a day
                conn.execute(delete(IDEMPOTENCY).where(IDEMPOTENCY.c.created_at < now - dt.timedelta(days=1)))
        results: list[list[Stored]] = []
        for i, own in enumerate(fresh):
            replay = replays.get(i)
            results.append(fresh[replay] if isinstance(replay, int) else replay if replay is not None else own)
        return results, rows

    def _upsert_patterns(self, conn: Connection, items: list[tuple[dict[str, Any], Any]]) -> tuple[set[str], set[str]]:
        """Count the batch's events into their patterns; create the new ones.

        Keyed by pattern id (the fingerprint's, or a merge target's). A new pattern is inserted with
        ON CONFLICT DO UPDATE, so two replicas creating the same pattern at once both succeed and add up.
        """
        by_pid: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for row, grouping in items:
            by_pid.setdefault(row["pattern_id"], []).append((row, grouping))
        missing = [pid for pid in by_pid if pid not in self._patterns]
        for chunk_start in range(0, len(missing), 500):
            chunk = missing[chunk_start : chunk_start + 500]
            for pid, sev in conn.execute(
                select(PATTERNS.c.id, PATTERNS.c.max_severity).where(PATTERNS.c.id.in_(chunk))
            ):
                self._patterns[pid] = _PatternInfo(pid, Severity(sev).rank)
        new_ids: set[str] = set()
        new_rows = []
        updates: list[dict[str, Any]] = []
        for pid, group in sorted(by_pid.items()):  # one lock order for every writer: no deadlock between them
            first_row, first_grouping = group[0]
            times = [r["timestamp"] for r, _ in group]
            top = max((Severity(r["severity"]) for r, _ in group), key=lambda s: s.rank)
            info = self._patterns.get(pid)
            if info is None:
                new_rows.append(
                    {
                        "id": pid,
                        "fingerprint": first_grouping.fingerprint,
                        "service": first_row["service"],
                        "error_type": first_row["error_type"],
                        "template": first_grouping.template,
                        "method": first_grouping.method.value,
                        "reason": first_grouping.reason,
                        "first_seen": min(times),
                        "last_seen": max(times),
                        "count": len(group),
                        "max_severity": top.value,
                        "sample_event_id": first_row["id"],
                        "resolved": False,
                        "content_version": 1,
                        "indexed_version": 0,
                    }
                )
                self._patterns[pid] = _PatternInfo(pid, top.rank)
                new_ids.add(pid)
                continue
            info.max_rank = max(info.max_rank, top.rank)
            updates.append({"pid": info.id, "n": len(group), "seen": max(times), "sev": top.value})
        if updates:  # one executemany for every recurring pattern of the batch (in id order: one lock order)
            conn.execute(
                update(PATTERNS)
                .where(PATTERNS.c.id == bindparam("pid"))
                .values(
                    count=PATTERNS.c.count + bindparam("n"),
                    last_seen=_greatest(conn, PATTERNS.c.last_seen, bindparam("seen", type_=PATTERNS.c.last_seen.type)),
                    max_severity=_higher_severity(
                        PATTERNS.c.max_severity, bindparam("sev", type_=PATTERNS.c.max_severity.type)
                    ),
                    resolved=False,
                ),
                updates,
            )
        if new_rows:
            new_rows.sort(key=lambda r: str(r["id"]))
            ins = _insert_for(conn)(PATTERNS)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["id"],
                    set_={
                        "count": PATTERNS.c.count + ins.excluded.count,
                        "last_seen": _greatest(conn, PATTERNS.c.last_seen, ins.excluded.last_seen),
                        "first_seen": _least(conn, PATTERNS.c.first_seen, ins.excluded.first_seen),
                        "max_severity": _higher_severity(PATTERNS.c.max_severity, ins.excluded.max_severity),
                        "resolved": False,
                    },
                ),
                new_rows,
            )
        return new_ids, set()

    @staticmethod
    def _add_counters(conn: Connection, counters: dict[str, int]) -> None:
        # One executemany upsert for all keys (per-key statements cost ~10 % of single-event ingest).
        ins = _insert_for(conn)(COUNTERS)
        stmt = ins.on_conflict_do_update(index_elements=["name"], set_={"value": COUNTERS.c.value + ins.excluded.value})
        conn.execute(stmt, [{"name": k, "value": v} for k, v in sorted(counters.items())])


def _lock_for_write(conn: Connection) -> None:
    """SQLite: take the write lock first (`BEGIN IMMEDIATE`), before the transaction reads anything.

    With several writer processes (`serve --workers N`), a deferred transaction that read and then
    tries to write after another process committed fails at once with SQLITE_BUSY, whatever the busy
    timeout; an immediate one waits its turn on the lock (the busy timeout) and then reads fresh data.
    pysqlite opens transactions lazily, so this statement is the transaction's first.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _insert_for(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _merge_targets(conn: Connection, fingerprints: set[str]) -> dict[str, str]:
    """Stored merge decisions for these fingerprints: fingerprint -> the pattern id its events go to.

    Read per batch (one indexed query for the batch's distinct fingerprints, whatever the number of
    stored templates), so a merge recorded by any replica holds on every replica from its next batch.
    A target that no longer exists (retention) is ignored: the event keeps its own pattern.
    """
    if not fingerprints:
        return {}
    out: dict[str, str] = {}
    fps = sorted(fingerprints)
    for start in range(0, len(fps), 500):
        chunk = fps[start : start + 500]
        stmt = (
            select(ALIASES.c.fingerprint, ALIASES.c.target_id)
            .join(PATTERNS, PATTERNS.c.id == ALIASES.c.target_id)
            .where(ALIASES.c.fingerprint.in_(chunk), ALIASES.c.kind == "merge")
        )
        out.update({fp: target for fp, target in conn.execute(stmt)})
    return out


def _greatest(conn: Connection, column: Any, value: Any) -> Any:
    # SQLite's two-argument max() is its GREATEST; bind with the column's type so SQLite compares like with like.
    fn = func.greatest if conn.dialect.name == "postgresql" else func.max
    return fn(column, value if isinstance(value, ColumnElement) else literal(value, type_=column.type))


def _least(conn: Connection, column: Any, value: Any) -> Any:
    fn = func.least if conn.dialect.name == "postgresql" else func.min
    return fn(column, value)


def _severity_rank(expr: Any) -> Any:
    return case({s.value: s.rank for s in Severity}, value=expr, else_=-1)


def _higher_severity(column: Any, value: Any) -> Any:
    """The higher of the stored severity and `value` (in SQL: another replica may have raised it meanwhile)."""
    other = value if isinstance(value, ColumnElement) else literal(value, type_=column.type)
    return case((_severity_rank(other) > _severity_rank(column), other), else_=column)
