"""Scale-out for real: 2 API processes + 1 `errlearn worker` on PostgreSQL with a Chroma server.

One API process is SIGKILLed mid-stream; every acknowledged event must be stored, each distinct
error must land in the pattern a single process gives it, and the worker must index every
pattern exactly once.
"""

from __future__ import annotations

import os
import random
import subprocess  # noqa: TID251 - the test runs real server and worker processes
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from agent.store.tables import EventRow, PatternRow, table_of
from tests.support import INGEST_KEY, LiveServer, chroma_process

PG_ENV = "ERRLEARN_TEST_DATABASE_URL"
EVENTS = table_of(EventRow)
PATTERNS = table_of(PatternRow)
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _event(n: int) -> dict[str, Any]:
    """Twelve distinct errors (service x kind), each with varying ids and timings."""
    service = f"svc-{n % 3}"
    kinds = [
        ("TimeoutError", f"call {n} to backend timed out after {n % 97} ms"),
        ("ConnectionRefusedError", f"[Errno 111] connect to 10.0.0.{n % 200}:5432 refused"),
        ("KeyError", f"'user_{n}' missing from session cache"),
        ("ValueError", f"invalid literal for int() with base 10: 'x{n}'"),
    ]
    error_type, message = kinds[(n // 3) % len(kinds)]
    return {"service": service, "error_type": error_type, "error_message": message, "severity": "high"}


def _sender(url: str, stop: threading.Event, acked: dict[str, int], seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {INGEST_KEY}"}, timeout=10) as c:
        while not stop.is_set():
            ns = [rng.randrange(10_000) for _ in range(10)]
            try:
                r = c.post("/errors/batch", json={"errors": [_event(n) for n in ns]})
            except httpx.HTTPError:
                return  # this API process died under us: what it acknowledged is what counts
            if r.status_code == 202:
                for n, res in zip(ns, r.json()["results"], strict=True):
                    acked[res["event_id"]] = n


def _single_process_patterns(data: Path, ns: list[int]) -> dict[int, str]:
    """Event number -> pattern id, from one process on its own SQLite database, events sent in this order."""
    data.mkdir(parents=True)
    server = LiveServer(data / "data", env={"ERRLEARN_WORKER": "false"}).start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {INGEST_KEY}"}) as c:
            out: dict[int, str] = {}
            for start in range(0, len(ns), 100):
                part = ns[start : start + 100]
                r = c.post("/errors/batch", json={"errors": [_event(n) for n in part]})
                assert r.status_code == 202, r.text
                out.update((n, res["pattern_id"]) for n, res in zip(part, r.json()["results"], strict=True))
            return out
    finally:
        server.stop()


def test_two_api_processes_and_a_worker_on_postgres_survive_a_sigkill(tmp_path: Path) -> None:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"needs PostgreSQL: set {PG_ENV}=postgresql+psycopg://user@host:5432/db (CI sets it)")
    if not (Path(sys.executable).parent / "chroma").exists():
        pytest.skip(f"the `chroma` script is not next to {sys.executable}; install chromadb in this venv")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with chroma_process(tmp_path) as chroma:
        env = {
            "ERRLEARN_DATABASE_URL": url,
            "ERRLEARN_CHROMA_URL": chroma,
            "ERRLEARN_WORKER": "false",
            "ERRLEARN_DIAGNOSE_NEW_PATTERNS": "false",
        }
        a = LiveServer(tmp_path / "a" / "data", env=env).start()
        b = LiveServer(tmp_path / "b" / "data", env=env).start()
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("ERRLEARN_")}
        worker_env.update(env, ERRLEARN_DATA_DIR=str(tmp_path / "w"), ERRLEARN_WORKER_POLL_S="0.2")
        worker_log = (tmp_path / "worker.log").open("wb")
        cmd = [sys.executable, "-m", "agent.cli", "worker"]
        worker = subprocess.Popen(cmd, env=worker_env, stdout=worker_log, stderr=subprocess.STDOUT)
        try:
            stop = threading.Event()
            acked: list[dict[str, int]] = [{} for _ in range(4)]
            threads = [
                threading.Thread(target=_sender, args=((a, b)[i % 2].url, stop, acked[i], i), daemon=True)
                for i in range(4)
            ]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while min(len(acked[0]), len(acked[1])) < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(random.random() * 0.5)
            b.kill()  # mid-stream: its senders have requests in flight
            time.sleep(0.5)  # A goes on alone for a moment
            stop.set()
            for t in threads:
                t.join(15)
            every = {eid: n for part in acked for eid, n in part.items()}
            assert len(acked[1]) + len(acked[3]) > 0, "the killed process acknowledged nothing"

            with engine.connect() as conn:
                stored = {eid: pid for eid, pid in conn.execute(select(EVENTS.c.id, EVENTS.c.pattern_id))}
            missing = set(every) - set(stored)
            assert not missing, f"{len(missing)} of {len(every)} acknowledged events are not stored"

            # Pattern ids are content-addressed, so the same error gets the same pattern whichever process,
            # and in whichever order, it arrived: compare event by event with one process on its own.
            ns = sorted(set(every.values()))
            single = _single_process_patterns(tmp_path / "single", ns)
            differ = [(_event(n), stored[eid], single[n]) for eid, n in every.items() if stored[eid] != single[n]]

            status_deadline = time.monotonic() + 180
            headers = {"Authorization": f"Bearer {INGEST_KEY}"}
            while time.monotonic() < status_deadline:
                st = httpx.get(a.url + "/status", headers=headers, timeout=10).json()
                if st["patterns"] and not st["patterns_unindexed"]:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"the worker did not index every pattern: {st}; see {worker_log.name}")
            with engine.connect() as conn:
                versions = conn.execute(select(PATTERNS.c.content_version, PATTERNS.c.indexed_version)).all()
            assert versions and all(c == i == 1 for c, i in versions), f"indexed more than once: {versions}"
            found = httpx.post(
                a.url + "/search", json={"text": "call to backend timed out", "k": 3}, headers=headers, timeout=30
            )
            assert found.status_code == 200, found.text
            assert found.json(), "the Chroma server answers nothing for an indexed error"
            assert not differ, f"{len(differ)} of {len(every)} events grouped unlike one process, e.g. {differ[:3]}"
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
            worker_log.close()
            a.stop()
            b.stop()
            engine.dispose()
