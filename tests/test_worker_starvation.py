"""A backlog of slow jobs (model calls) does not starve periodic tasks, and a manual learning trigger starts
within seconds even while events arrive."""

from __future__ import annotations

import datetime as dt
import time

from fastapi.testclient import TestClient

from agent.guide import runs
from agent.store import jobs
from agent.worker import Periodic, Worker
from tests.conftest import admin_headers


def test_periodic_tasks_run_between_slow_jobs(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    engine = services.core.engine
    with engine.begin() as conn:
        for i in range(6):
            jobs.enqueue(conn, "slow", f"k{i}", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    ran: list[float] = []
    worker = Worker(
        services.runtime,
        handlers={"slow": lambda _job: time.sleep(0.2)},
        periodic=[Periodic("probe", 0.05, lambda: ran.append(time.monotonic()))],
        index=False,
    )
    report = worker.tick()
    assert report.jobs_done == 6
    assert len(ran) >= 5, ran  # once per job, not once per tick (a tick of model calls lasts minutes)


def test_a_manual_learning_trigger_starts_on_the_next_check_even_during_an_ingest_burst(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    worker = services.worker
    manual = next(t for t in worker.periodic if t.name == "learning-manual")
    assert manual.every_s <= 5 and manual.defer_while_busy_s == 0
    worker.index = False
    worker.ingest_busy = lambda: True  # type: ignore[method-assign]  # events keep arriving
    worker.tick()  # the first checks run now; the periodic learning is deferred by the burst
    r = client.post("/trigger-learning", headers=admin_headers())
    assert r.status_code == 202
    assert runs.oldest_queued(services.core.engine) is not None
    manual.last = float("-inf")  # the next check is due (every 2 s)
    report = worker.tick()
    assert "learning-manual" in report.periodic
    assert runs.oldest_queued(services.core.engine) is None  # started (and, with no patterns, finished)
