"""errlearn's own logs: secrets are scrubbed before any handler writes them; each request has an id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from agent.api.request_id import SAFE_ID, RequestIdMiddleware, accept_or_generate
from agent.logs import ScrubFilter, make_handler, request_id

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PASSWORD = "hunter2-correct-horse-battery"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, dict[str, io.StringIO]]]:
    """A logger with a plain and a JSON handler from `make_handler`, each writing to its own buffer."""
    streams = {"plain": io.StringIO(), "json": io.StringIO()}
    logger = logging.getLogger("errlearn-test-logging")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers[:] = [
        make_handler(json_format=False, stream=streams["plain"]),
        make_handler(json_format=True, stream=streams["json"]),
    ]
    yield logger, streams
    logger.handlers.clear()


def test_secrets_in_messages_args_and_tracebacks_are_scrubbed(captured) -> None:  # type: ignore[no-untyped-def]
    logger, streams = captured
    logger.warning("connecting with password=%s", PASSWORD)
    logger.info("aws key %s and token %s", AWS_KEY, GITHUB_TOKEN)
    logger.error(f"db url postgresql://app:{PASSWORD}@db:5432/app failed")  # pre-formatted on purpose
    try:
        raise ValueError(f"login failed: Authorization: Bearer {GITHUB_TOKEN}")
    except ValueError:
        logger.exception("request failed")
    for kind, stream in streams.items():
        out = stream.getvalue()
        for secret in (AWS_KEY, GITHUB_TOKEN, PASSWORD):
            assert secret not in out, f"{kind} output leaks {secret[:6]}…"
        assert out.count("[REDACTED:") >= 5, out
        assert "request failed" in out and "ValueError" in out  # the useful part stays
    lines = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    assert len(lines) == 4 and "Traceback" in lines[-1]["exc"] and "[REDACTED:" in lines[-1]["exc"]


def test_scrub_filter_keeps_clean_records_readable() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "stored %d events for %s", (3, "checkout"), None)
    assert ScrubFilter().filter(record)
    assert record.getMessage() == "stored 3 events for checkout"


def test_log_records_carry_the_request_id(captured) -> None:  # type: ignore[no-untyped-def]
    logger, streams = captured

    async def endpoint(request: Request) -> PlainTextResponse:
        logger.info("handling %s", request.url.path)
        return PlainTextResponse(request.state.request_id)

    app = RequestIdMiddleware(Starlette(routes=[Route("/x", endpoint)]))
    with TestClient(app) as c:
        r = c.get("/x", headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42" and r.text == "trace-42"
    assert "[trace-42] handling /x" in streams["plain"].getvalue()
    assert json.loads(streams["json"].getvalue().splitlines()[0])["request_id"] == "trace-42"
    assert request_id.get() is None  # reset after the request
    logger.info("outside a request")
    assert "[-] outside a request" in streams["plain"].getvalue()


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        (b"abc-123", True),
        (b"0f8c2e4b-8a5e-4c39-9a77-8f1f4c2d9e10", True),
        (b"svc.checkout:req_17", True),
        (b"a" * 64, True),
        (b"a" * 65, False),  # too long
        (b"has space", False),
        (b'quote"inject', False),
        (b"line\r\nX-Evil: 1", False),
        (b"-leading-dash", False),
        (b"", False),
        ("caf\u00e9".encode(), False),
    ],
)
def test_incoming_request_ids_are_accepted_only_when_safe(incoming: bytes, kept: bool) -> None:
    rid = accept_or_generate(incoming)
    assert (rid == incoming.decode("utf-8", "replace")) is kept
    assert SAFE_ID.fullmatch(rid) and len(rid) <= 64


def test_request_id_round_trip_through_the_app(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/health", headers={"X-Request-ID": "lb-7f3a9c"})
    assert r.headers["X-Request-ID"] == "lb-7f3a9c"
    generated = [client.get("/health").headers["X-Request-ID"] for _ in range(2)]
    assert generated[0] != generated[1] and all(len(g) == 32 for g in generated)
    unsafe = client.get("/health", headers={"X-Request-ID": "x" * 100})
    assert unsafe.headers["X-Request-ID"] != "x" * 100 and len(unsafe.headers["X-Request-ID"]) == 32
    # error answers carry it too: an auth failure and a body over the limit
    assert client.get("/status", headers={"Authorization": "", "X-Request-ID": "e-1"}).headers["X-Request-ID"] == "e-1"
    big = client.post("/errors", content=b"x" * (2 * 1024 * 1024), headers={"X-Request-ID": "e-2"})
    assert big.status_code == 413 and big.headers["X-Request-ID"] == "e-2"
