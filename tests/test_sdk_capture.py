"""The SDK's calling-thread snapshot, the sender-side rendering, and flood control, without a server."""

from __future__ import annotations

import gc
import re
import sys
import traceback
import weakref
from typing import Any

import orjson
import pytest
from errlearn_sdk.capture import Captured, ExcSnapshot, pairs, shape, snapshot_exception
from errlearn_sdk.options import ClientOptions
from errlearn_sdk.render import Renderer
from errlearn_sdk.sampling import FloodControl


class _Plain:
    def text(self, value: str) -> str:
        return value

    def data(self, value: Any) -> Any:
        return value


def _renderer(**config: Any) -> Renderer:
    options = ClientOptions(url="http://127.0.0.1:1", key="k" * 20, service="svc", host=None, **config).validated()
    return Renderer(options, _Plain())


def _recurse(n: int) -> None:
    """Deep stacks whose frames alternate (identical consecutive frames would be collapsed)."""
    if n == 0:
        raise RecursionError("deep")
    _recurse_other(n - 1)


def _recurse_other(n: int) -> None:
    _recurse(n)


def test_a_snapshot_does_not_keep_the_frames_or_their_locals_alive() -> None:
    class Big:
        pass

    def fail() -> None:
        payload = Big()
        _ = payload
        raise ValueError("x")

    try:
        fail()
    except ValueError as exc:
        chain = snapshot_exception(exc, 100, 1000)
        ref = weakref.ref(exc.__traceback__.tb_next.tb_frame.f_locals["payload"])  # type: ignore[union-attr]
    gc.collect()
    assert ref() is None  # the snapshot holds code objects and line numbers only
    assert pairs(chain[0].frames)[-1][0].co_name == "fail"


def test_deep_stacks_keep_the_outermost_and_innermost_frames() -> None:
    try:
        _recurse(300)
    except RecursionError as exc:
        (snap,) = snapshot_exception(exc, 40, 1000)
    assert len(pairs(snap.frames)) == 40
    assert snap.omitted == 302 + 300 - 40
    text = orjson.loads(_renderer(max_frames=40).render(_from_chain((snap,))))["stack_trace"]
    assert f"[Previous {snap.omitted} frames omitted]" in text
    assert text.count("in _recurse\n") + text.count("in _recurse_other\n") == 39


def test_exception_cycles_and_long_chains_are_cut() -> None:
    a = ValueError("a")
    b = KeyError("b")
    a.__context__ = b
    b.__context__ = a  # a cycle that Python itself can build
    assert [s.type_name for s in snapshot_exception(a, 10, 100)] == ["ValueError", "KeyError"]

    top: BaseException = OSError("0")
    current = top
    for i in range(1, 20):
        nxt = OSError(str(i))
        current.__cause__ = nxt
        current = nxt
    assert len(snapshot_exception(top, 10, 100)) == 5


def test_notes_and_context_links_are_rendered() -> None:
    try:
        try:
            raise KeyError("k")
        except KeyError:
            err = RuntimeError("while handling")
            err.add_note("retry 3 of 3")
            raise err from None
    except RuntimeError as exc:
        suppressed = snapshot_exception(exc, 10, 100)
    assert len(suppressed) == 1  # `from None` hides the context, as in Python's own traceback
    text = orjson.loads(_renderer().render(_from_chain(suppressed)))["stack_trace"]
    assert text.endswith("RuntimeError: while handling\nretry 3 of 3\n")

    try:
        try:
            raise KeyError("k")
        except KeyError:
            raise RuntimeError("second")  # noqa: B904 - the implicit context is what this test needs
    except RuntimeError as exc:
        chained = snapshot_exception(exc, 10, 100)
    text = orjson.loads(_renderer().render(_from_chain(chained)))["stack_trace"]
    assert "During handling of the above exception, another exception occurred" in text


def _from_chain(chain: tuple[ExcSnapshot, ...]) -> Captured:
    return _captured(chain=chain, message=chain[0].message, error_type=chain[0].type_name)


def _recurse_then_fail(n: int) -> None:
    if n == 0:
        empty: dict[str, int] = {}
        empty["missing"]  # the KeyError is the point
    _recurse_then_fail(n - 1)


@pytest.mark.parametrize("depth", [0, 2, 3, 4, 9])
def test_stacks_read_exactly_like_pythons_own_traceback(depth: int) -> None:
    try:
        try:
            _recurse_then_fail(depth)
        except KeyError as exc:
            raise LookupError("wrapped") from exc
    except LookupError as exc:
        ours = orjson.loads(_renderer().render(_from_chain(snapshot_exception(exc, 100, 100))))["stack_trace"]
        theirs = "".join(traceback.format_exception(exc))
    # CPython 3.11 adds caret lines under some source lines; the server does not need them.
    assert ours == re.sub(r"\n +[~^]+\n", "\n", theirs)


def _captured(**fields: Any) -> Captured:
    base: dict[str, Any] = {
        "timestamp": 1_700_000_000.0,
        "severity": "high",
        "kind": "runtime",
        "error_type": "ValueError",
        "message": "m",
        "chain": (),
        "origin": None,
        "context": None,
        "extra": {},
    }
    base.update(fields)
    return Captured(**base)


def test_rendering_keeps_events_valid_for_the_server() -> None:
    renderer = _renderer(max_data_bytes=200, max_stack_chars=2000)
    event = orjson.loads(renderer.render(_captured(message="", error_type="  ", extra={"blob": "y" * 1000})))
    assert event["error_type"] == "Error"
    assert event["error_message"] == "Error (no message)"
    assert event["context"] == "Error"
    assert list(event["additional_data"]) == ["truncated"]
    assert len(event["additional_data"]["truncated"]) == 200
    assert event["timestamp"] == "2023-11-14T22:13:20+00:00"

    try:
        _recurse(150)
    except RecursionError as exc:
        chain = snapshot_exception(exc, 200, 100)
    stack = orjson.loads(renderer.render(_from_chain(chain)))["stack_trace"]
    assert len(stack) < 2100
    assert "chars cut" in stack
    assert stack.endswith("RecursionError: deep\n")


def test_flood_control_windows_and_carry_over() -> None:
    flood = FloodControl(limit=2, window=10.0, keep_one_in=3)
    key = shape("Timeout", "timeout after 1234 ms on 0xdeadbeef")
    assert key == shape("Timeout", "timeout after 99 ms on 0x1f")
    assert [flood.admit(key, 0.0) for _ in range(8)] == [1, 1, 0, 0, 3, 0, 0, 3]
    flood.admit(key, 1.0)  # skipped (1 pending)
    assert flood.admit(key, 10.5) == 2  # new window: the pending skip is carried into the first kept event
    assert flood.admit(("Other", "x"), 10.5) == 1


def test_flood_control_stays_bounded_with_many_keys() -> None:
    flood = FloodControl(limit=1, window=60.0, keep_one_in=10, max_keys=100)
    for i in range(1000):
        flood.admit(("T", str(i)), float(i) / 1000)
    assert len(flood._windows) <= 100


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_default_spool_dir_is_per_service_under_the_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    from errlearn_sdk.options import default_spool_dir

    monkeypatch.setenv("XDG_CACHE_HOME", "/var/cache/u")
    assert str(default_spool_dir("billing-api")) == "/var/cache/u/errlearn/spool/billing-api"
    assert str(default_spool_dir("../etc")) == "/var/cache/u/errlearn/spool/etc"
