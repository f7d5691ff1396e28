"""One model client used from several event loops (the worker's thread, uvicorn's loop, the thread pool):
the cause of "<asyncio.locks.Event ...> is bound to a different event loop" on `/ask/stream` while the
worker was diagnosing. A keep-alive connection opened in one loop was reused by another, with its locks
and events; under contention they fail. The loop-safe client keeps one pool per loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agent.llm.http import loop_safe_client
from tests.support import serve_in_thread


async def _port(request: Request) -> PlainTextResponse:
    assert request.client is not None
    return PlainTextResponse(str(request.client.port))  # the client's side of the connection


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(Starlette(routes=[Route("/", _port)]), "port-echo") as base:
        yield base


def _ports_by_loop(client: httpx.AsyncClient, url: str) -> tuple[set[str], set[str]]:
    """Connections used by a long-lived loop in a thread (the worker) and then by another loop (the API)."""
    worker_ports: set[str] = set()
    first_done, api_done = threading.Event(), threading.Event()

    async def worker_side() -> None:
        for _ in range(3):
            worker_ports.add((await client.get(url)).text)
        first_done.set()
        while not api_done.is_set():  # the worker's loop lives on, as the worker thread's does
            await asyncio.sleep(0.01)

    thread = threading.Thread(target=lambda: asyncio.run(worker_side()))
    thread.start()
    assert first_done.wait(10)

    async def api_side() -> set[str]:
        return {(await client.get(url)).text for _ in range(3)}

    try:
        api_ports = asyncio.run(api_side())
    finally:
        api_done.set()
        thread.join(10)
    return worker_ports, api_ports


def test_a_plain_shared_client_hands_one_loops_connection_to_another(url: str) -> None:
    try:
        worker_ports, api_ports = _ports_by_loop(httpx.AsyncClient(timeout=10), url)
    except RuntimeError as exc:  # the reused connection's event fails in the second loop: the bug itself
        assert "different event loop" in str(exc)
        return
    assert worker_ports & api_ports  # or it is seen as what went wrong: the same connection, two loops


def test_the_loop_safe_client_gives_every_loop_its_own_connections(url: str) -> None:
    worker_ports, api_ports = _ports_by_loop(loop_safe_client(10), url)
    assert worker_ports and api_ports and not worker_ports & api_ports
