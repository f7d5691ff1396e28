"""Run errlearn for real: a server process on a free loopback port, and the SIGKILL crash routine."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import socket
import sqlite3
import subprocess  # noqa: TID251 - tests start real server processes
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from agent.store.writer import EventWriter

INGEST_KEY = "test-ingest-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, name: str, timeout: float = 30) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a daemon thread on a free loopback port; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the server did not start within {timeout:.0f} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@dataclass
class LiveServer:
    """`errlearn serve` as a child process. Start, kill -9, restart on the same data dir."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    env: Mapping[str, str] = field(default_factory=dict)
    workers: int = 1
    """`serve --workers`: 1 keeps one process (the one SIGKILL hits); more runs uvicorn's supervisor."""
    proc: subprocess.Popen[bytes] | None = None
    own_keys: bool = False
    """True: configure no keys, so the server uses (or writes) `<data_dir>/keys.json` as a new user's would."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> LiveServer:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("ERRLEARN_") or k == "ERRLEARN_TEST_DATABASE_URL"
        }
        env.update(
            {
                "ERRLEARN_DATA_DIR": str(self.data_dir),
                "ERRLEARN_API_KEYS": INGEST_KEY,
                "ERRLEARN_ADMIN_KEY": ADMIN_KEY,
                "ERRLEARN_LOG_LEVEL": "WARNING",
            }
        )
        if self.own_keys:
            del env["ERRLEARN_API_KEYS"], env["ERRLEARN_ADMIN_KEY"]
        env.update(self.env)
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log.close()
                tail = Path(log.name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"server exited with {self.proc.returncode}; its log ends:\n{tail}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()  # not left running behind the caller's back
        log.close()
        raise TimeoutError("server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _sender(url: str, stop: threading.Event, acked: list[str], batch: bool, seed: int) -> None:
    n = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {INGEST_KEY}"}, timeout=10) as c:
        while not stop.is_set():
            n += 1
            ev = {
                "service": f"svc-{seed}",
                "error_type": "TimeoutError",
                "error_message": f"call {n} to backend {seed} timed out after {n % 50} ms",
                "severity": "medium",
            }
            try:
                if batch:
                    r = c.post("/errors/batch", json={"errors": [ev] * 20})
                    if r.status_code == 202:
                        acked.extend(x["event_id"] for x in r.json()["results"] if x["status"] == "accepted")
                else:
                    r = c.post("/errors", json=ev)
                    if r.status_code == 202:
                        acked.append(r.json()["event_id"])
            except httpx.HTTPError:
                return  # the server died under us: what was acknowledged so far is what counts


def crash_once(data_dir: Path, *, run_s: float = 0.8, senders: int = 4, min_acks: int = 40) -> tuple[int, int]:
    """Send continuously, SIGKILL the server mid-stream, restart, check every acknowledged event.

    The kill comes `run_s` after at least `min_acks` events were acknowledged (or after 30 s), so a
    slow machine still kills a server that is busy committing. Returns (acknowledged, missing).
    """
    server = LiveServer(data_dir).start()
    stop = threading.Event()
    acked: list[list[str]] = [[] for _ in range(senders)]
    threads = [
        threading.Thread(target=_sender, args=(server.url, stop, acked[i], i % 2 == 0, i), daemon=True)
        for i in range(senders)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while sum(len(a) for a in acked) < min_acks and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(run_s * random.random())
    server.kill()  # mid-stream: requests are in flight
    stop.set()
    for t in threads:
        t.join(15)
    ids = [i for a in acked for i in a]
    server = LiveServer(data_dir, port=server.port).start()
    try:
        db = sqlite3.connect(data_dir / "errlearn.db")
        present: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = f"SELECT id FROM events WHERE id IN ({','.join('?' * len(chunk))})"
            present.update(r[0] for r in db.execute(q, chunk))
        db.close()
    finally:
        server.stop()
    return len(ids), len(set(ids) - present)


@contextmanager
def chroma_process(data: Path, timeout: float = 30) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free loopback port; yields its URL."""
    chroma = Path(sys.executable).parent / "chroma"
    port = free_port()
    log = (data / "chroma.log").open("wb")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    cmd = [str(chroma), "run", "--path", str(data / "chroma"), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {proc.returncode}; see {data / 'chroma.log'}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not answer in {timeout:.0f} s; see {data / 'chroma.log'}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def running_writer(url: str, fold_every_s: float = 3600) -> Iterator[tuple[Engine, EventWriter]]:
    """A migrated database and a started `EventWriter` on it (no fold unless asked, by default); (engine, writer)."""
    from agent.store.db import make_engine, migrate
    from agent.store.writer import EventWriter

    engine = make_engine(url)
    migrate(engine)
    writer = EventWriter(engine, fold_every_s=fold_every_s)
    writer.start()
    try:
        yield engine, writer
    finally:
        writer.stop()
        engine.dispose()


def writer_event(
    error_type: str = "TimeoutError",
    message: str = "the call timed out",
    severity: str = "medium",
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """An event as the API hands it to the event writer (validated, scrubbed, bounded)."""
    now = at or dt.datetime.now(dt.UTC)
    return {
        "service": "svc",
        "context": "",
        "error_type": error_type,
        "error_message": message,
        "severity": severity,
        "kind": "runtime",
        "stack_trace": None,
        "stack_truncated": False,
        "additional_data": {},
        "timestamp": now,
        "received_at": now,
    }


def tcp_sockets(port: int, state: str) -> list[int]:
    """Inodes of this machine's IPv4 sockets on local `port` in `state` ("0A" listening, "01" established),
    from /proc/net/tcp (Linux)."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == state:
            out.append(int(f[9]))
    return out
