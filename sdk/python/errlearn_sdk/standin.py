"""A stand-in for the errlearn server's `POST /errors/batch`, for tests and benchmarks of code that embeds the SDK.

It records every request, answers 202 with per-event results like the real server, and can be told to
answer with other statuses (401, 413, 503...) or to be slow. Standard library only; one thread.

    with StandInServer(key="k" * 20) as server:
        client = Client(server.url, "k" * 20, "svc")
        ...
        server.wait_for_events(3)
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from errlearn_sdk import _json


@dataclass
class Recorded:
    """One request as the stand-in saw it."""

    path: str
    headers: dict[str, str]
    status: int
    body: bytes
    events: list[dict[str, Any]] = field(default_factory=list)


Responder = Callable[[list[dict[str, Any]]], tuple[int, dict[str, Any] | None] | None]
"""Given a batch's events, an answer (status, JSON body) to send instead of the normal 202, or None."""


class StandInServer:
    """An HTTP server on 127.0.0.1 that imitates the batch endpoint.

    Args:
        key: the only API key accepted (others get 401).
        accept_gzip: False answers gzip bodies with 400, like an errlearn server without gzip support.
        port: 0 picks a free port; pass a previous `port` to come back on the same address.
        max_events: batches with more events get 413 (the real server's limit is 1000).
        record_events: False keeps only counts (benchmarks: less memory and CPU).
    """

    def __init__(
        self, key: str, port: int = 0, *, max_events: int = 1000, record_events: bool = True, accept_gzip: bool = True
    ) -> None:
        self.key = key
        self.accept_gzip = accept_gzip
        self.max_events = max_events
        self.record_events = record_events
        self.requests: list[Recorded] = []
        self.event_count = 0
        self.body_bytes = 0
        self.scripted: list[int] = []
        """Statuses to answer to the next requests, first to last (then back to normal)."""
        self.responder: Responder | None = None
        self.delay = 0.0
        """Seconds to wait before answering (a slow server)."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="errlearn-standin", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> StandInServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop answering and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event of every accepted batch, in arrival order."""
        with self._lock:
            return [e for r in self.requests if r.status == 202 for e in r.events]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least `count` events were accepted."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.event_count < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes]:
        gzipped = headers.get("content-encoding") == "gzip"
        body = gzip.decompress(raw) if gzipped and self.accept_gzip else raw
        answer: dict[str, Any] | None
        if gzipped and not self.accept_gzip:
            status, answer = 400, {"detail": "request body is not valid UTF-8"}  # what the real server says today
        else:
            status, answer = self._decide(path, headers, body)
        with self._changed:
            record = Recorded(path, headers, status, body if self.record_events else b"")
            self.body_bytes += len(raw)
            if status == 202 and answer is not None:
                accepted = int(answer["accepted"])
                self.event_count += accepted
                if self.record_events:
                    record.events = _json.loads(body)["errors"]
            self.requests.append(record)
            self._changed.notify_all()
        return status, _json.dumps(answer) if answer is not None else b""

    def _decide(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        if path != "/errors/batch":
            return 404, {"detail": "not found"}
        if headers.get("authorization") != f"Bearer {self.key}":
            return 401, {"detail": "bad key"}
        with self._lock:
            scripted = self.scripted.pop(0) if self.scripted else None
        if scripted is not None:
            return scripted, {"detail": f"scripted {scripted}"}
        try:
            events = _json.loads(body)["errors"]
            assert isinstance(events, list)
        except Exception:
            return 400, {"detail": "not a batch"}
        if len(events) > self.max_events:
            return 413, {"detail": "too many events"}
        if self.responder is not None:
            custom = self.responder(events)
            if custom is not None:
                return custom
        results = [
            {"index": i, "status": "accepted", "event_id": f"e{i}", "pattern_id": "p"} for i in range(len(events))
        ]
        return 202, {"accepted": len(events), "rejected": 0, "results": results}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real server

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if server.delay:
                    time.sleep(server.delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = server._answer(self.path, headers, raw)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test and benchmark output clean

        return Handler
