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


@pytest.mark.parametrize(("chroma_url", "expected"), [(None, 1), ("http://127.0.0.1:8000", 2)])
def test_serve_runs_one_process_with_embedded_chroma_and_the_cores_with_a_chroma_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chroma_url: str | None, expected: int
) -> None:
    import uvicorn
    from fastapi import FastAPI
    from typer.testing import CliRunner

    import agent.api.app
    import agent.serve_workers
    from agent.cli import app
    from agent.settings import get_settings

    started: list[int] = []
    monkeypatch.setattr(agent.serve_workers, "usable_cores", lambda: 2)
    monkeypatch.setattr(agent.serve_workers, "serve_many", lambda settings, **kw: started.append(kw["workers"]))
    monkeypatch.setattr(agent.api.app, "create_app", lambda settings, keys: FastAPI())
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(1))
    monkeypatch.setenv("ERRLEARN_DATA_DIR", str(tmp_path))
    if chroma_url:
        monkeypatch.setenv("ERRLEARN_CHROMA_URL", chroma_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--port", "18091"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert started == [expected]
