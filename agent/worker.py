"""The background worker: indexes new patterns, runs durable jobs, fires periodic tasks.

It runs as a thread inside `errlearn serve` (default) or alone as `errlearn worker`; several
workers may share one PostgreSQL database (jobs are claimed with SKIP LOCKED). Inside `serve` it
yields to ingest: while events arrive it works in small paced rounds (see `Worker.__init__`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import metrics
from agent.llm.outage import outage_cause
from agent.runtime import Runtime
from agent.store import jobs
from agent.store.jobs import Job

log = logging.getLogger(__name__)
JobHandler = Callable[[Job], None]
BUSY_WINDOW_S = 2.0
"""Ingest counts as busy for this long after events were last seen arriving."""


@dataclass
class Periodic:
    name: str
    every_s: float
    run: Callable[[], Any]
    last: float = field(default=float("-inf"))
    defer_while_busy_s: float = 0.0
    """Heavy housekeeping (learning, retention) waits while events are arriving, but at most this long."""
    due_since: float | None = None


@dataclass
class TickReport:
    indexed: int = 0
    knowledge_indexed: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    periodic: list[str] = field(default_factory=list)
    work_s: float = 0.0
    """Seconds spent indexing and running jobs in this tick."""
    ingest_busy: bool = False
    """Events were arriving during this tick: it did less, deferrable periodic tasks waited, and the loop rests."""

    @property
    def busy(self) -> bool:
        return bool(self.indexed or self.jobs_done or self.jobs_failed)


def _lower_priority(niceness: int = 10) -> None:
    """Run background work at a lower CPU priority than ingest (Linux: per thread, inherited by the threads
    it starts, e.g. Chroma's indexers). On 2 cores, indexing at normal priority cut batch ingest to 0.29x."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        log.debug("could not lower the worker's priority")


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        handlers: dict[str, JobHandler] | None = None,
        periodic: list[Periodic] | None = None,
        poll_s: float = 1.0,
        index: bool = True,
        activity: Callable[[], int] | None = None,
        busy_share: float = 1.0,
        busy_batch: int = 64,
    ) -> None:
        """`activity` is a counter that grows while events arrive (the writer's committed events). While it
        grows, indexing and jobs take at most `busy_share` of the time (`busy_batch` patterns, one job a
        tick) and deferrable periodic tasks wait, so that a worker sharing the API's process (and its GIL)
        leaves ingest its throughput; idle, it runs flat out."""
        self.runtime = runtime
        self.handlers: dict[str, JobHandler] = dict(handlers or {})
        self.periodic = list(periodic or [])
        self.poll_s = poll_s
        self.index = index
        self.activity = activity
        self.busy_share = busy_share
        self.busy_batch = busy_batch
        self._last_activity: int | None = None
        self._last_change = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.ticks = 0
        self._current: jobs.Job | None = None
        self._abandoned: jobs.Job | None = None  # the job stop() gave back while its handler still ran

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="errlearn-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop taking work and wait up to `timeout` for the current tick. True when the thread ended.

        A job still running then (a model call that does not return) is given back to the queue, runnable at
        once and its attempt not counted, so that this or another worker runs it again; whatever the abandoned
        call returns later is ignored.
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if not thread.is_alive():
            return True
        job = self._current
        if job is not None:
            self._abandoned = job
            core = self.runtime.core
            if jobs.release(core.engine, job, core.clock(), "interrupted: the worker was stopped"):
                log.warning("stopping: job %s %s abandoned mid-run, queued again", job.kind, job.key)
        return False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        _lower_priority()
        while not self._stop.is_set():
            try:
                report = self.tick()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("worker tick failed")
                report = TickReport()
            pause = self.pause_after(report)
            if pause > 0:
                self._stop.wait(pause)

    def pause_after(self, report: TickReport) -> float:
        """How long the loop rests after a tick: `poll_s` when idle; while ingest is busy, long enough that
        the work keeps to its `busy_share` of the time; otherwise not at all (there is more to do)."""
        if not report.busy:
            return self.poll_s
        if report.ingest_busy and self.busy_share < 1:
            return min(report.work_s * (1 - self.busy_share) / self.busy_share, 10 * self.poll_s)
        return 0.0

    def ingest_busy(self) -> bool:
        """Did events arrive in the last `BUSY_WINDOW_S` seconds (as far as the looks so far can tell)?"""
        if self.activity is None:
            return False
        value, now = self.activity(), time.monotonic()
        if self._last_activity is not None and value != self._last_activity:
            self._last_change = now
        self._last_activity = value
        return now - self._last_change < BUSY_WINDOW_S

    def tick(self, *, max_jobs: int = 10) -> TickReport:
        """One round of work. Tests call this directly with an injected clock."""
        self.ticks += 1
        report = TickReport(ingest_busy=self.ingest_busy())
        work_started = time.perf_counter()
        if self.index:
            retrieval = self.runtime.retrieval()
            report.indexed = retrieval.index_pending(self.busy_batch if report.ingest_busy else 256)
            report.knowledge_indexed = retrieval.index_knowledge()
        core = self.runtime.core
        kinds = sorted(self.handlers)
        for n in range((1 if report.ingest_busy else max_jobs) if kinds else 0):
            if self._stop.is_set():
                break
            if n:
                self._run_due_periodic(report)
            job = jobs.claim(core.engine, kinds, core.clock())
            if job is None:
                break
            started = time.perf_counter()  # metrics
            self._current = job
            try:
                self.handlers[job.kind](job)
            except Exception as exc:
                self._current = None
                if job is self._abandoned:
                    break  # stop() gave it back to the queue
                metrics.record_job(job.kind, "failed", time.perf_counter() - started)  # metrics
                outage = outage_cause(exc) is not None  # the model is down: retry until it is back
                error = f"{'model unavailable: ' if outage else ''}{type(exc).__name__}: {exc}"
                retry = jobs.fail(core.engine, job, core.clock(), error, outage=outage)
                log.warning(
                    "job %s %s failed (attempt %d, %s): %s",
                    job.kind,
                    job.key,
                    job.attempts,
                    "will retry" if retry else "giving up",
                    exc,
                )
                report.jobs_failed += 1
            else:
                self._current = None
                if job is self._abandoned:
                    break
                metrics.record_job(job.kind, "done", time.perf_counter() - started)  # metrics
                jobs.complete(core.engine, job, core.clock())
                report.jobs_done += 1
        report.work_s = time.perf_counter() - work_started
        report.ingest_busy = self.ingest_busy() or report.ingest_busy  # the work may have taken a while
        self._run_due_periodic(report)
        return report

    def _run_due_periodic(self, report: TickReport) -> None:
        """Run the periodic tasks that are due. Called between jobs too, so that a backlog of slow jobs (model
        calls) never starves them: a manual learning trigger starts within a job's time, not a backlog's."""
        now = time.monotonic()
        for task in self.periodic:
            if now - task.last < task.every_s:
                continue
            if report.ingest_busy and task.defer_while_busy_s > 0:
                task.due_since = now if task.due_since is None else task.due_since
                if now - task.due_since < task.defer_while_busy_s:
                    continue
            task.last, task.due_since = now, None
            try:
                task.run()
                report.periodic.append(task.name)
            except Exception:
                log.exception("periodic task %s failed", task.name)
