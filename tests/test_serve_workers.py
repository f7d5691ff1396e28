"""`errlearn serve --workers 2` for real on SQLite: two API processes, one write lock, nothing lost."""

from __future__ import annotations

import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agent.serve_workers import usable_cores
from tests.support import INGEST_KEY, LiveServer


def test_usable_cores_follows_the_affinity_mask() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.slow
def test_two_processes_on_sqlite_store_every_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = LiveServer(data, env={"ERRLEARN_WORKER": "false"}, workers=2).start()
    assert server.proc is not None
    try:
        deadline = time.monotonic() + 60
        while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:  # uvicorn's 2 children
            time.sleep(0.2)
        assert len(_children(server.proc.pid)) >= 2

        def send(i: int) -> list[str]:
            batch = [
                {
                    "service": f"svc-{i % 3}",
                    "error_type": "TimeoutError",
                    "error_message": f"call {i}-{k} timed out",
                    "severity": "high",
                }
                for k in range(20)
            ]
            headers = {"Authorization": f"Bearer {INGEST_KEY}"}
            r = httpx.post(server.url + "/errors/batch", json={"errors": batch}, headers=headers, timeout=60)
            assert r.status_code == 202, r.text
            return [x["event_id"] for x in r.json()["results"]]

        with ThreadPoolExecutor(8) as pool:
            acked = [eid for ids in pool.map(send, range(60)) for eid in ids]
        db = sqlite3.connect(data / "errlearn.db")
        stored = {r[0] for r in db.execute("SELECT id FROM events")}
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        assert len(acked) == 1200 and set(acked) <= stored
        assert len(stored) == 1200
    finally:
        server.stop()
