"""Slow and greedy clients: half-sent headers are cut after the header timeout, and one address cannot hold
more than its share of connections. The real uvicorn server with the guarded protocol, over real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agent.api.protocol import guarded_protocol
from tests.support import free_port

HEADER_TIMEOUT_S = 1.0
CAP = 4


async def _ok(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture(params=["httptools", "h11"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    p = free_port()
    proto = guarded_protocol(header_timeout_s=HEADER_TIMEOUT_S, max_per_address=CAP, parser=request.param)
    config = uvicorn.Config(
        Starlette(routes=[Route("/", _ok)]), host="127.0.0.1", port=p, http=proto, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield p
    server.should_exit = True
    thread.join(10)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_half_sent_headers_are_cut_after_the_header_timeout(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        assert _closed_within(sock, HEADER_TIMEOUT_S + 3)
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_a_complete_request_is_answered_and_not_cut(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        time.sleep(HEADER_TIMEOUT_S / 2)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert b"200 OK" in sock.recv(1024)


def test_connections_past_the_per_address_cap_are_closed(port: int) -> None:
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(CAP)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            assert _closed_within(extra, 2)
        for sock in held:  # the ones within the cap still work
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            assert b"200 OK" in sock.recv(1024)
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", port)) as again:  # freed slots are counted back
        again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        again.settimeout(5)
        assert b"200 OK" in again.recv(1024)


def test_auto_picks_the_c_parser_and_unknown_parsers_are_refused() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert issubclass(guarded_protocol(header_timeout_s=1, max_per_address=1), HttpToolsProtocol)
    with pytest.raises(ValueError, match="unknown HTTP parser"):
        guarded_protocol(header_timeout_s=1, max_per_address=1, parser="nope")
