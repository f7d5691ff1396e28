"""A real Redis for the ingest buffer tests: a private `redis-server` with the durable config, else a shared one.

Private (when `redis-server` is on PATH, as on this machine and in CI): a child process on a free port with
`appendonly yes` + `appendfsync always` in the test's directory, so the buffer's durability check passes as it
would in production and the server itself can be SIGKILLed. Otherwise `ERRLEARN_TEST_REDIS_URL` (default
redis://127.0.0.1:6379/0) with the durability check off. Skipped, naming what to install, only when neither
answers.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess  # noqa: TID251 - the tests run a real Redis server
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import create_engine, select

from agent.store.tables import EventRow, table_of
from tests.support import INGEST_KEY, LiveServer, free_port

SHARED_ENV = "ERRLEARN_TEST_REDIS_URL"
EVENTS = table_of(EventRow)
HEADERS = {"Authorization": f"Bearer {INGEST_KEY}"}


@dataclass
class RedisServer:
    url: str
    durable: bool
    """True: our own server with appendfsync always (the buffer runs with durability=auto)."""
    dir: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def durability(self) -> str:
        return "auto" if self.durable else "off"

    def start(self) -> RedisServer:
        assert self.dir is not None
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        cmd += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"]
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()  # the server has its own copy
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on {self.url}; see {log.name}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server"):
        port = free_port()
        (tmp_path / "redis").mkdir()
        server = RedisServer(f"redis://127.0.0.1:{port}/0", True, tmp_path / "redis", port).start()
        try:
            yield server
        finally:
            server.stop()
        return
    url = os.environ.get(SHARED_ENV, "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs Redis: install redis-server (apt-get install redis-server) or set {SHARED_ENV} ({exc})")
    yield RedisServer(url, False)


def unique_stream() -> str:
    return f"errlearn-test:{uuid.uuid4().hex[:12]}"


def drop_stream(url: str, stream: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.delete(stream, stream + ":dead")
    client.close()


@dataclass
class CrashResult:
    acked: int
    missing: int
    changed: int
    doubled: int
    held: int
    """Entries the killed process had read and not acknowledged."""
    claimed: int
    """Entries the next process claimed from it."""


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


def buffered_crash_once(data: Path, rs: RedisServer, database_url: str, *, min_acks: int = 300) -> CrashResult:
    """Send batches to `errlearn serve` with the buffer on, SIGKILL it mid-stream, start another on the same
    database and stream, wait until the stream is drained, and compare what is stored with what was acked."""
    stream = unique_stream()
    env = {
        "ERRLEARN_WORKER": "false",
        "ERRLEARN_INGEST_BUFFER_URL": rs.url,
        "ERRLEARN_INGEST_BUFFER_STREAM": stream,
        "ERRLEARN_INGEST_BUFFER_DURABILITY": rs.durability,
        "ERRLEARN_INGEST_BUFFER_CLAIM_IDLE_S": "1",
        "ERRLEARN_DATABASE_URL": database_url,
    }
    data.mkdir(parents=True, exist_ok=True)
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
        while sum(map(len, acked)) < min_acks and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.random() * 0.3)
        a.kill()  # mid-stream: requests in flight, entries read and not yet acknowledged
        stop.set()
        for t in threads:
            t.join(15)
        every = {eid: msg for part in acked for eid, msg in part.items()}
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
    messages = list(stored.values())
    return CrashResult(
        acked=len(every),
        missing=len(set(every) - set(stored)),
        changed=sum(1 for eid, msg in every.items() if eid in stored and stored[eid] != msg),
        doubled=len(messages) - len(set(messages)),
        held=int(held["pending"]),
        claimed=int(status["claimed_entries"]),
    )
