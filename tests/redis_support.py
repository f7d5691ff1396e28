"""A real Redis for the ingest buffer tests: a private `redis-server` with the durable config, else a shared one.

Private (when `redis-server` is on PATH, as on this machine and in CI): a child process on a free port with
`appendonly yes` + `appendfsync always` in the test's directory, so the buffer's durability check passes as it
would in production and the server itself can be SIGKILLed. Otherwise `ERRLEARN_TEST_REDIS_URL` (default
redis://127.0.0.1:6379/0) with the durability check off. Skipped, naming what to install, only when neither
answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # noqa: TID251 - the tests run a real Redis server
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support import free_port

SHARED_ENV = "ERRLEARN_TEST_REDIS_URL"


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
