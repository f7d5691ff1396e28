"""The SDK's JSON: the stdlib path (a venv without orjson) writes what orjson writes, and fails the same way."""

from __future__ import annotations

import datetime as dt
import warnings

import orjson
import pytest
from errlearn_sdk import _json

CASES = [
    {"a": 1, "b": [1.5, None, True], "c": "naïve ✓"},
    {"when": dt.datetime(2026, 12, 3, 7, 0, 1, 123456, tzinfo=dt.UTC), "day": dt.date(2026, 12, 3)},
    {"nested": {"deep": [{"x": "y"}]}, "empty": {}},
]


@pytest.mark.parametrize("value", CASES)
def test_stdlib_path_writes_the_same_bytes_as_orjson(value: object, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = orjson.dumps(value)
    monkeypatch.setattr(_json, "orjson", None)
    assert _json.dumps(value) == expected
    assert _json.loads(expected) == orjson.loads(expected)


def test_stdlib_path_non_str_keys_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    value = {1: "one", 2.5: {4}, None: "n", dt.datetime(2026, 1, 2, tzinfo=dt.UTC): "d"}
    expected = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    monkeypatch.setattr(_json, "orjson", None)
    assert _json.dumps(value, default=str, non_str_keys=True) == expected


@pytest.mark.parametrize("use_orjson", [True, False])
def test_both_paths_raise_type_error(use_orjson: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not use_orjson:
        monkeypatch.setattr(_json, "orjson", None)
    circular: list[object] = []
    circular.append(circular)
    for bad in ({"s": "\udcff"}, {"o": object()}):
        with pytest.raises(TypeError):
            _json.dumps(bad)
    with pytest.raises(TypeError):
        _json.dumps(circular)


def test_agent_sdk_is_a_deprecated_re_export() -> None:
    import importlib
    import sys

    import errlearn_sdk

    sys.modules.pop("agent.sdk", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        legacy = importlib.import_module("agent.sdk")
    assert any(issubclass(w.category, DeprecationWarning) and "errlearn_sdk" in str(w.message) for w in caught)
    assert legacy.init is errlearn_sdk.init and legacy.Client is errlearn_sdk.Client
