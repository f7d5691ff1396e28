"""SIGKILL of an `errlearn serve` process mid-stream with the Redis ingest buffer on loses no acknowledged event.

A real server process (tests.support.LiveServer) acknowledges batches into a real Redis stream while its
consumer stores them; it is SIGKILLed under load. A second server on the same database claims what the dead
consumer held (XAUTOCLAIM) and stores it: every acknowledged event ends up stored, and none twice.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import create_engine, select

from agent.store.tables import EventRow, table_of
from tests.redis_support import drop_stream, redis_server, unique_stream
from tests.support import INGEST_KEY, LiveServer

EVENTS = table_of(EventRow)
HEADERS = {"Authorization": f"Bearer {INGEST_KEY}"}


def _sender(url: str, stop: threading.Event, acked: dict[str, str], sender: int) -> None:
    n = 0
    with httpx.Client(base_url=url, headers=HEADERS, timeout=10) as http:
        while not stop.is_set():
            tokens = [f"s{sender}-{n + k}" for k in range(10)]
            n += 10
            events = [
                {
                    "service": "api",
                    "error_type": "TimeoutError",
                    "error_message": f"call {t} timed out",
                    "severity": "high",
                }
                for t in tokens
            ]
            try:
                r = http.post("/errors/batch", json={"errors": events})
            except httpx.HTTPError:
                return  # the server died under us: what it acknowledged is what counts
            if r.status_code == 202:
                for t, res in zip(tokens, r.json()["results"], strict=True):
                    acked[res["event_id"]] = f"call {t} timed out"


@pytest.mark.slow
def test_sigkill_of_a_serving_process_loses_no_acknowledged_event(tmp_path: Path, database_url: str) -> None:
    with redis_server(tmp_path) as rs:
        stream = unique_stream()
        env = {
            "ERRLEARN_WORKER": "false",
            "ERRLEARN_INGEST_BUFFER_URL": rs.url,
            "ERRLEARN_INGEST_BUFFER_STREAM": stream,
            "ERRLEARN_INGEST_BUFFER_DURABILITY": rs.durability,
            "ERRLEARN_INGEST_BUFFER_CLAIM_IDLE_S": "1",
            "ERRLEARN_DATABASE_URL": database_url,
        }
        data = tmp_path / "data"
        client = redis.Redis.from_url(rs.url)
        a = LiveServer(data, env=env).start()
        b: LiveServer | None = None
        try:
            stop = threading.Event()
            acked: list[dict[str, str]] = [{} for _ in range(3)]
            threads = [threading.Thread(target=_sender, args=(a.url, stop, acked[i], i), daemon=True) for i in range(3)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 60
            while sum(map(len, acked)) < 300 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(random.random() * 0.3)
            a.kill()  # mid-stream: requests in flight, entries read and not yet acknowledged
            stop.set()
            for t in threads:
                t.join(15)
            every = {eid: msg for part in acked for eid, msg in part.items()}
            assert len(every) >= 300, "the server acknowledged too little before the kill"
            held: Any = client.xpending(stream, "errlearn")

            b = LiveServer(data, env=env).start()  # a new consumer in the same group, on the same database
            status: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = httpx.get(b.url + "/status", headers=HEADERS, timeout=10).json()["ingest_buffer"]
                if status["length"] == 0 and status["pending"] == 0:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"the stream was not drained after the restart: {status}")
        finally:
            if b is not None:
                b.stop()
            a.kill()
            drop_stream(rs.url, stream)
            client.close()

    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(EVENTS.c.id, EVENTS.c.error_message)).all())
    engine.dispose()
    missing = set(every) - set(stored)
    assert not missing, f"{len(missing)} of {len(every)} acknowledged events are not stored"
    assert all(stored[eid] == msg for eid, msg in every.items())
    messages = list(stored.values())
    assert len(messages) == len(set(messages)), "an event was stored twice"
    assert status["claimed_entries"] >= int(held["pending"]), "the dead consumer's entries were not claimed"
