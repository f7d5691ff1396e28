"""The worker yields to ingest: while events arrive it indexes in small, paced batches; idle, flat out."""

from __future__ import annotations

import itertools
import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from agent.runtime import Runtime
from agent.worker import Periodic, TickReport, Worker


class FakeRetrieval:
    """A backlog that never runs dry; each call costs `cost_s` of wall time."""

    def __init__(self, cost_s: float = 0.0) -> None:
        self.cost_s = cost_s
        self.limits: list[int] = []
        self.spent = 0.0

    def index_pending(self, limit: int = 256) -> int:
        started = time.perf_counter()
        self.limits.append(limit)
        if self.cost_s:
            time.sleep(self.cost_s)
        self.spent += time.perf_counter() - started
        return limit

    def index_knowledge(self) -> int:
        return 0


def make_worker(retrieval: FakeRetrieval, activity: Any = None, **kw: Any) -> Worker:
    runtime = SimpleNamespace(retrieval=lambda: retrieval, core=SimpleNamespace())
    return Worker(cast(Runtime, runtime), activity=activity, **kw)


def test_idle_ingest_means_full_batches() -> None:
    retrieval = FakeRetrieval()
    worker = make_worker(retrieval, activity=lambda: 7, busy_share=0.05)
    first, second = worker.tick(), worker.tick()
    assert retrieval.limits == [256, 256]
    assert not first.ingest_busy and not second.ingest_busy
    assert worker.pause_after(second) == 0.0, "a backlog with no ingest is worked off without pausing"


def test_arriving_events_mean_small_batches_and_a_pause() -> None:
    retrieval = FakeRetrieval()
    counter = itertools.count()
    worker = make_worker(retrieval, activity=lambda: next(counter), busy_share=0.05, busy_batch=16, poll_s=1.0)
    worker.tick()  # the first look only learns the counter
    report = worker.tick()
    assert report.ingest_busy
    assert retrieval.limits == [256, 16]
    report.work_s = 0.02
    assert worker.pause_after(report) == pytest.approx(0.02 * 19)
    report.work_s = 5.0  # one slow batch does not park the worker for minutes
    assert worker.pause_after(report) == 10.0


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (TickReport(), 1.0),  # nothing done: poll again later
        (TickReport(indexed=3, work_s=0.1), 0.0),  # more may be waiting, no ingest to yield to
        (TickReport(jobs_done=1, work_s=0.5, ingest_busy=True), pytest.approx(9.5)),  # a model call is paced too
    ],
)
def test_pause_rules(report: TickReport, expected: float) -> None:
    assert make_worker(FakeRetrieval(), busy_share=0.05, poll_s=1.0).pause_after(report) == expected


def test_share_one_never_holds_back() -> None:
    worker = make_worker(FakeRetrieval(), busy_share=1.0)
    assert worker.pause_after(TickReport(indexed=5, work_s=0.5, ingest_busy=True)) == 0.0


def test_without_an_activity_signal_ingest_never_looks_busy() -> None:
    worker = make_worker(FakeRetrieval())
    assert not worker.ingest_busy() and not worker.ingest_busy()


def test_the_running_loop_keeps_to_its_share_while_events_arrive() -> None:
    retrieval = FakeRetrieval(cost_s=0.01)
    counter = itertools.count()
    lock = threading.Lock()

    def activity() -> int:
        with lock:
            return next(counter)

    worker = make_worker(retrieval, activity=activity, busy_share=0.1, poll_s=0.05)
    started = time.perf_counter()
    worker.start()
    try:
        time.sleep(1.5)
    finally:
        worker.stop()
    elapsed = time.perf_counter() - started
    assert len(retrieval.limits) >= 3, "paced, but still making progress"
    # each paced batch is followed by a rest nine times its own length: the share cannot exceed 10 %
    assert retrieval.spent / elapsed < 0.12, (retrieval.spent, elapsed, retrieval.limits)


def test_the_running_loop_runs_flat_out_when_ingest_is_idle() -> None:
    retrieval = FakeRetrieval(cost_s=0.01)
    worker = make_worker(retrieval, activity=lambda: 0, busy_share=0.1, poll_s=0.05)
    started = time.perf_counter()
    worker.start()
    try:
        time.sleep(1.0)
    finally:
        worker.stop()
    assert retrieval.spent / (time.perf_counter() - started) > 0.5, "no events arriving: no pacing"


def test_deferrable_periodic_tasks_wait_out_an_ingest_burst_but_not_for_ever(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("agent.worker.time.monotonic", lambda: clock[0])
    ran: list[str] = []
    committed = [0]

    def activity() -> int:
        committed[0] += 100  # events keep arriving between two looks
        return committed[0]

    worker = make_worker(FakeRetrieval(), activity=activity, index=False)
    worker.periodic = [
        Periodic("learning", 30, lambda: ran.append("learning"), defer_while_busy_s=600),
        Periodic("recovery", 30, lambda: ran.append("recovery")),
    ]
    worker.tick()  # the second look in the tick sees events arriving
    assert ran == ["recovery"], "learning waits while events arrive; recovery never does"
    clock[0] += 31
    worker.tick()
    clock[0] += 300
    worker.tick()
    assert ran == ["recovery"] * 3
    clock[0] += 301  # due for over 600 s now: it runs even though the burst goes on
    worker.tick()
    assert ran[-2:] == ["learning", "recovery"]
    ran.clear()
    clock[0] += 31
    worker.activity = lambda: committed[0]  # the burst is over
    worker.tick()
    assert ran == ["learning", "recovery"]


def test_one_job_per_tick_while_events_arrive(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count()
    done: list[str] = []
    claimed = iter(range(100))

    class Jobs:
        @staticmethod
        def claim(*_a: Any) -> Any:
            return SimpleNamespace(kind="diagnose", key=str(next(claimed)), attempts=1)

        @staticmethod
        def complete(*_a: Any) -> None:
            done.append("x")

    runtime = SimpleNamespace(core=SimpleNamespace(engine=None, clock=lambda: 0))
    worker = Worker(
        cast(Runtime, runtime), handlers={"diagnose": lambda _job: None}, index=False, activity=lambda: next(counter)
    )
    monkeypatch.setattr("agent.worker.jobs", Jobs)
    worker.tick(max_jobs=10)  # first look: not busy
    assert len(done) == 10
    worker.tick(max_jobs=10)
    assert len(done) == 11, "while events arrive, one job (one model call) per tick, then a rest"


def test_the_built_worker_sees_ingest_through_the_real_writer(settings: Any) -> None:
    """Wiring: the worker `serve` builds watches this process's event writer."""
    from agent.bootstrap import build_services
    from agent.ingest.normalize import EventCreate

    services = build_services(settings).start(worker=False)
    try:
        worker = services.worker
        assert worker.busy_share == settings.worker_busy_share
        assert not worker.ingest_busy(), "nothing arrived yet"
        services.core.ingest_sync(
            [EventCreate(service="shop", error_type="KeyError", error_message="'sku'", severity="low")]
        )
        assert worker.ingest_busy()
        assert services.core.status()["patterns_unindexed"] == 1, "ingest does not embed"
    finally:
        services.close()
