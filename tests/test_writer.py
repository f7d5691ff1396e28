"""The writer's hand-off to the event loop: every awaiting request is answered, one wake-up per commit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from agent.store.db import make_engine, migrate
from agent.store.writer import EventWriter
from tests.support import writer_event


def _event(i: int) -> dict[str, Any]:
    return writer_event(message=f"call {i} timed out", severity="high")


def _writer(tmp_path: Path) -> EventWriter:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    writer = EventWriter(engine)
    writer.start()
    return writer


def test_concurrent_requests_are_all_answered_with_fewer_wake_ups_than_requests(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    wake_ups = 0

    async def main() -> list[list[Any]]:
        nonlocal wake_ups
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal wake_ups
            wake_ups += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        return await asyncio.gather(*(writer.write([_event(i)]) for i in range(200)))

    try:
        results = asyncio.run(main())
    finally:
        writer.stop()
    assert len({s[0].event_id for s in results}) == 200
    assert 1 <= wake_ups <= writer.batches < 200  # one per commit at most, and commits took many requests each


def test_a_request_that_went_away_does_not_stop_the_writer(tmp_path: Path) -> None:
    writer = _writer(tmp_path)

    async def main() -> int:
        gone = asyncio.ensure_future(writer.write([_event(0)]))
        await asyncio.sleep(0)  # submitted
        gone.cancel()
        later = await asyncio.gather(*(writer.write([_event(i)]) for i in range(1, 50)))
        return len(later)

    try:
        assert asyncio.run(asyncio.wait_for(main(), 30)) == 49
        assert writer.committed_events == 50  # the cancelled request's event was still stored
    finally:
        writer.stop()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_writer_keeps_its_connection_and_replaces_it_when_the_database_drops_it(database_url: str) -> None:
    """The writer holds one connection across commits (no pool check-out and pre-ping per commit); when the
    server ends it (a PostgreSQL restart, an admin's pg_terminate_backend), the next commit retries on a
    new connection instead of failing the requests in it."""
    engine = make_engine(database_url)
    migrate(engine)
    writer = EventWriter(engine)
    writer.start()
    try:
        writer.write_sync([_event(1)])
        with engine.connect() as admin:
            pids = (
                admin.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                .scalars()
                .all()
            )
            assert pids  # the writer's connection stayed open after its commit
            for pid in pids:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        stored = writer.write_sync([_event(2)])
        assert len(stored) == 1
    finally:
        writer.stop()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 2
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_lost_during_the_events_copy_is_retried_whole(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events go in by COPY on the driver's own connection; when the server ends that connection just
    before it, the transaction is retried on a new one and the request is answered, with its event stored once."""
    from agent.store.batch_sql import BatchSQL

    engine = make_engine(database_url)
    migrate(engine)
    copy = BatchSQL._copy_event_rows
    killed: list[int] = []

    def terminate_first(self: BatchSQL, conn: Any, rows: Any) -> None:
        if not killed:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)
        copy(self, conn, rows)

    monkeypatch.setattr(BatchSQL, "_copy_event_rows", terminate_first)
    writer = EventWriter(engine)
    writer.start()
    try:
        stored = writer.write_sync([_event(1)])
    finally:
        writer.stop()
    assert killed and len(stored) == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM events")).scalars().all() == [stored[0].event_id]
    engine.dispose()
