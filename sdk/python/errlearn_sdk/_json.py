"""JSON for the SDK: orjson when it is installed (faster), else the standard library; the same bytes either way.

Both paths raise `TypeError` for what they cannot encode (lone surrogates, circular references, unknown types
without a `default`), as orjson does, so callers handle one exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the clean-venv test, which installs the SDK alone
    orjson = None  # type: ignore[assignment]

HAVE_ORJSON = orjson is not None


def _plain_key(key: Any) -> Any:
    if isinstance(key, dt.datetime | dt.date):
        return key.isoformat()
    return key if isinstance(key, str | int | float | bool) or key is None else str(key)


def _plain_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_plain_key(k): _plain_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_keys(v) for v in value]
    return value


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None, non_str_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON; datetimes as ISO 8601; `default` for anything else; `non_str_keys` stringifies keys."""
    if orjson is not None:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS if non_str_keys else 0)

    import json  # only without orjson: `import errlearn_sdk` stays cheap

    def fallback(obj: Any) -> Any:
        if isinstance(obj, dt.datetime | dt.date):
            return obj.isoformat()
        if default is None:
            raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")
        return default(obj)

    try:
        text = json.dumps(
            _plain_keys(value) if non_str_keys else value,
            default=fallback,
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        )
        return text.encode()
    except (ValueError, RecursionError) as exc:  # circular reference, NaN, lone surrogate (UnicodeEncodeError)
        raise TypeError(str(exc)) from exc


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes or text."""
    if orjson is not None:
        return orjson.loads(data)
    import json

    return json.loads(data)
