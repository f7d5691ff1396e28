"""The capture SDK against a stand-in server: event shape, auth, integrations, spooling, sampling, robustness."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import errlearn_sdk as sdk
import pytest
from errlearn_sdk import Client, ClientConfig, ClientOptions, ErrlearnHandler, ErrlearnMiddleware, install_excepthooks
from errlearn_sdk.standin import StandInServer
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from agent.ingest.stacktrace import parse_stack

KEY = "k" * 20
EVENT_KEYS = {
    "service",
    "context",
    "error_type",
    "error_message",
    "severity",
    "stack_trace",
    "additional_data",
    "timestamp",
    "kind",
}

MakeClient = Callable[..., Client]


@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer(KEY) as srv:
        yield srv


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    clients: list[Client] = []

    def make(url: str, **config: Any) -> Client:
        config.setdefault("spool_dir", tmp_path / "spool")
        config.setdefault("backoff_base", 0.02)
        config.setdefault("backoff_max", 0.2)
        config.setdefault("flush_interval", 0.05)
        client = Client(url, config.pop("key", KEY), config.pop("service", "billing"), **config)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=2)


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _charge(amount: int) -> None:
    raise ValueError(f"card declined for amount {amount}")


def _free_dead_port() -> int:
    """A port where nothing listens (a stand-in started and stopped)."""
    srv = StandInServer(KEY)
    srv.stop()
    return srv.port


# -- shape and auth ----------------------------------------------------------------------------------------------


def test_batches_arrive_with_the_contract_shape_and_auth(server: StandInServer, make_client: MakeClient) -> None:
    client = make_client(server.url, environment="prod", release="1.2.3")
    try:
        _charge(42)
    except ValueError:
        assert client.capture_exception(order_id=7)
    assert client.capture_message("queue is getting long", severity="low", depth=900)
    assert client.flush(5)

    assert server.wait_for_events(2)
    request = server.requests[0]
    assert request.path == "/errors/batch"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"]
    assert request.headers["content-encoding"] == "gzip"  # the default: errlearn accepts gzip bodies

    exc_event, msg_event = server.events
    for event in (exc_event, msg_event):
        assert set(event) == EVENT_KEYS
        assert event["service"] == "billing"
        assert event["kind"] == "runtime"
        assert dt.datetime.fromisoformat(event["timestamp"]).tzinfo is not None
        assert event["additional_data"]["environment"] == "prod"
        assert event["additional_data"]["release"] == "1.2.3"
    assert exc_event["error_type"] == "ValueError"
    assert exc_event["error_message"] == "card declined for amount 42"
    assert exc_event["severity"] == "high"
    assert exc_event["context"] == "tests.test_sdk._charge"
    assert exc_event["additional_data"]["order_id"] == 7
    assert exc_event["stack_trace"].startswith("Traceback (most recent call last):\n")
    assert "in _charge\n" in exc_event["stack_trace"]
    assert 'raise ValueError(f"card declined for amount {amount}")' in exc_event["stack_trace"]
    assert exc_event["stack_trace"].endswith("ValueError: card declined for amount 42\n")

    assert msg_event["error_type"] == "Message"
    assert msg_event["severity"] == "low"
    assert msg_event["stack_trace"] is None
    assert msg_event["context"].endswith("test_batches_arrive_with_the_contract_shape_and_auth")
    assert msg_event["additional_data"]["depth"] == 900
    assert client.stats()["sent"] == 2


def test_chained_exceptions_render_as_python_prints_them_and_the_server_parses_them(
    server: StandInServer, make_client: MakeClient
) -> None:
    client = make_client(server.url)

    def load() -> None:
        settings: dict[str, str] = {}
        try:
            settings["config"]
        except KeyError as exc:
            raise RuntimeError("cannot load config") from exc

    try:
        load()
    except RuntimeError:
        client.capture_exception()
    client.flush(5)
    assert server.wait_for_events(1)
    stack = server.events[0]["stack_trace"]
    assert stack.index("KeyError: 'config'") < stack.index("direct cause") < stack.index("RuntimeError: cannot")
    parsed = parse_stack(stack)
    assert parsed.language == "python"
    assert parsed.exception_type == "RuntimeError"
    assert "KeyError" in parsed.causes
    assert any(frame.function == "load" for frame in parsed.frames)


def test_gzip_bodies_when_compress_is_on(server: StandInServer, make_client: MakeClient) -> None:
    client = make_client(server.url, compress=True)
    client.capture_message("compressed")
    client.flush(5)
    assert server.wait_for_events(1)
    assert server.requests[0].headers["content-encoding"] == "gzip"
    assert server.events[0]["error_message"] == "compressed"


def test_compress_falls_back_to_plain_json_when_the_server_refuses_gzip(make_client: MakeClient) -> None:
    with StandInServer(KEY, accept_gzip=False) as server:
        client = make_client(server.url, compress=True)
        client.capture_message("first")
        client.flush(5)
        client.capture_message("second", error_type="Other")
        client.flush(5)
        assert server.wait_for_events(2)
        assert [r.status for r in server.requests] == [400, 202, 202]
        assert "content-encoding" not in server.requests[-1].headers
        assert client.stats()["failed"] == 0


# -- integrations ------------------------------------------------------------------------------------------------


def test_logging_handler_reports_errors_with_and_without_exc_info(
    server: StandInServer, make_client: MakeClient
) -> None:
    client = make_client(server.url)
    logger = logging.getLogger("shop.payments")
    handler = ErrlearnHandler(client)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.info("fine")  # below ERROR: ignored
        logger.error("payment %s failed", "p-1")
        try:
            _charge(5)
        except ValueError:
            logger.exception("charging failed")
        logger.critical("ledger out of balance")
        logging.getLogger("errlearn.sdk.inner").error("the SDK's own error")  # never fed back
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    client.flush(5)
    assert server.wait_for_events(3)
    time.sleep(0.1)
    plain, with_exc, critical = server.events
    assert len(server.events) == 3
    assert plain["error_type"] == "log.ERROR"
    assert plain["error_message"] == "payment p-1 failed"
    assert plain["severity"] == "high"
    assert plain["context"] == "shop.payments:test_logging_handler_reports_errors_with_and_without_exc_info"
    assert plain["stack_trace"] is None
    assert with_exc["error_type"] == "ValueError"
    assert with_exc["additional_data"]["log_message"] == "charging failed"
    assert "in _charge" in with_exc["stack_trace"]
    assert critical["severity"] == "critical"


def _fastapi_app(with_middleware: bool, client: Client | None) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def read_item(item_id: int) -> dict[str, int]:
        raise ValueError(f"item {item_id} is corrupt")

    @app.get("/missing")
    def missing() -> None:
        raise HTTPException(status_code=404, detail="no such thing")

    if with_middleware:
        app.add_middleware(ErrlearnMiddleware, client=client)
    return app


def test_asgi_middleware_reports_unhandled_errors_and_keeps_the_500(
    server: StandInServer, make_client: MakeClient
) -> None:
    client = make_client(server.url)
    plain = TestClient(_fastapi_app(False, None), raise_server_exceptions=False)
    wrapped = TestClient(_fastapi_app(True, client), raise_server_exceptions=False)

    expected = plain.get("/items/3?token=s3cr3t-in-query")
    got = wrapped.get("/items/3?token=s3cr3t-in-query")
    assert (got.status_code, got.text) == (expected.status_code, expected.text) == (500, "Internal Server Error")
    assert wrapped.get("/missing").status_code == 404  # handled by the app: not an error to report

    with pytest.raises(ValueError, match="item 3 is corrupt"):  # the exception still propagates unchanged
        TestClient(_fastapi_app(True, client)).get("/items/3")

    client.flush(5)
    assert server.wait_for_events(2)
    time.sleep(0.1)
    events = server.events
    assert len(events) == 2
    event = events[0]
    assert event["error_type"] == "ValueError"
    assert event["error_message"] == "item 3 is corrupt"
    assert event["context"] == "GET /items/{item_id}"
    assert "in read_item" in event["stack_trace"]
    assert event["additional_data"]["request"] == {"method": "GET", "path": "/items/3", "route": "/items/{item_id}"}
    assert "s3cr3t-in-query" not in server.requests[0].body.decode()


def test_excepthooks_report_and_chain_to_previous_hooks(
    server: StandInServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(server.url)
    seen_sys: list[BaseException] = []
    seen_thread: list[BaseException | None] = []
    monkeypatch.setattr(sys, "excepthook", lambda t, e, tb: seen_sys.append(e))
    monkeypatch.setattr(threading, "excepthook", lambda args: seen_thread.append(args.exc_value))
    install_excepthooks(client)
    install_excepthooks(client)  # idempotent: still one report per error

    def worker() -> None:
        raise OSError("disk gone")

    thread = threading.Thread(target=worker, name="importer")
    thread.start()
    thread.join()
    try:
        raise LookupError("main thread died")
    except LookupError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)  # passed on, not reported

    client.flush(5)
    assert server.wait_for_events(2)
    time.sleep(0.1)
    by_type = {e["error_type"]: e for e in server.events}
    assert set(by_type) == {"OSError", "LookupError"}
    assert by_type["OSError"]["additional_data"]["thread"] == "importer"
    assert by_type["LookupError"]["severity"] == "critical"
    assert [type(e) for e in seen_sys] == [LookupError, KeyboardInterrupt]
    assert [type(e) for e in seen_thread] == [OSError]


def test_module_level_api_uses_the_process_wide_client(server: StandInServer, tmp_path: Path) -> None:
    assert sdk.capture_message("before init") is False
    client = sdk.init(server.url, KEY, "api-svc", spool_dir=tmp_path, flush_interval=0.05)
    try:
        assert sdk.get_client() is client
        try:
            _charge(1)
        except ValueError:
            assert sdk.capture_exception()
        assert sdk.capture_message("hello", severity="low")
        assert sdk.capture_exception(ValueError("x"), bogus_positional_clash=1)
        assert sdk.flush(5)
        assert server.wait_for_events(3)
        assert sdk.stats()["sent"] == 3
        assert server.events[1]["context"].endswith("test_module_level_api_uses_the_process_wide_client")
        never_raised = server.events[2]
        assert never_raised["context"].endswith("test_module_level_api_uses_the_process_wide_client")
        assert never_raised["stack_trace"] == "ValueError: x\n"  # as traceback.format_exception prints it
    finally:
        sdk.close()
    assert sdk.get_client() is None
    assert client.closed
    assert sdk.capture_message("after close") is False


# -- failure handling --------------------------------------------------------------------------------------------


def test_server_down_spools_then_resends_when_it_is_back(make_client: MakeClient, tmp_path: Path) -> None:
    port = _free_dead_port()
    client = make_client(f"http://127.0.0.1:{port}", max_retries=1, batch_size=50)
    messages = [f"order {i} failed" for i in range(230)]
    for message in messages:
        client.capture_message(message, error_type=f"E{message}")  # distinct types: no flood control
    assert client.flush(10)
    stats = client.stats()
    assert stats["spooled"] == 230
    assert stats["sent"] == 0
    assert list((tmp_path / "spool").glob("*.jsonl"))

    with StandInServer(KEY, port=port) as back:
        assert back.wait_for_events(230, timeout=15)
        time.sleep(0.3)  # anything extra (a duplicate) would arrive now
        received = [e["error_message"] for e in back.events]
    assert received == messages  # none lost, none twice, oldest first
    assert not list((tmp_path / "spool").iterdir())
    assert client.stats()["sent"] == 230


def test_a_new_client_resends_what_a_previous_process_spooled(make_client: MakeClient, tmp_path: Path) -> None:
    port = _free_dead_port()
    first = make_client(f"http://127.0.0.1:{port}", max_retries=0)
    for i in range(40):
        first.capture_message(f"lost connection {i}", error_type=f"E{i}")
    first.close(timeout=5)
    assert first.stats()["spooled"] == 40
    assert first.capture_message("after close") is False

    with StandInServer(KEY, port=port) as back:
        make_client(back.url)
        assert back.wait_for_events(40)
        time.sleep(0.2)
        assert sorted(e["error_message"] for e in back.events) == sorted(f"lost connection {i}" for i in range(40))


def test_statuses_are_handled_per_the_contract(server: StandInServer, make_client: MakeClient) -> None:
    client = make_client(server.url, batch_size=10, max_retries=3)
    # 503 and 429 are retried; then delivered.
    server.scripted = [503, 429]
    client.capture_message("retried")
    client.flush(5)
    assert server.wait_for_events(1)
    assert client.stats()["retries"] == 2

    # 413: the batch is split in halves until it fits.
    server.max_events = 3
    for i in range(10):
        client.capture_message(f"split {i}", error_type=f"S{i}")
    client.flush(5)
    assert server.wait_for_events(11)
    assert sorted(e["error_message"] for e in server.events[1:]) == sorted(f"split {i}" for i in range(10))
    server.max_events = 1000

    # 400 / 422: dropped and counted, not retried.
    before = len(server.requests)
    server.scripted = [422]
    client.capture_message("invalid")
    client.flush(5)
    assert len(server.requests) == before + 1
    assert client.stats()["failed"] == 1


def test_a_full_spool_drops_the_oldest_batches_and_counts(make_client: MakeClient, tmp_path: Path) -> None:
    port = _free_dead_port()
    client = make_client(f"http://127.0.0.1:{port}", max_retries=0, batch_size=20, spool_max_bytes=30_000)
    for i in range(400):
        client.capture_message(f"disk pressure {i} " + "x" * 200, error_type=f"D{i}")
    assert client.flush(10)
    stats = client.stats()
    assert stats["dropped_spool_full"] > 0
    assert stats["spooled"] == 400  # every event reached the spool; the oldest were pushed out later
    on_disk = list((tmp_path / "spool").glob("*.jsonl"))
    assert sum(p.stat().st_size for p in on_disk) <= 30_000
    kept = sum(int(p.stem.rsplit("-", 1)[1]) for p in on_disk)
    assert kept + stats["dropped_spool_full"] == 400


def test_batches_stay_under_the_byte_limit(server: StandInServer, make_client: MakeClient) -> None:
    client = make_client(server.url, max_batch_bytes=4_000, flush_interval=60)
    for i in range(30):
        client.capture_message(f"big {i} " + "y" * 500, error_type=f"B{i}")
    client.flush(5)
    assert server.wait_for_events(30)
    assert len(server.requests) > 1
    assert all(len(r.body) <= 4_000 for r in server.requests)


def test_a_bad_key_is_not_retried_and_logged_once(
    server: StandInServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server.url, key="wrong-key-0123456789", max_retries=3)
    with caplog.at_level(logging.ERROR, logger="errlearn.sdk"):
        client.capture_message("one")
        client.flush(5)
        client.capture_message("two", error_type="Other")
        client.flush(5)
    assert [r.status for r in server.requests] == [401, 401]
    stats = client.stats()
    assert (stats["failed"], stats["retries"], stats["spooled"]) == (2, 0, 0)
    assert len([r for r in caplog.records if "API key was refused" in r.getMessage()]) == 1


def test_queue_overflow_drops_the_oldest_and_counts(server: StandInServer, make_client: MakeClient) -> None:
    # A long flush interval and batches larger than the queue: nothing leaves until flush().
    client = make_client(server.url, max_queue=10, batch_size=100, flush_interval=60)
    for i in range(25):
        client.capture_message(f"event {i}", error_type=f"T{i}")
    stats = client.stats()
    assert stats["dropped_queue_full"] == 15
    assert stats["queued"] == 10
    client.flush(5)
    assert server.wait_for_events(10)
    assert [e["error_message"] for e in server.events] == [f"event {i}" for i in range(15, 25)]


def test_capture_never_blocks_on_a_slow_server(server: StandInServer, make_client: MakeClient) -> None:
    server.delay = 1.0
    client = make_client(server.url, batch_size=10)
    client.capture_message("first batch goes out and hangs")
    time.sleep(0.1)
    started = time.perf_counter()
    for i in range(2000):
        client.capture_message(f"while the server hangs {i}", error_type=f"H{i}")
    assert time.perf_counter() - started < 1.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_gets_its_own_sender(server: StandInServer, make_client: MakeClient) -> None:
    client = make_client(server.url)
    client.capture_message("from the parent")
    assert client.flush(5)
    pid = os.fork()
    if pid == 0:  # the child: the parent's sender thread does not exist here
        ok = client.capture_message("from the child", error_type="Child") and client.flush(5)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert server.wait_for_events(2)
    assert sorted(e["error_message"] for e in server.events) == ["from the child", "from the parent"]


# -- robustness --------------------------------------------------------------------------------------------------


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


class _Slotted(Exception):
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("read-only exception")


class _WeirdStr:
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


def test_capture_never_raises_on_garbage(server: StandInServer, make_client: MakeClient) -> None:
    client = make_client(server.url, max_message_chars=1000, per_type_limit=None)
    circular: dict[str, Any] = {}
    circular["self"] = circular
    huge = "x" * 5_000_000
    odd_keys: dict[str, Any] = {"ünïcode": "\udcff lone surrogate"}
    calls: list[Callable[[], bool]] = [
        lambda: client.capture_exception(_Unprintable("a")),
        lambda: client.capture_exception(_Slotted("b")),
        lambda: client.capture_exception("not an exception"),  # type: ignore[arg-type]
        lambda: client.capture_exception(12345),  # type: ignore[arg-type]
        lambda: client.capture_exception(ValueError(huge)),
        lambda: client.capture_message(None),
        lambda: client.capture_message(b"\xff\xfe bytes"),
        lambda: client.capture_message(_WeirdStr()),
        lambda: client.capture_message(huge, severity="apocalyptic", kind="nonsense"),  # type: ignore[arg-type]
        lambda: client.capture_message("circular", data=circular, obj=object(), s={1, 2}, nested={(1, 2): "tuple-key"}),
        lambda: client.capture_message("bad keys", **odd_keys),
        lambda: client.capture_message("unhashable severity", severity={"x": 1}, kind=[1]),  # type: ignore[arg-type]
        lambda: client.capture_message(_Unprintable()),
    ]
    for call in calls:
        assert isinstance(call(), bool)
    assert client.capture_exception() is False  # no exception being handled
    client.flush(5)
    assert server.wait_for_events(len(calls), timeout=5)
    time.sleep(0.2)
    events = server.events
    assert len(events) == len(calls)
    for event in events:
        assert set(event) == EVENT_KEYS
        assert len(event["error_message"]) < 1100
        assert event["severity"] in {"low", "medium", "high", "critical"}
        assert event["kind"] in {"runtime", "build", "ci", "job"}
    assert events[0]["error_message"] == "<unprintable tests.test_sdk._Unprintable object>"
    assert events[4]["error_message"].endswith("[truncated 4999000 chars]")
    assert events[8]["severity"] == "medium"
    assert client.stats()["internal_errors"] == 0


def test_the_same_exception_is_reported_once(server: StandInServer, make_client: MakeClient) -> None:
    client = make_client(server.url)
    exc = ValueError("seen by the middleware and then by a log handler")
    assert client.capture_exception(exc) is True
    assert client.capture_exception(exc) is False


def test_secrets_are_scrubbed_before_leaving_the_process(make_client: MakeClient, tmp_path: Path) -> None:
    secret_token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    aws_key = "AKIA" + "IOSFODNN7EXAMPLE"
    port = _free_dead_port()
    client = make_client(f"http://127.0.0.1:{port}", max_retries=0)
    try:
        raise PermissionError(f"login failed for alice@example.com with password=hunter2 token {secret_token}")
    except PermissionError:
        client.capture_exception(aws=aws_key, contact="bob@example.org", headers={"Authorization": "Bearer abc.def"})
    client.flush(5)
    spooled = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*.jsonl"))
    assert spooled  # the disk never sees the secrets either

    with StandInServer(KEY, port=port) as back:
        assert back.wait_for_events(1)
        wire = back.requests[-1].body
    for text in (spooled, wire):
        for secret in (b"hunter2", secret_token.encode(), aws_key.encode(), b"alice@example.com", b"bob@example.org"):
            assert secret not in text
        assert b"REDACTED" in text


# -- sampling ----------------------------------------------------------------------------------------------------


def test_flood_control_keeps_one_in_m_after_n_with_sampled_count(
    server: StandInServer, make_client: MakeClient
) -> None:
    client = make_client(server.url, per_type_limit=(5, 60.0), per_type_keep_one_in=10)
    for i in range(100):
        client.capture_message(f"timeout after {1000 + i} ms", error_type="Timeout")
    client.capture_message("a different shape entirely", error_type="Timeout")
    client.flush(5)
    assert server.wait_for_events(15)
    time.sleep(0.1)
    events = server.events
    floods = [e for e in events if e["error_message"].startswith("timeout after")]
    assert len(floods) == 5 + 9
    assert [e["additional_data"].get("sampled_count", 1) for e in floods] == [1] * 5 + [10] * 9
    assert any(e["error_message"] == "a different shape entirely" for e in events)
    assert client.stats()["sampled_out"] == 100 - 14


def test_global_sample_rate(server: StandInServer, make_client: MakeClient) -> None:
    nothing = make_client(server.url, sample_rate=0.0)
    assert nothing.capture_message("never") is False
    assert nothing.stats()["sampled_out"] == 1

    half = make_client(server.url, sample_rate=0.5, per_type_limit=None)
    kept = sum(half.capture_message(f"m{i}") for i in range(2000))
    assert 800 < kept < 1200
    half.flush(5)
    assert server.wait_for_events(kept)
    assert server.events[0]["additional_data"]["sample_rate"] == 0.5


# -- options -----------------------------------------------------------------------------------------------------


def test_client_config_names_every_option() -> None:
    fields = set(ClientOptions.__dataclass_fields__) - {"url", "key", "service"}
    assert set(ClientConfig.__annotations__) == fields


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"batch_size": 5000}, "batch_size"),
        ({"per_type_limit": (0, 60.0)}, "per_type_limit"),
        ({"flush_interval": 0}, "flush_interval"),
    ],
)
def test_unusable_options_fail_at_construction(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client("http://127.0.0.1:1", KEY, "svc", **config)
    with pytest.raises(ValueError, match="url"):
        Client("ftp://x", KEY, "svc")
