"""uvicorn's HTTP protocol with two guards against slow or greedy clients.

- A header timeout: a connection must complete its first request's headers within `header_timeout_s`, or it
  is closed (uvicorn has no such timer: a half-sent request held a connection for minutes). Later requests on
  a keep-alive connection are bounded by uvicorn's own `timeout_keep_alive`.
- A cap on open connections per client address; connections past it are closed at once.

The guards sit on httptools' protocol (the C parser uvicorn picks by default, and the one the bench's bare
ceiling runs on); h11's pure-Python parser cost ~30 % of the event loop on single-event ingest. Both
protocols create `self.cycle` once a request's headers are complete, which is all the guards look at, so
the pure-Python one is still there when httptools is not installed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

Protocol = type[asyncio.Protocol]


class _Guards:
    """Mixed in before a uvicorn protocol class (which provides `loop`, `client`, `cycle`, `transport`)."""

    header_timeout_s: float = 10.0
    max_per_address: int = 64
    open_by_address: Counter[str] = Counter()  # shared by every connection of this server (one event loop)
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    cycle: Any
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._address: str | None = self.client[0] if self.client else ""
        self._header_timer: asyncio.TimerHandle | None = None
        if self.open_by_address[self._address] >= self.max_per_address:
            self._address = None  # not counted
            transport.close()
            return
        self.open_by_address[self._address] += 1
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None and not self.transport.is_closing():  # no request has started yet
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._header_timer is not None and self.cycle is not None:  # the first request's headers are in
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._address is not None:
            self.open_by_address[self._address] -= 1
            if self.open_by_address[self._address] <= 0:
                del self.open_by_address[self._address]
            self._address = None
        super().connection_lost(exc)  # type: ignore[misc]


def guarded_protocol(*, header_timeout_s: float, max_per_address: int, parser: str = "auto") -> Protocol:
    """A protocol class for `uvicorn.run(http=...)` with its own limits and connection counts.

    `parser`: "httptools", "h11", or "auto" (httptools when installed, as uvicorn's own default).
    """
    if parser not in ("auto", "httptools", "h11"):
        raise ValueError(f"unknown HTTP parser {parser!r}")
    if parser == "httptools" and HttpToolsProtocol is None:
        raise RuntimeError("httptools is not installed")
    base: Protocol = H11Protocol if parser == "h11" or HttpToolsProtocol is None else HttpToolsProtocol
    attrs: dict[str, Any] = {
        "header_timeout_s": header_timeout_s,
        "max_per_address": max_per_address,
        "open_by_address": Counter(),
    }
    return type(f"Guarded{base.__name__}", (_Guards, base), attrs)
