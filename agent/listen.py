"""The listening sockets of `errlearn serve --workers N`: one SO_REUSEPORT socket per API process.

uvicorn's supervisor binds one socket and every API process accepts on it. Whichever process the kernel
wakes first takes every connection waiting (its accept loop drains the queue), so a handful of keep-alive
clients (SDKs, a load balancer, wrk's 8 connections) all land on one process and the others idle: measured
here, 8 of 8 connections on one of 2 processes, three runs out of three.

With SO_REUSEPORT each API process listens on a socket of its own, bound to the same address, and the
kernel spreads new connections over them by a hash of the client's address and port. The supervisor binds
one such socket too (so a port in use fails at once, and port 0 resolves to one port) but never listens on
it: a socket that does not listen gets no connections. It pickles as its address, so each API process it
starts (multiprocessing's spawn) unpickles a new socket of its own; when a process dies its socket goes with
it, and new connections go to the others. Where the platform has no SO_REUSEPORT, `bind` returns a plain
socket and the processes share it, as uvicorn does.
"""

from __future__ import annotations

import socket
from typing import Any

REUSE_PORT = getattr(socket, "SO_REUSEPORT", None)


class ReusePortSocket(socket.socket):
    """A bound SO_REUSEPORT socket that pickles as "bind another one to this address"."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reuse_port_socket, (int(self.family), self.getsockname()[:2]))


def _reuse_port_socket(family: int, address: tuple[str, int]) -> socket.socket:
    sock = ReusePortSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, REUSE_PORT, 1)  # type: ignore[arg-type]
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def bind(host: str, port: int) -> socket.socket:
    """The supervisor's socket for `host:port` (an OSError names what went wrong, e.g. the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if REUSE_PORT is None:  # pragma: no cover - not Linux/BSD
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        return sock
    return _reuse_port_socket(int(family), (host, port))
