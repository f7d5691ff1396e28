"""Backpressure: a writer slowed on purpose makes ingest answer 503 + Retry-After; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from agent.api.app import create_app
from agent.settings import Settings
from agent.store.tables import EventRow, table_of
from tests.support import ADMIN_KEY, INGEST_KEY, serve_in_thread

LIMIT = 60
BATCH = 20
CLIENTS = 24
REQUESTS_EACH = 6


def _event(client: int, i: int) -> dict[str, Any]:
    return {"service": "api", "error_type": "TimeoutError", "error_message": f"c{client} r{i}", "severity": "high"}


async def _load(url: str) -> tuple[list[str], list[httpx.Response]]:
    acked: list[str] = []
    refused: list[httpx.Response] = []
    headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:

        async def one(c: int) -> None:
            for i in range(REQUESTS_EACH):
                batch = {"errors": [_event(c, i * BATCH + k) for k in range(BATCH)]}
                r = await http.post("/errors/batch", json=batch)
                if r.status_code == 202:
                    acked.extend(x["event_id"] for x in r.json()["results"])
                else:
                    refused.append(r)

        await asyncio.gather(*(one(c) for c in range(CLIENTS)))
    return acked, refused


def test_slow_writer_gets_503_with_retry_after_and_loses_nothing(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        api_keys=[INGEST_KEY],  # type: ignore[list-item]
        admin_key=ADMIN_KEY,  # type: ignore[arg-type]
        worker=False,
        writer_max_queued_events=LIMIT,
        backpressure_retry_after_s=2,
    )
    app = create_app(settings)
    with serve_in_thread(app, "backpressure") as url:
        writer = app.state.core.writer
        commit = writer._commit
        peak = 0

        def slow_commit(batch: Any) -> Any:  # the slowed writer; also records the deepest queue it saw
            nonlocal peak
            peak = max(peak, writer.queued_events + sum(len(w.events) for w in batch))
            time.sleep(0.05)
            return commit(batch)

        writer._commit = slow_commit
        acked, refused = asyncio.run(_load(url))
        status = httpx.get(url + "/status", headers={"Authorization": f"Bearer {INGEST_KEY}"}).json()
        scraped = httpx.get(url + "/metrics").text
        engine = app.state.core.engine
        with engine.connect() as conn:
            ids = set(conn.execute(select(table_of(EventRow).c.id)).scalars())
            stored = conn.execute(select(func.count()).select_from(table_of(EventRow))).scalar_one()

    assert refused, "the slowed writer never made the API push back"
    assert acked, "nothing got through"
    for r in refused:
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2"
        assert r.json()["error"]["code"] == "overloaded"
    assert set(acked) <= ids, "an acknowledged event is missing"
    assert stored == len(acked), "a refused request stored something"
    assert peak <= LIMIT + BATCH, f"the writer's queue reached {peak} events (bound {LIMIT} + one request)"
    assert status["backpressure"]["refused_requests"] == len(refused)
    assert status["backpressure"]["limit"] == LIMIT
    assert f"errlearn_ingest_backpressure_total {float(len(refused))}" in scraped
