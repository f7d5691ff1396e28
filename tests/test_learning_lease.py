"""A learning run holds a lease with a heartbeat: a run whose holder died (SIGKILL) stops blocking learning
after about a minute, not after `learning_stale_minutes`; a live run's heartbeat keeps it."""

from __future__ import annotations

import datetime as dt
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from agent.guide import runs


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_a_dead_holder_stops_blocking_learning_after_the_lease(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    loop, engine = services.guide.learning, services.core.engine
    assert loop.lease <= dt.timedelta(minutes=1)  # the default: ~a minute, not learning_stale_minutes (60)
    two_minutes_ago = _now() - dt.timedelta(minutes=2)
    dead = runs.start(engine, two_minutes_ago, stale_before=two_minutes_ago - loop.stale_after, trigger="manual")
    assert dead is not None  # its process was SIGKILLed: no heartbeat since
    report = loop.run("manual")
    assert report.status == "finished" and report.run_id != dead.id
    with engine.connect() as conn:
        row = conn.execute(select(runs.RUNS).where(runs.RUNS.c.id == dead.id)).one()
    assert row.status == "failed" and "lease expired" in row.errors


def test_a_live_holder_keeps_its_lease_by_heartbeat(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    loop, engine = services.guide.learning, services.core.engine
    loop.lease = dt.timedelta(seconds=0.4)
    held = runs.start(engine, _now(), stale_before=_now() - loop.stale_after, trigger="manual")
    assert held is not None
    beating = loop._heartbeat(held.id)
    try:
        time.sleep(1.2)  # three leases: only the heartbeat keeps it
        other = runs.start(
            engine, _now(), stale_before=_now() - loop.stale_after, lease_expired_before=_now() - loop.lease
        )
        assert other is None  # still held
    finally:
        beating.set()
    time.sleep(0.6)
    other = runs.start(engine, _now(), stale_before=_now() - loop.stale_after, lease_expired_before=_now() - loop.lease)
    assert other is not None and other.id != held.id  # the holder stopped beating: taken over
