"""The single event writer: takes what requests queued, commits it as one transaction, then acknowledges.

Requests hand their events to one writer thread. It takes everything queued (up to a limit) and
commits it in ONE transaction (what that transaction writes: `agent.store.commit.Committer`). Only
after the commit returns are the callers' futures resolved, so an acknowledged event is durable.
Batching concurrent requests (group commit) is what makes a per-commit fsync affordable.

What commits add to pattern totals and counters is appended as tallies (`agent.store.tallies`); the writer
folds them into their rows every `fold_every_s` while it commits, when it goes idle, when it starts (what
a killed process left) and when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from agent.store.commit import Committer, PatternHook, Results, Stored, Work
from agent.store.sink_queue import Sink

__all__ = ["CommitRecorder", "EventWriter", "PatternHook", "Stored", "WriterBusy", "WriterStopped"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRYABLE = {"40P01", "40001"}
"""PostgreSQL deadlock_detected and serialization_failure."""

CommitRecorder = Callable[[list[dict[str, Any]], list[list[Stored]], float], None]
"""Called after each commit, before the acks, with the rows, the results per request and the seconds it took
(the service passes `agent.metrics.record_commit`: the store does not import the layer above)."""


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
        fold_every_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.max_batch = max_batch
        self.pattern_hooks = list(pattern_hooks)
        self.on_committed = on_committed
        self.on_commit = on_commit
        self._queue: queue.Queue[Work | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._committer = Committer(engine, pattern_hooks=self.pattern_hooks)
        self.batches = 0
        self.committed_events = 0
        self._queued_events = 0  # submitted, not yet taken into a transaction (backpressure reads it)
        self._queued_lock = threading.Lock()
        self._waker: _LoopWaker | None = None
        self.fold_every_s = fold_every_s
        self._folded_at = time.monotonic()

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

    def _enqueue(self, work: Work, limit: int | None = None) -> None:
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
        self._submit(Work(events, fut, counters or {}, idempotency_key), limit)
        return fut

    def _submit(self, work: Work, limit: int | None) -> None:
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
        self._submit(Work(events, ack, counters or {}, idempotency_key), limit)
        return await ack.fut

    def write_sync(self, events: list[dict[str, Any]], timeout: float | None = 60.0) -> list[Stored]:
        return self.submit(events).result(timeout)

    def count(self, counters: dict[str, int]) -> None:
        """Add to durable counters (e.g. rejections) without waiting."""
        if self._thread is not None:
            self._enqueue(Work([], None, counters))

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._committer.close()

    def _loop(self) -> None:
        self._fold()  # what a process that died before its fold left
        while True:
            try:
                first = self._queue.get(timeout=self._fold_wait())
            except queue.Empty:  # idle with tallies appended: fold them now
                self._fold()
                continue
            if first is None:
                self._fold()
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
            if self._committer.unfolded and time.monotonic() - self._folded_at >= self.fold_every_s:
                self._fold()
            if stop:
                self._fold()
                return

    def _fold_wait(self) -> float | None:
        """How long the writer may wait for work before folding: None (for ever) with nothing to fold."""
        if not self._committer.unfolded:
            return None
        return max(0.0, self.fold_every_s - (time.monotonic() - self._folded_at))

    def _fold(self) -> None:
        """Fold the tallies; on failure they stay where they are, for the next fold (no count is lost)."""
        self._folded_at = time.monotonic()
        try:
            self._retrying(self._committer.fold, attempts=3)
        except Exception:
            log.exception("folding tallies failed (they stay for the next fold)")

    def _process(self, batch: list[Work]) -> None:
        started = time.perf_counter()  # metrics
        try:
            results, rows = self._commit_retrying(batch)
        except Exception as exc:  # the batch is not acknowledged; state is reloaded from the DB
            log.exception("writer transaction failed; %d requests get an error", len(batch))
            self._committer.reset()
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

    def _commit_retrying(self, batch: list[Work], attempts: int = 5) -> Results:
        return self._retrying(lambda: self._commit(batch), attempts=attempts)

    def _retrying(self, transaction: Callable[[], T], *, attempts: int) -> T:
        """Run a writer transaction, again when PostgreSQL picked it as a deadlock victim (replicas, a fold or the
        merge pass updating the same pattern rows) or its connection died (the database restarted): it rolled
        back whole, so a retry on a new connection is exact."""
        for attempt in range(1, attempts + 1):
            try:
                return transaction()
            except OperationalError as exc:
                retryable = getattr(exc.orig, "sqlstate", None) in _RETRYABLE or exc.connection_invalidated
                if attempt == attempts or not retryable:
                    raise
                log.info("writer transaction hit %s; retrying (attempt %d)", type(exc.orig).__name__, attempt)
                self._committer.reset()
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit(self, batch: list[Work]) -> Results:
        return self._committer.commit(batch)
