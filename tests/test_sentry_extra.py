"""Sentry `extra` (what `captureException(err, {extra})` and `set_extra` attach) reaches errlearn, bounded."""

from __future__ import annotations

from typing import Any

from agent.ingest.sentry import MAX_EXTRA_KEYS, MAX_EXTRA_VALUE, event_from_sentry, extra_of


def _event(extra: Any) -> dict[str, Any]:
    return {
        "event_id": "0" * 32,
        "platform": "node",
        "exception": {"values": [{"type": "TypeError", "value": "x is undefined"}]},
        "extra": extra,
    }


def test_application_extra_is_kept_as_sent() -> None:
    extra = {"documentId": "doc-42", "userCount": 3, "ratio": 0.5, "live": True, "none": None, "ops": [1, {"a": 2}]}
    body = event_from_sentry(_event(extra), project_id="1", dsn_service=None, event_id=None)
    assert body.additional_data["extra"] == {
        "documentId": "doc-42",
        "userCount": 3,
        "ratio": 0.5,
        "live": True,
        "none": None,
        "ops": '[1,{"a":2}]',
    }


def test_extra_is_bounded_and_the_sdk_command_line_is_dropped() -> None:
    extra = {f"k{i}": "v" * (MAX_EXTRA_VALUE + 50) for i in range(MAX_EXTRA_KEYS + 20)}
    extra["sys.argv"] = ["gunicorn", "--password=hunter2"]
    kept = extra_of(_event(extra))
    assert len(kept) == MAX_EXTRA_KEYS and "sys.argv" not in kept
    assert all(len(v) == MAX_EXTRA_VALUE for v in kept.values())


def test_extra_that_is_not_an_object_or_has_odd_values_never_fails() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert extra_of(_event("not an object")) == {}
    assert extra_of(_event({"": 1, "big": 10**5000, "deep": deep, "ok": 1})) == {"ok": 1}
    body = event_from_sentry(_event(None), project_id="1", dsn_service=None, event_id=None)
    assert "extra" not in body.additional_data
