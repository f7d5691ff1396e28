"""Sentry-compatible intake: event conversion, envelope protocol, and the real sentry-sdk against errlearn."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import gzip
import json
import logging
import random
import sys
import traceback
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.api.routes.sentry import router
from agent.domain import Severity
from agent.ingest.sentry import (
    MAX_EXCEPTIONS,
    MAX_FRAMES,
    MAX_STACK_CHARS,
    SentryEventError,
    event_from_sentry,
    event_id_of,
    parse_timestamp,
    service_of,
    severity_of,
)
from agent.ingest.stacktrace import parse_stack, stack_fingerprint
from tests.conftest import INGEST_KEY
from tests.support import serve_in_thread

DATA = Path(__file__).parent / "data" / "sentry"
NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
AUTH = {"X-Sentry-Auth": f"Sentry sentry_key={INGEST_KEY}, sentry_version=7, sentry_client=sentry.test/1.0"}
BEARER = {"Authorization": f"Bearer {INGEST_KEY}"}
SECRETS = ("s3cr3tsessionvalue42", "4111111111111111", "alice@example.com", "203.0.113.77", "sk_live_9a8b7c6d5e4f")


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def convert(event: Any, **kw: Any) -> Any:
    return event_from_sentry(event, project_id=kw.pop("project_id", "3"), now=NOW, **kw)


def _brotli() -> Any:
    return pytest.importorskip("brotli", reason="Content-Encoding br needs the brotli package: pip install brotli")


# --------------------------------------------------------------------------- conversion: python, java, javascript


def test_python_event_becomes_a_traceback_with_its_cause() -> None:
    body = convert(fixture("python"))
    assert body.service == "billing"  # from release "billing@3.4.1"
    assert body.error_type == "billing.errors.PaymentGatewayError"
    assert body.error_message == "charge ch_19af could not be captured: gateway unreachable"
    assert body.severity is Severity.high
    assert body.context == "POST /api/charges/{charge_id}/capture"
    assert body.timestamp == dt.datetime(2026, 11, 20, 9, 41, 7, 512345, tzinfo=dt.UTC)
    stack = body.stack_trace
    assert stack.startswith("Traceback (most recent call last):\n")
    assert '  File "/srv/app/billing/gateway.py", line 42, in charge\n' in stack
    assert "The above exception was the direct cause of the following exception:" in stack
    parsed = parse_stack(stack)
    assert parsed.language == "python"
    assert parsed.exception_type == "billing.errors.PaymentGatewayError"
    assert parsed.causes == ("ConnectionRefusedError",)
    # innermost first, root cause first: the socket call, then httpx, then our gateway
    assert [(f.function, f.in_app) for f in parsed.frames[:3]] == [
        ("create_connection", False),
        ("post", False),
        ("charge", True),
    ]
    assert stack_fingerprint(parsed) is not None


def test_python_event_keeps_a_bounded_subset_and_drops_personal_data() -> None:
    body = convert(fixture("python"))
    extra = body.additional_data
    assert extra == {
        "source": "sentry",
        "sentry_event_id": "9f3c2a1b7d4e4f0a8b6c5d4e3f2a1b0c",
        "platform": "python",
        "release": "billing@3.4.1",
        "environment": "production",
        "server_name": "billing-7f9c6d-x2k4p",
        "logger": "django.request",
        "sdk": {"name": "sentry.python.django", "version": "2.19.0"},
        "os": {"name": "Linux", "version": "6.1.0-18-amd64"},
        "runtime": {"name": "CPython", "version": "3.12.3"},
        "tags": {"region": "eu-west-1", "customer_tier": "gold"},
        "request_method": "POST",
        "mechanism": "django",
        "handled": False,
    }
    dumped = body.model_dump_json()
    for secret in (*SECRETS, "access_token", "SELECT * FROM cards", "sys.argv"):
        assert secret not in dumped


def test_java_event_becomes_a_java_trace_with_caused_by() -> None:
    body = convert(fixture("java"))
    assert body.service == "orders-service"
    assert body.error_type == "java.lang.IllegalStateException"
    assert body.error_message.startswith("could not load order 88123\n")
    assert body.context == "GET /orders/{id}"
    lines = body.stack_trace.splitlines()
    assert lines[0] == "java.lang.IllegalStateException: could not load order 88123 …"
    assert lines[1] == "\tat com.example.orders.service.OrderService.lambda$load$0(OrderService.java:75)"
    assert "\tat jdk.internal.reflect.DirectMethodHandleAccessor.invoke0(Native Method)" in lines
    assert any(line.startswith("Caused by: java.sql.SQLTransientConnectionException: HikariPool-1") for line in lines)
    parsed = parse_stack(body.stack_trace)
    assert parsed.language == "java"
    assert parsed.exception_type == "java.lang.IllegalStateException"
    assert parsed.causes == ("java.sql.SQLTransientConnectionException",)
    assert (parsed.frames[0].module, parsed.frames[0].function) == (
        "com.zaxxer.hikari.pool.HikariPool",
        "createTimeoutException",
    )
    assert any(f.module == "com.example.orders.repo.OrderRepository" and f.in_app for f in parsed.frames)


def test_node_event_becomes_a_v8_trace() -> None:
    body = convert(fixture("node"))
    assert body.service == "web-api"  # the `service` tag (tags given as [key, value] pairs)
    assert body.error_type == "TypeError"
    assert body.context == "GET /users/:id/profile"
    assert body.timestamp == dt.datetime(2026, 11, 20, 10, 3, 32, 347000, tzinfo=dt.UTC)
    lines = body.stack_trace.splitlines()
    assert lines[:2] == [
        "TypeError: Cannot read properties of undefined (reading 'avatarUrl')",
        "    at renderProfile (/usr/src/app/dist/services/profile.js:17:31)",
    ]
    assert "Caused by: Error: connect ECONNREFUSED 10.0.3.7:6379" in lines
    parsed = parse_stack(body.stack_trace)
    assert parsed.language == "javascript"
    assert parsed.exception_type == "TypeError" and parsed.causes == ("Error",)
    # without the cause, the reported error's own frames: app code in-app, express and node internals not
    alone = copy.deepcopy(fixture("node"))
    alone["exception"]["values"] = alone["exception"]["values"][-1:]
    frames = parse_stack(convert(alone).stack_trace).frames
    assert [(f.function, f.in_app) for f in frames] == [
        ("renderProfile", True),
        ("getProfile", True),
        ("Layer.handle", False),
        ("process.processTicksAndRejections", False),
    ]
    assert "session=abc123" not in body.model_dump_json()


def test_browser_javascript_event() -> None:
    event = {
        "platform": "javascript",
        "level": "error",
        "request": {"url": "https://shop.example.com/cart?coupon=SPRING&token=abc", "headers": {"Referer": "x"}},
        "exception": {
            "values": [
                {
                    "type": "ReferenceError",
                    "value": "applyCoupon is not defined",
                    "stacktrace": {
                        "frames": [
                            {"filename": "https://cdn.example.com/static/js/vendor.4f2a9c1e.js", "function": "?",
                             "lineno": 2, "colno": 88211, "in_app": False},
                            {"filename": "https://cdn.example.com/static/js/main.8c1d2e3f.js", "function": "onSubmit",
                             "lineno": 1, "colno": 5120, "in_app": True},
                        ]
                    },
                }
            ]
        },
    }  # fmt: skip
    body = convert(event)
    assert body.service == "sentry-3" and body.context == "/cart"
    assert body.stack_trace.splitlines() == [
        "ReferenceError: applyCoupon is not defined",
        "    at onSubmit (https://cdn.example.com/static/js/main.8c1d2e3f.js:1:5120)",
        "    at <anonymous> (https://cdn.example.com/static/js/vendor.4f2a9c1e.js:2:88211)",
    ]
    parsed = parse_stack(body.stack_trace)
    assert parsed.language == "javascript" and parsed.frames[0].function == "onSubmit"


def test_dotnet_event_becomes_a_dotnet_trace() -> None:
    event = {
        "platform": "csharp",
        "exception": {
            "values": [
                {"type": "System.TimeoutException", "value": "The operation has timed out.",
                 "module": "System.Private.CoreLib, Version=8.0.0.0", "stacktrace": {"frames": [
                     {"function": "ReadAsync", "module": "Npgsql.Internal.NpgsqlReadBuffer", "in_app": False}]}},
                {"type": "System.InvalidOperationException", "value": "Could not reserve stock",
                 "module": "System.Private.CoreLib, Version=8.0.0.0", "stacktrace": {"frames": [
                     {"function": "Invoke", "module": "Microsoft.AspNetCore.Routing.EndpointMiddleware", "in_app": False},
                     {"function": "Reserve(Int32 sku)", "module": "Shop.Inventory.StockService",
                      "abs_path": "/src/Shop/Inventory/StockService.cs", "lineno": 88, "in_app": True}]}},
            ]
        },
    }  # fmt: skip
    body = convert(event)
    assert body.error_type == "System.InvalidOperationException"  # an assembly is not a namespace prefix
    parsed = parse_stack(body.stack_trace)
    assert parsed.language == "dotnet"
    assert parsed.exception_type == "System.InvalidOperationException"
    assert parsed.causes == ("System.TimeoutException",)
    assert [(f.module, f.function) for f in parsed.frames] == [
        ("Npgsql.Internal.NpgsqlReadBuffer", "ReadAsync"),
        ("Shop.Inventory.StockService", "Reserve"),
        ("Microsoft.AspNetCore.Routing.EndpointMiddleware", "Invoke"),
    ]
    assert "in /src/Shop/Inventory/StockService.cs:line 88" in body.stack_trace


def test_other_platforms_use_a_generic_trace_the_parser_reads() -> None:
    event = {
        "platform": "php",
        "exception": {"values": [{"type": "RuntimeException", "value": "Queue full", "stacktrace": {"frames": [
            {"abs_path": "/var/www/vendor/laravel/framework/src/Illuminate/Pipeline/Pipeline.php", "function": "handle",
             "lineno": 180},
            {"abs_path": "/var/www/app/Jobs/SendInvoice.php", "function": "App\\Jobs\\SendInvoice::handle",
             "lineno": 31}]}}]},
    }  # fmt: skip
    parsed = parse_stack(convert(event).stack_trace)
    assert parsed.exception_type == "RuntimeException"
    assert [(f.module, f.in_app) for f in parsed.frames] == [
        ("Jobs/SendInvoice.php", True),
        ("laravel/framework/src/Illuminate/Pipeline/Pipeline.php", False),
    ]


def test_sdk_event_groups_like_the_python_traceback_text() -> None:
    """An exception reported through Sentry and the same traceback sent as text to POST /errors group alike."""
    from sentry_sdk.utils import event_from_exception

    def load(d: dict[str, int]) -> int:
        return d["missing"]

    try:
        try:
            load({})
        except KeyError as exc:
            raise RuntimeError("lookup failed") from exc
    except RuntimeError:
        event, _ = event_from_exception(sys.exc_info())
        text = traceback.format_exc()
    event["platform"] = "python"
    rendered = convert(event).stack_trace
    assert stack_fingerprint(parse_stack(rendered)) == stack_fingerprint(parse_stack(text))


# --------------------------------------------------------------------------- conversion: messages and fields


def test_log_message_event() -> None:
    event = {
        "level": "warning",
        "logger": "checkout.payments",
        "logentry": {"message": "card %s declined", "params": ["visa"], "formatted": "card visa declined"},
        "platform": "python",
    }
    body = convert(event)
    assert (body.error_type, body.error_message, body.severity) == ("checkout.payments", "card visa declined", "medium")
    assert body.stack_trace is None
    assert convert({"message": "disk almost full"}).error_type == "Message"
    assert convert({"message": {"formatted": "legacy form"}}).error_message == "legacy form"
    assert convert({}).error_message == "<unlabeled event>"


def test_message_with_attached_stacktrace_uses_the_thread_stack() -> None:
    event = {
        "platform": "python",
        "logger": "jobs",
        "message": "retrying",
        "threads": {"values": [{"current": True, "stacktrace": {"frames": [
            {"abs_path": "/srv/app/jobs/runner.py", "function": "run", "lineno": 10},
            {"abs_path": "/srv/app/jobs/retry.py", "function": "backoff", "lineno": 22}]}}]},
    }  # fmt: skip
    parsed = parse_stack(convert(event).stack_trace)
    assert parsed.language == "python" and [f.function for f in parsed.frames] == ["backoff", "run"]


def test_exception_with_logged_message_and_empty_value() -> None:
    event = {
        "logentry": {"formatted": "Payment failed for order 7"},
        "exception": {
            "values": [{"type": "ValueError", "value": "", "mechanism": {"type": "logging", "handled": True}}]
        },
    }
    body = convert(event)
    assert body.error_message == "ValueError"
    assert body.additional_data["log_message"] == "Payment failed for order 7"
    assert body.additional_data["handled"] is True
    assert body.stack_trace is None


def test_legacy_interface_names_and_list_forms() -> None:
    legacy = {"sentry.interfaces.Exception": {"values": [{"type": "KeyError", "value": "'id'"}]}}
    assert convert(legacy).error_type == "KeyError"
    bare_list = {"exception": [{"type": "OSError", "module": "builtins", "value": "boom"}]}
    assert convert(bare_list).error_type == "OSError"  # Python prints builtins without a prefix
    single = {"exception": {"type": "Oops", "module": "__main__", "value": "x"}}
    assert convert(single).error_type == "Oops"


@pytest.mark.parametrize(
    ("level", "severity"),
    [("fatal", "critical"), ("error", "high"), ("warning", "medium"), ("info", "low"), ("debug", "low"),
     ("ERROR", "high"), (None, "high"), ("bogus", "high"), (3, "high")],
)  # fmt: skip
def test_level_maps_to_severity(level: Any, severity: str) -> None:
    assert severity_of(level) == severity


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1795169012.5, dt.datetime(2026, 11, 20, 10, 3, 32, 500000, tzinfo=dt.UTC)),
        (1795169012, dt.datetime(2026, 11, 20, 10, 3, 32, tzinfo=dt.UTC)),
        ("1795169012.5", dt.datetime(2026, 11, 20, 10, 3, 32, 500000, tzinfo=dt.UTC)),
        ("2026-11-20T10:03:32.5Z", dt.datetime(2026, 11, 20, 10, 3, 32, 500000, tzinfo=dt.UTC)),
        ("2026-11-20T10:03:32", dt.datetime(2026, 11, 20, 10, 3, 32, tzinfo=dt.UTC)),
        ("2026-11-20T12:03:32+02:00", dt.datetime(2026, 11, 20, 10, 3, 32, tzinfo=dt.UTC)),
        ("2030-01-01T00:00:00Z", None),  # client clock years ahead: timed on arrival instead
        (0, None),
        (1e30, None),
        ("yesterday", None),
        (True, None),
        (None, None),
        ([1], None),
    ],
)
def test_timestamps(value: Any, expected: dt.datetime | None) -> None:
    assert parse_timestamp(value, NOW) == expected


def test_service_resolution_order() -> None:
    event = {"tags": {"service": "tagged"}, "release": "pkg@1.0"}
    assert service_of(event, dsn_service="from-dsn", project_id="9") == "tagged"
    assert service_of({"release": "pkg@1.0"}, dsn_service="from-dsn", project_id="9") == "from-dsn"
    assert service_of({"release": "pkg@1.0"}, dsn_service=None, project_id="9") == "pkg"
    assert service_of({"release": "3f2a9c1"}, dsn_service=None, project_id="9") == "sentry-9"
    assert service_of({"tags": {"service": "not valid!"}}, dsn_service=None, project_id="9") == "sentry-9"


def test_event_ids() -> None:
    assert event_id_of({"event_id": "9F3C2A1B-7D4E-4F0A-8B6C-5D4E3F2A1B0C"}) == "9f3c2a1b7d4e4f0a8b6c5d4e3f2a1b0c"
    assert event_id_of({"event_id": "nope"}, "0" * 32) == "0" * 32
    generated = event_id_of({})
    assert len(generated) == 32 and int(generated, 16) >= 0


def test_context_never_keeps_the_query_string() -> None:
    event = {"request": {"url": "https://x.example/a/b?password=hunter2#frag", "method": "delete"}}
    assert convert(event).context == "DELETE /a/b"
    assert convert({"culprit": "views.js in updateMember"}).context == "views.js in updateMember"


def test_rendering_is_bounded() -> None:
    frame = {"abs_path": "/srv/app/deep.py", "function": "recurse", "lineno": 3, "context_line": "return recurse(n)"}
    deep = convert({"platform": "python", "exception": {"values": [{"type": "RecursionError", "stacktrace": {
        "frames": [frame] * 1000}}]}}).stack_trace  # fmt: skip
    assert deep.count('File "/srv/app/deep.py"') == MAX_FRAMES
    huge = {**frame, "context_line": "x" * 5000, "function": "f" * 5000}
    values = [{"type": f"E{i}Error", "value": "v" * 10_000, "stacktrace": {"frames": [huge] * 1000}} for i in range(20)]
    stack = convert({"platform": "python", "exception": {"values": values}}).stack_trace
    assert len(stack) <= MAX_STACK_CHARS
    assert stack.count("Traceback (most recent call last):") == MAX_EXCEPTIONS
    assert max(len(line) for line in stack.splitlines()) <= 520
    parsed = parse_stack(stack)  # the whole trace is inside the parser's window: type and causes survive
    assert parsed.exception_type == "E19Error" and parsed.causes == ("E18Error", "E17Error", "E16Error", "E15Error")


_HOSTILE = [
    None, 7, -1, 1.5, True, "", "x", "\x00", "a\x00b", 10**5000, float("inf"), [], [None, 3, "a"], {}, {"values": 5},
    {"frames": [1, None]}, [[1, 2]],
]  # fmt: skip


def test_hostile_field_types_never_raise() -> None:
    rng = random.Random(7)
    base = fixture("python")
    paths: list[tuple[Any, ...]] = [(k,) for k in base] + [
        ("exception", "values"),
        ("exception", "values", 0, "stacktrace"),
        ("exception", "values", 1, "stacktrace", "frames"),
        ("exception", "values", 1, "type"),
        ("exception", "values", 1, "module"),
        ("exception", "values", 1, "mechanism"),
        ("exception", "values", 1, "stacktrace", "frames", 0, "lineno"),
        ("exception", "values", 1, "stacktrace", "frames", 0, "function"),
        ("request", "url"),
        ("request", "method"),
        ("contexts", "os"),
    ]
    for path in paths:
        for bad in _HOSTILE:
            event = copy.deepcopy(base)
            target = event
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = copy.deepcopy(bad)
            body = convert(event)
            assert body.error_message and body.error_type
            assert "\\u0000" not in body.model_dump_json(), path
    for platform in ("python", "java", "node", "csharp", "other", 5):
        junk = {"platform": platform, "exception": {"values": [{"type": rng.random(), "value": [], "stacktrace": {
            "frames": [{"function": {}, "lineno": "12", "abs_path": 3, "native": 1}]}}]}}  # fmt: skip
        convert(junk)
    not_objects: tuple[Any, ...] = ([], "event", 3, None)
    for not_an_object in not_objects:
        with pytest.raises(SentryEventError):
            convert(not_an_object)


# --------------------------------------------------------------------------- the HTTP protocol


def with_sentry_routes(app: FastAPI) -> FastAPI:
    """The route until it is wired into create_app; a no-op once it is."""
    if not any(getattr(r, "path", None) == "/api/{project_id}/envelope/" for r in app.routes):
        app.include_router(router)
    return app


@pytest.fixture
def sentry(settings: Any) -> Iterator[TestClient]:
    from agent.api.app import create_app

    with TestClient(with_sentry_routes(create_app(settings))) as c:
        yield c


def envelope(*items: tuple[dict[str, Any], bytes], header: dict[str, Any] | None = None, length: bool = True) -> bytes:
    out = [orjson.dumps(header if header is not None else {"sent_at": "2026-11-20T10:00:00Z"})]
    for item_header, payload in items:
        h = {**item_header, "length": len(payload)} if length else item_header
        out += [orjson.dumps(h), payload]
    return b"\n".join(out) + b"\n"


def event_item(event: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    return {"type": "event", "content_type": "application/json"}, orjson.dumps(event)


def post(client: TestClient, body: bytes, path: str = "/api/3/envelope/", **headers: str) -> Any:
    return client.post(path, content=body, headers={"Content-Type": "application/x-sentry-envelope", **headers})


def test_envelope_event_is_stored_and_other_items_are_ignored(sentry: TestClient) -> None:
    body = envelope(
        event_item(fixture("python")),
        ({"type": "transaction"}, orjson.dumps({"type": "transaction", "transaction": "/x", "spans": []})),
        ({"type": "session"}, b'{"sid":"a","status":"ok","errors":0}'),
        ({"type": "client_report"}, b'{"discarded_events":[]}'),
        ({"type": "attachment", "filename": "dump.bin"}, bytes(range(256)) + b"\n\n\x00"),
        header={"event_id": "9f3c2a1b7d4e4f0a8b6c5d4e3f2a1b0c", "sent_at": "2026-11-20T09:41:08Z"},
    )
    r = post(sentry, body, **AUTH)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["id"] == "9f3c2a1b7d4e4f0a8b6c5d4e3f2a1b0c" and len(answer["errlearn_events"]) == 1
    stored = answer["errlearn_events"][0]
    ev = sentry.get(f"/events/{stored['event_id']}", headers=BEARER).json()
    assert ev["service"] == "billing" and ev["error_type"] == "billing.errors.PaymentGatewayError"
    assert ev["additional_data"]["sentry_event_id"] == "9f3c2a1b7d4e4f0a8b6c5d4e3f2a1b0c"
    for secret in SECRETS:
        assert secret not in json.dumps(ev)
    pattern = sentry.get(f"/patterns/{stored['pattern_id']}", headers=BEARER).json()
    assert pattern["method"] == "stack" and "gateway.py:charge" in pattern["reason"]


def test_several_events_and_items_without_length(sentry: TestClient) -> None:
    body = envelope(
        event_item(fixture("node")), ({"type": "session"}, b"{}"), event_item(fixture("java")), length=False
    )
    r = post(sentry, body, **AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "7ab1c2d3e4f5061728394a5b6c7d8e9f"
    services = {
        sentry.get(f"/events/{e['event_id']}", headers=BEARER).json()["service"] for e in r.json()["errlearn_events"]
    }
    assert services == {"web-api", "orders-service"}


def test_an_envelope_without_events_is_accepted(sentry: TestClient) -> None:
    r = post(sentry, envelope(({"type": "session"}, b"{}"), header={"event_id": "ab" * 16}), **AUTH)
    assert r.status_code == 200 and r.json() == {"id": "ab" * 16}
    assert post(sentry, b"{}", **AUTH).json() == {}


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "deflate":
        return zlib.compress(data)
    if kind == "raw-deflate":
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return c.compress(data) + c.flush()
    return bytes(_brotli().compress(data))


@pytest.mark.parametrize("kind", ["gzip", "deflate", "raw-deflate", "br"])
def test_compressed_envelopes(sentry: TestClient, kind: str) -> None:
    encoding = "deflate" if kind == "raw-deflate" else kind
    body = _compress(kind, envelope(event_item(fixture("java"))))
    r = post(sentry, body, **AUTH, **{"Content-Encoding": encoding})
    assert r.status_code == 200, r.text
    assert len(r.json()["errlearn_events"]) == 1


@pytest.mark.parametrize("kind", ["gzip", "br"])
def test_zip_bomb_is_refused(sentry: TestClient, settings: Any, kind: str) -> None:
    limit = settings.max_body_bytes * 8
    bomb = _compress(kind, b"{}\n" + b" " * (limit + 1))
    assert len(bomb) < settings.max_body_bytes  # small on the wire, past the limit once expanded
    r = post(sentry, bomb, **AUTH, **{"Content-Encoding": kind})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


@pytest.mark.parametrize(
    "headers_or_path",
    [
        AUTH,
        {"Authorization": f"Sentry sentry_version=7, sentry_key={INGEST_KEY}"},
        BEARER,
        "/api/3/envelope/?sentry_key=" + INGEST_KEY + "&sentry_version=7",
        "dsn",
    ],
)
def test_every_way_sdks_send_the_key(sentry: TestClient, headers_or_path: Any) -> None:
    header = {"dsn": f"http://{INGEST_KEY}@errlearn.local:8090/3"} if headers_or_path == "dsn" else None
    body = envelope(event_item({"message": "hello"}), header=header)
    if isinstance(headers_or_path, dict):
        r = post(sentry, body, **headers_or_path)
    else:
        r = post(sentry, body, path=headers_or_path if headers_or_path != "dsn" else "/api/3/envelope/")
    assert r.status_code == 200, r.text


def test_bad_or_missing_keys_get_401(sentry: TestClient) -> None:
    good = envelope(event_item({"message": "hi"}))
    wrong = {"X-Sentry-Auth": "Sentry sentry_key=not-a-real-key-0000000, sentry_version=7"}
    with_dsn = envelope(event_item({"message": "hi"}), header={"dsn": f"http://{INGEST_KEY}@h/3"})
    cases: list[Any] = [
        post(sentry, good),
        post(sentry, good, **wrong),
        post(sentry, with_dsn, **wrong),  # a wrong header key is not rescued by the dsn
        post(sentry, envelope(event_item({"message": "hi"}), header={"dsn": "http://nope@h/3"})),
        post(sentry, envelope(event_item({"message": "hi"}), header={"dsn": 42})),
        sentry.post("/api/3/store/", json={"message": "hi"}),
        sentry.post("/api/3/store/?sentry_key=wrong", json={"message": "hi"}),
    ]
    for r in cases:
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"


_MALFORMED = [
    (b"", 400, "empty"),
    (b"not json\n", 400, "envelope header"),
    (b"[1,2]\n", 400, "envelope header"),
    (b'{}\n{"length": 2}\n{}\n', 400, "item 0 header has no 'type'"),
    (b'{}\n{"type": "event", "length": 500}\n{}\n', 400, "declares length 500"),
    (b'{}\n{"type": "event", "length": -1}\n{}\n', 400, "'length'"),
    (b'{}\n{"type": "event", "length": "2"}\n{}\n', 400, "'length'"),
    (b'{}\n{"type": "event", "length": 2}\n{}xx\n', 400, "no newline"),
    (b'{}\n{"type": "event", "length": 5}\n{"a":\n', 400, "item 0 (event) is not valid JSON"),
    (b'{}\n{"type": "event"}\n[1, 2]\n', 400, "must be a JSON object"),
    (b'{}\n{"type": "session"}\n{}\nnot a header\n', 400, "item 1 header"),
]


def test_malformed_envelopes_get_400_naming_the_problem(sentry: TestClient) -> None:
    for body, status, words in _MALFORMED:
        r = post(sentry, body, **AUTH)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.text)


def test_encoding_errors(sentry: TestClient) -> None:
    r = post(sentry, b"definitely not gzip", **AUTH, **{"Content-Encoding": "gzip"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_encoding"
    r = post(
        sentry, gzip.compress(envelope(event_item({"message": "x"})))[:-12], **AUTH, **{"Content-Encoding": "gzip"}
    )
    assert r.status_code == 400 and "truncated" in r.json()["error"]["message"]
    r = post(sentry, b"{}", **AUTH, **{"Content-Encoding": "zstd"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_encoding"
    r = post(sentry, b"{}", path="/api/a%20b/envelope/", **AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_project"


def test_too_many_items(sentry: TestClient, settings: Any) -> None:
    items = [({"type": "session"}, b"{}")] * (settings.max_batch_items + 1)
    r = post(sentry, envelope(*items), **AUTH)
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"


def test_garbage_never_causes_a_server_error(sentry: TestClient) -> None:
    rng = random.Random(1)
    valid = envelope(event_item(fixture("python")), ({"type": "attachment"}, b"abc"), event_item(fixture("node")))
    bodies = [valid[: rng.randrange(len(valid))] for _ in range(60)]
    bodies += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(30)]
    bodies += [b"{}\n" + b'{"type":"event"}\n' + b"[" * 5000, b"{}\n" + b'{"type":"event"}\n' + b'"\\ud800"']
    for body in bodies:
        for encoding in ("", "gzip"):
            payload = gzip.compress(body) if encoding else body
            r = post(sentry, payload, **AUTH, **({"Content-Encoding": encoding} if encoding else {}))
            assert r.status_code < 500, (body[:80], r.text)


def test_rejections_are_counted_only_for_known_keys(sentry: TestClient) -> None:
    def rejected() -> dict[str, int]:
        by_reason: dict[str, int] = sentry.get("/stats", headers=BEARER).json()["since_start"]["rejected_by_reason"]
        return by_reason

    before = rejected().get("invalid_envelope", 0)
    post(sentry, b'{}\n{"length": 1}\n', **AUTH)
    post(sentry, b'{}\n{"length": 1}\n')  # anonymous: 400, not counted
    assert rejected().get("invalid_envelope", 0) == before + 1


def test_store_endpoint(sentry: TestClient) -> None:
    event = fixture("java")
    r: Any = sentry.post("/api/3/store/", json=event, headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == event["event_id"]
    packed = base64.b64encode(zlib.compress(orjson.dumps({"message": "raven says hi"})))  # old raven clients
    r = sentry.post("/api/3/store/", content=packed, headers=AUTH)
    assert r.status_code == 200, r.text
    ev = sentry.get(f"/events/{r.json()['errlearn_events'][0]['event_id']}", headers=BEARER).json()
    assert (ev["service"], ev["error_message"]) == ("sentry-3", "raven says hi")
    r = sentry.post(
        "/api/3/store/", content=gzip.compress(orjson.dumps(event)), headers={**AUTH, "Content-Encoding": "gzip"}
    )
    assert r.status_code == 200, r.text
    assert sentry.post("/api/3/store/", content=b"[]", headers=AUTH).status_code == 400
    assert sentry.post("/api/3/store/", content=b"", headers=AUTH).status_code == 400


def test_dsn_path_names_the_service(sentry: TestClient) -> None:
    r = post(sentry, envelope(event_item({"message": "from checkout"})), path="/checkout/api/5/envelope/", **AUTH)
    assert r.status_code == 200, r.text
    ev = sentry.get(f"/events/{r.json()['errlearn_events'][0]['event_id']}", headers=BEARER).json()
    assert ev["service"] == "checkout"
    r = sentry.post("/checkout/api/5/store/", json={"message": "m", "tags": {"service": "cart"}}, headers=AUTH)
    ev = sentry.get(f"/events/{r.json()['errlearn_events'][0]['event_id']}", headers=BEARER).json()
    assert ev["service"] == "cart"


# --------------------------------------------------------------------------- acceptance: the real sentry-sdk


@pytest.fixture
def live_url(settings: Any) -> Iterator[str]:
    from agent.api.app import create_app

    with serve_in_thread(with_sentry_routes(create_app(settings)), "errlearn-sentry-test") as url:
        yield url


def _charge(cart: dict[str, int]) -> int:
    return cart["total"] // cart["items"]


def _patterns(url: str, service: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/patterns", params={"service": service}, headers=BEARER, timeout=10)
    r.raise_for_status()
    data: list[dict[str, Any]] = r.json()["data"]
    return data


@pytest.mark.slow
@pytest.mark.parametrize("compression", ["gzip", "br"])
def test_the_real_sentry_sdk_reports_to_errlearn(live_url: str, compression: str) -> None:
    sentry_sdk = pytest.importorskip(
        "sentry_sdk", reason="needs sentry-sdk (a dev dependency): pip install -e '.[dev]'"
    )
    from sentry_sdk.integrations.logging import LoggingIntegration

    if compression == "br":
        _brotli()
    port = live_url.rsplit(":", 1)[1]
    sentry_sdk.init(
        dsn=f"http://{INGEST_KEY}@127.0.0.1:{port}/checkout/7",
        default_integrations=False,
        integrations=[LoggingIntegration(level=None, event_level=logging.ERROR)],
        _experiments={"transport_compression_algo": compression},
    )
    try:
        try:
            _charge({"total": 10, "items": 0})
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
        logging.getLogger("checkout.payments").error("card %s declined", "visa")
        assert sentry_sdk.flush(timeout=20) is not False
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)

    patterns = _patterns(live_url, "checkout")
    by_type = {p["error_type"]: p for p in patterns}
    assert set(by_type) == {"ZeroDivisionError", "checkout.payments"}, patterns
    crash = by_type["ZeroDivisionError"]
    assert crash["method"] == "stack" and "_charge" in crash["reason"], crash
    detail = httpx.get(f"{live_url}/patterns/{crash['id']}", headers=BEARER, timeout=10).json()
    sample = detail["samples"][0]
    assert f'File "{__file__}"' in sample["stack_trace"] and "in _charge" in sample["stack_trace"]
    assert sample["additional_data"]["sdk"]["name"] == "sentry.python"
    assert sample["severity"] == "high" and sample["error_message"] == "integer division or modulo by zero"
    frames = parse_stack(sample["stack_trace"]).frames
    assert frames[0].function == "_charge" and frames[0].in_app
    log_event = httpx.get(f"{live_url}/patterns/{by_type['checkout.payments']['id']}", headers=BEARER).json()
    assert log_event["samples"][0]["error_message"] == "card visa declined"
