"""The Redis Streams ingest buffer, run against a real Redis (tests/redis_support.py) and a real database.

Acknowledged events are stored exactly once; an entry stored by a consumer that died before its XACK is
claimed by another and not stored twice; past its bound the stream makes ingest answer 503 + Retry-After;
no secret reaches Redis; Redis itself SIGKILLed right after the acks keeps them (appendfsync always).
The SIGKILL of an `errlearn serve` process mid-stream is in tests/test_stream_buffer_crash.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import delete, func, select

from agent.api.app import create_app
from agent.ingest.normalize import EventCreate
from agent.service import Core
from agent.settings import Settings
from agent.store.stream_buffer import BufferConfigError, StreamBuffer
from agent.store.tables import EventRow, IdempotencyKeyRow, table_of
from tests.redis_support import RedisServer, drop_stream, redis_server, unique_stream
from tests.support import ADMIN_KEY, INGEST_KEY, serve_in_thread

EVENTS = table_of(EventRow)
HEADERS = {"Authorization": f"Bearer {INGEST_KEY}"}


@pytest.fixture
def rs(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
def stream(rs: RedisServer) -> Iterator[str]:
    name = unique_stream()
    yield name
    if rs.proc is None or rs.proc.poll() is None:
        drop_stream(rs.url, name)


def _settings(tmp_path: Path, rs: RedisServer, stream: str, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=extra.pop("database_url"),
        api_keys=[INGEST_KEY],  # type: ignore[list-item]
        admin_key=ADMIN_KEY,  # type: ignore[arg-type]
        worker=False,
        ingest_buffer_url=rs.url,
        ingest_buffer_stream=stream,
        ingest_buffer_durability=rs.durability,  # type: ignore[arg-type]
        **extra,
    )


def _event(tag: str, **extra: Any) -> dict[str, Any]:
    return {
        "service": "api",
        "error_type": "TimeoutError",
        "error_message": f"call {tag} timed out",
        "severity": "high",
        **extra,
    }


def _stored(core: Core) -> dict[str, str]:
    with core.engine.connect() as conn:
        return dict(conn.execute(select(EVENTS.c.id, EVENTS.c.error_message)).all())


def _consume_all(settings: Settings) -> dict[str, str]:
    """Open a consuming core on the same stream, let it drain the stream, and return what is stored."""
    consumer = Core(settings.model_copy(update={"ingest_buffer_consume": True})).open(consume=True)
    try:
        assert consumer.buffer is not None
        _drained(consumer.buffer)
        return _stored(consumer)
    finally:
        consumer.close()


def _drained(buffer: StreamBuffer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = buffer.status()
        if st["length"] == 0 and st["pending"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the stream was not drained: {buffer.status()}")


def test_acknowledged_events_are_stored_exactly_once(
    tmp_path: Path, rs: RedisServer, stream: str, database_url: str
) -> None:
    app = create_app(_settings(tmp_path, rs, stream, database_url=database_url))
    acked: dict[str, str] = {}
    with serve_in_thread(app, "buffer") as url, httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        for i in range(20):
            r = http.post("/errors", json=_event(f"single-{i}"))
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "accepted"
            acked[r.json()["event_id"]] = f"call single-{i} timed out"
        for b in range(10):
            r = http.post("/errors/batch", json={"errors": [_event(f"batch-{b}-{k}") for k in range(10)]})
            assert r.status_code == 202, r.text
            for k, res in enumerate(r.json()["results"]):
                acked[res["event_id"]] = f"call batch-{b}-{k} timed out"
        core: Core = app.state.core
        assert core.buffer is not None
        _drained(core.buffer)
        status = http.get("/status").json()["ingest_buffer"]
        scraped = http.get("/metrics").text
        stored = _stored(core)
    assert len(acked) == 120
    assert stored == acked, "stored events differ from the acknowledged ones (lost, doubled or renamed)"
    assert status["enabled"] and status["length"] == 0 and status["pending"] == 0
    assert status["durability"] == ("appendfsync-always" if rs.durable else "off")
    assert "errlearn_ingest_buffer_lag_entries 0.0" in scraped


def test_entry_of_a_dead_consumer_is_claimed_and_not_stored_twice(
    tmp_path: Path, rs: RedisServer, stream: str, database_url: str
) -> None:
    settings = _settings(tmp_path, rs, stream, database_url=database_url, ingest_buffer_claim_idle_s=0.3)
    producer = Core(settings).open(consume=False)  # adds to the stream, stores nothing itself
    client = redis.Redis.from_url(rs.url)
    try:
        # 450 entries: more than one claim (200 entries) can take, so the claims go on from their cursor
        bodies = [EventCreate.model_validate(_event(f"dead-{i}")) for i in range(900)]

        async def produce() -> list[str]:
            return [s.event_id for i in range(0, 900, 2) for s in await producer.ingest(bodies[i : i + 2])]

        acked = asyncio.run(produce())
        # The consumer that dies: it reads every entry, stores some of them, and is gone before any XACK.
        got: Any = client.xreadgroup("errlearn", "dead-consumer", {stream: ">"}, count=1000)
        entries = got[0][1]
        assert len(entries) == 450
        assert producer.buffer is not None
        assert len(producer.buffer.store(entries[:5])) == 5
        assert len(_stored(producer)) == 10
        pending: Any = client.xpending(stream, "errlearn")
        assert pending["pending"] == 450 and pending["consumers"][0]["name"] == b"dead-consumer"

        taker = Core(settings).open(consume=True)  # a second consumer in the group
        try:
            assert taker.buffer is not None
            _drained(taker.buffer)
            claimed = taker.buffer.claimed_entries
        finally:
            taker.close()
        stored = _stored(producer)
    finally:
        producer.close()
        client.close()
    assert claimed == 450, "the second consumer did not take over the dead one's entries"
    assert sorted(stored) == sorted(acked), "an entry stored before its consumer died was stored again (or lost)"


def test_stream_over_its_bound_answers_503_and_holds_no_secret(
    tmp_path: Path, rs: RedisServer, stream: str, database_url: str
) -> None:
    settings = _settings(
        tmp_path,
        rs,
        stream,
        database_url=database_url,
        ingest_buffer_max_entries=5,
        ingest_buffer_consume=False,
        backpressure_retry_after_s=3,
    )
    app = create_app(settings)
    secret = "password=hunter2-very-secret"
    codes: list[int] = []
    acked: list[str] = []
    with serve_in_thread(app, "buffer-full") as url, httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        for i in range(8):
            r = http.post("/errors", json=_event(f"full-{i}", context=f"login with {secret}"))
            codes.append(r.status_code)
            if r.status_code == 202:
                acked.append(r.json()["event_id"])
            else:
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == "3"
                assert r.json()["error"]["code"] == "overloaded"
                assert "ingest buffer" in r.json()["error"]["message"]
        status = http.get("/status").json()
        scraped = http.get("/metrics").text
    raw: Any = redis.Redis.from_url(rs.url).xrange(stream)
    assert codes == [202] * 5 + [503] * 3
    assert status["ingest_buffer"]["active"] and status["ingest_buffer"]["length"] == 5
    assert status["ingest_buffer"]["refused_requests"] + status["backpressure"]["refused_requests"] >= 3
    assert "errlearn_ingest_buffer_lag_entries 5.0" in scraped
    assert len(raw) == 5 and all(b"hunter2" not in v for _, fields in raw for v in fields.values())

    assert sorted(_consume_all(settings)) == sorted(acked)


def test_acked_entries_survive_a_sigkill_of_redis(
    tmp_path: Path, rs: RedisServer, stream: str, database_url: str
) -> None:
    if not rs.durable:
        pytest.skip("needs redis-server on PATH to run and SIGKILL a private Redis (apt-get install redis-server)")
    settings = _settings(tmp_path, rs, stream, database_url=database_url, ingest_buffer_consume=False)
    producer = Core(settings).open()
    try:
        bodies = [EventCreate.model_validate(_event(f"rk-{i}")) for i in range(50)]
        acked = [asyncio.run(producer.ingest([b]))[0].event_id for b in bodies]
    finally:
        producer.close()
    rs.kill()  # SIGKILL right after the last acknowledgement: no clean shutdown, no final fsync
    rs.start()
    assert sorted(_consume_all(settings)) == sorted(acked)


def test_a_redis_without_fsync_is_refused_at_start(
    tmp_path: Path, rs: RedisServer, stream: str, database_url: str
) -> None:
    if not rs.durable:
        pytest.skip("needs redis-server on PATH to reconfigure a private Redis (apt-get install redis-server)")
    redis.Redis.from_url(rs.url).config_set("appendfsync", "everysec")
    settings = _settings(tmp_path, rs, stream, database_url=database_url)
    core = Core(settings)
    with pytest.raises(BufferConfigError, match="appendfsync always"):
        core.open()
    core.close()


def test_unreachable_redis_is_a_503_not_an_ack(tmp_path: Path, rs: RedisServer, stream: str, database_url: str) -> None:
    if not rs.durable:
        pytest.skip("needs redis-server on PATH to stop a private Redis (apt-get install redis-server)")
    app = create_app(_settings(tmp_path, rs, stream, database_url=database_url, ingest_buffer_consume=False))
    with serve_in_thread(app, "buffer-down") as url, httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        assert http.post("/errors", json=_event("up")).status_code == 202
        rs.kill()
        r = http.post("/errors", json=_event("down"))
        with app.state.core.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert n == 0


@pytest.mark.parametrize("client_key", [None, "client-batch-0001"])
def test_an_entry_written_twice_is_stored_once_and_acknowledged(
    tmp_path: Path, rs: RedisServer, stream: str, database_url: str, client_key: str | None
) -> None:
    """Two consumers write the same entry (a claim while its first consumer was only slow), or one whose client
    key the writer has pruned since (a day later): the second write fails on the event ids, and the entry is
    acknowledged because its events are found stored, instead of staying pending forever."""
    settings = _settings(tmp_path, rs, stream, database_url=database_url)
    core = Core(settings).open(consume=False)
    client = redis.Redis.from_url(rs.url)
    try:
        bodies = [EventCreate.model_validate(_event(f"twice-{i}")) for i in range(3)]
        acked = [s.event_id for s in asyncio.run(core.ingest(bodies, idempotency_key=client_key))]
        got: Any = client.xreadgroup("errlearn", "slow-consumer", {stream: ">"}, count=10)
        entries = got[0][1]
        assert core.buffer is not None
        assert core.buffer.store(entries) == [entries[0][0]]
        with core.engine.begin() as conn:  # a day later: the writer has pruned the client's key
            conn.execute(delete(table_of(IdempotencyKeyRow)))
        assert core.buffer.store(entries) == [entries[0][0]], "a stored entry would stay pending forever"
        assert core.buffer.store(entries, claimed=True) == [entries[0][0]]
        stored = _stored(core)
        with core.engine.connect() as conn:
            keys = conn.execute(select(func.count()).select_from(table_of(IdempotencyKeyRow))).scalar_one()
    finally:
        core.close()
        client.close()
    assert sorted(stored) == sorted(acked)
    assert keys == 0, "without a client key the buffer needs no idempotency rows (the event ids dedupe)"


def test_a_client_retry_with_its_idempotency_key_is_stored_once(
    tmp_path: Path, rs: RedisServer, stream: str, database_url: str
) -> None:
    app = create_app(_settings(tmp_path, rs, stream, database_url=database_url))
    batch = {"errors": [_event(f"retry-{k}") for k in range(5)]}
    with serve_in_thread(app, "buffer-retry") as url, httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        first = http.post("/errors/batch", json=batch, headers={"Idempotency-Key": "sdk-batch-42"})
        again = http.post("/errors/batch", json=batch, headers={"Idempotency-Key": "sdk-batch-42"})
        assert first.status_code == again.status_code == 202
        _drained(app.state.core.buffer)
        stored = _stored(app.state.core)
    assert sorted(stored) == sorted(r["event_id"] for r in first.json()["results"])
