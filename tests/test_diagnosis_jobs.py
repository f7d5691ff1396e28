"""Diagnosis jobs outlive a model outage, and the diagnosis endpoint and page say where the job stands."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from agent.store import jobs
from agent.worker import Worker
from tests.test_api_ingest import event
from tests.test_ui_support import login

JOBS = jobs.JOBS


def _pattern(client: TestClient) -> str:
    r = client.post("/errors", json=event())
    assert r.status_code == 202, r.text
    return str(client.get(f"/events/{r.json()['event_id']}").json()["pattern_id"])


def _job(engine: Engine, pid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(JOBS).where(JOBS.c.kind == "diagnose", JOBS.c.key == pid)).one()


def _make_due(engine: Engine, pid: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(JOBS).where(JOBS.c.key == pid).values(run_after=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )


def test_an_outage_never_makes_a_job_give_up_and_its_backoff_is_capped(client: TestClient) -> None:
    engine = client.app.state.core.engine  # type: ignore[attr-defined]
    pid = _pattern(client)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    waits = []
    for _ in range(20):  # far past max_attempts (5)
        _make_due(engine, pid)
        job = jobs.claim(engine, ["diagnose"], now)
        assert job is not None and job.key == pid
        assert jobs.fail(engine, job, now, "model unavailable: ConnectError", outage=True)
        row = _job(engine, pid)
        assert row.status == "queued"
        waits.append((row.run_after - now).total_seconds())
    assert max(waits) <= jobs.OUTAGE_BACKOFF_CAP_S
    assert min(waits[-5:]) >= jobs.OUTAGE_BACKOFF_CAP_S / 2  # grown to the cap (full jitter: 0.5-1.0 of it)
    # A job that fails for its own reasons gives up once past max_attempts.
    _make_due(engine, pid)
    job = jobs.claim(engine, ["diagnose"], now)
    assert job is not None
    assert not jobs.fail(engine, job, now, "ValueError: bad output")
    assert _job(engine, pid).status == "failed"


def test_the_worker_retries_a_model_outage_and_the_endpoint_shows_the_state(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    engine = services.core.engine
    pid = _pattern(client)

    r = client.get(f"/patterns/{pid}/diagnosis")
    assert r.status_code == 404 and r.json()["error"]["code"] == "diagnosis_queued", r.text
    assert "not tried yet" in r.json()["error"]["message"]

    def down(_job: jobs.Job) -> None:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    worker = Worker(services.runtime, handlers={"diagnose": down}, index=False)
    for _ in range(7):  # more tries than max_attempts
        _make_due(engine, pid)
        assert worker.tick().jobs_failed == 1
    row = _job(engine, pid)
    assert row.status == "queued" and row.attempts == 7
    assert row.last_error.startswith("model unavailable: ConnectError")

    err = client.get(f"/patterns/{pid}/diagnosis").json()["error"]
    assert err["code"] == "diagnosis_queued"
    assert "after 7 attempts" in err["message"] and "Connection refused" in err["message"]

    client.follow_redirects = False
    login(client)
    page = client.get(f"/ui/patterns/{pid}").text
    assert "Diagnosis job" in page and "queued" in page and "Connection refused" in page

    def bug(_job: jobs.Job) -> None:
        raise ValueError("the model's output does not parse")

    worker = Worker(services.runtime, handlers={"diagnose": bug}, index=False)
    for _ in range(10):
        _make_due(engine, pid)
        worker.tick()
    err = client.get(f"/patterns/{pid}/diagnosis").json()["error"]
    assert err["code"] == "diagnosis_failed" and "does not parse" in err["message"]
