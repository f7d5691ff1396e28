"""An httpx client for model providers that several event loops may share.

The worker calls the model from its own thread and event loop (``run_sync``), the API from uvicorn's loop
(``/ask/stream``) and from the thread pool (``/ask``). One connection pool shared by them fails with
"<asyncio.locks.Event ...> is bound to a different event loop" as soon as two loops use it at once: httpcore's
pool primitives belong to the loop that first awaited them. This transport keeps one pool per running loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

import httpx


class LoopLocalTransport(httpx.AsyncBaseTransport):
    """Delegates to one ``httpx.AsyncHTTPTransport`` per event loop (dropped with its loop)."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncHTTPTransport] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _current(self) -> httpx.AsyncHTTPTransport:
        loop = asyncio.get_running_loop()
        with self._lock:
            transport = self._by_loop.get(loop)
            if transport is None:
                transport = self._by_loop[loop] = httpx.AsyncHTTPTransport()
            return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._current().handle_async_request(request)

    async def aclose(self) -> None:
        with self._lock:
            transport = self._by_loop.pop(asyncio.get_running_loop(), None)
        if transport is not None:
            await transport.aclose()


def loop_safe_client(timeout_s: float) -> httpx.AsyncClient:
    """The client every OpenAI-compatible provider gets (pydantic-ai's default is one cached, shared pool)."""
    return httpx.AsyncClient(transport=LoopLocalTransport(), timeout=httpx.Timeout(timeout_s, connect=5.0))
