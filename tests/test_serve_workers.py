"""`errlearn serve --workers 2` for real on SQLite: two API processes, one write lock, nothing lost."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agent.serve_workers import usable_cores
from tests.support import INGEST_KEY, LiveServer, tcp_sockets


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


def _cut_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` within `seconds` (reading whatever it still sends before)."""
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(4096) == b"":
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


@pytest.mark.slow
def test_every_api_process_guards_against_slow_and_greedy_clients(tmp_path: Path) -> None:
    """`serve --workers 2`: each child cuts half-sent headers and caps connections per address, as one process."""
    data = tmp_path / "data"
    data.mkdir()
    cap = 2
    env = {
        "ERRLEARN_WORKER": "false",
        "ERRLEARN_HTTP_HEADER_TIMEOUT_S": "1",
        "ERRLEARN_HTTP_MAX_CONNECTIONS_PER_ADDRESS": str(cap),
        "ERRLEARN_HTTP_KEEP_ALIVE_S": "1",
    }
    server = LiveServer(data, env=env, workers=2).start()
    assert server.proc is not None
    try:
        deadline = time.monotonic() + 60
        while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_children(server.proc.pid)) >= 2
        time.sleep(1.5)  # the health probes' keep-alive connections are gone (keep-alive 1 s)
        # Greedy: 8 connections from one address; each process keeps at most `cap` of those it accepts.
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]
        try:
            time.sleep(0.3)
            cut = [s for s in socks if _cut_within(s, 0.2)]
            assert len(cut) >= 8 - 2 * cap  # without the guard none is cut before the header timeout
            # Slow: the kept ones never send a request; the header timeout (1 s) cuts them too, in every process.
            kept = [s for s in socks if s not in cut]
            assert kept and all(_cut_within(s, 4) for s in kept)
        finally:
            for s in socks:
                s.close()
        # A keep-alive connection idle past ERRLEARN_HTTP_KEEP_ALIVE_S is closed (uvicorn's default is 5 s).
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
            started = time.monotonic()
            assert _cut_within(sock, 4)
            assert time.monotonic() - started < 3
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
    monkeypatch.setattr(agent.api.app, "create_app", lambda settings, **kw: FastAPI())
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


def _socket_owners(pids: list[int]) -> dict[int, int]:
    """socket inode -> the pid (of `pids`) holding it."""
    owners: dict[int, int] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


@pytest.mark.slow
def test_each_api_process_listens_on_its_own_socket_and_connections_reach_both(tmp_path: Path) -> None:
    """SO_REUSEPORT (`agent.listen`): with one shared socket, the first process to wake took every waiting
    connection, so a few keep-alive clients all landed on one process."""
    data = tmp_path / "data"
    data.mkdir()
    server = LiveServer(data, env={"ERRLEARN_WORKER": "false"}, workers=2).start()
    assert server.proc is not None
    port = server.port
    clients: list[httpx.Client] = []
    try:
        deadline = time.monotonic() + 90
        listening: set[int] = set()
        while time.monotonic() < deadline:
            children = _children(server.proc.pid)
            owners = _socket_owners(children)
            listening = {owners[i] for i in tcp_sockets(port, "0A") if i in owners}
            if len(listening) == 2:
                break
            time.sleep(0.2)
        assert len(listening) == 2, "each API process listens on a socket of its own"
        supervisor = _socket_owners([server.proc.pid])
        # The supervisor's own socket is bound, not listening: a listening one would take connections nobody serves.
        assert not [i for i in tcp_sockets(port, "0A") if i in supervisor]
        for _ in range(32):  # 32 keep-alive connections: all on one of 2 processes by chance is 2 in 2**32
            client = httpx.Client(base_url=server.url, timeout=30)
            assert client.get("/health").status_code == 200
            clients.append(client)
        owners = _socket_owners(_children(server.proc.pid))
        served = [owners[i] for i in tcp_sockets(port, "01") if i in owners]
        assert len(served) == 32
        assert set(served) == listening, f"connections per process: {[served.count(p) for p in listening]}"
    finally:
        for client in clients:
            client.close()
        server.stop()
