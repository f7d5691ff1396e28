"""Sender-thread work: turn a `Captured` snapshot into one scrubbed event, as JSON bytes."""

from __future__ import annotations

import datetime as dt
import linecache
import os
import sys
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from errlearn_sdk import _json
from errlearn_sdk.capture import Captured, ExcSnapshot, Frame, outer_frames_kept, pairs, safe_str
from errlearn_sdk.options import KINDS, SEVERITIES, ClientOptions

K = TypeVar("K", bound=Hashable)

_LINKS = {
    "cause": "\nThe above exception was the direct cause of the following exception:\n\n",
    "context": "\nDuring handling of the above exception, another exception occurred:\n\n",
}
_CACHE_SIZE = 1024
"""Entries per rendering cache; a full cache is emptied (cheaper than LRU bookkeeping on every hit)."""
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep


_RECURSIVE_CUTOFF = 3
"""Identical consecutive frames printed before `[Previous line repeated N more times]` (as CPython does)."""


def _repeated(count: int) -> str:
    return f"  [Previous line repeated {count} more time{'s' if count > 1 else ''}]\n"


class TextScrubber(Protocol):
    """What the renderer needs from `errlearn_sdk.scrub.Scrubber`."""

    def text(self, value: str) -> str: ...

    def data(self, value: Any) -> Any: ...


def _fallback(value: object) -> str:
    # orjson calls this for any type it cannot serialise (sets, Decimals, custom objects...).
    return safe_str(value, 1024)


@lru_cache(maxsize=4096)
def _module_of(filename: str) -> str:
    """Best-effort dotted module name of a source file (the longest sys.path entry that contains it)."""
    best = ""
    for entry in sys.path:
        base = os.path.abspath(entry or ".")
        if filename.startswith(base + os.sep) and len(base) > len(best):
            best = base
    rel = filename[len(best) + 1 :] if best else os.path.basename(filename)
    rel = rel.removesuffix(".py").removesuffix(os.sep + "__init__")
    return rel.replace(os.sep, ".")


def _in_app(filename: str) -> bool:
    """False for the standard library, installed packages and synthetic code (`<frozen ...>`, `<string>`)."""
    return not ("site-packages" in filename or "dist-packages" in filename or filename.startswith(("<", _STDLIB_DIR)))


def context_of(frames: list[Frame]) -> str | None:
    """`module.function` of the innermost in-app frame (else the innermost frame)."""
    if not frames:
        return None
    chosen = frames[-1]
    for frame in reversed(frames):
        if _in_app(frame[0].co_filename):
            chosen = frame
            break
    code = chosen[0]
    return f"{_module_of(code.co_filename)}.{code.co_qualname}"


def _clean(value: Any) -> Any:
    """A copy of JSON-like data whose strings are valid UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _plain_and_small(extra: dict[str, Any], limit: int) -> bool:
    """True when `extra` holds only str keys and scalar values, and its strings fit well within `limit`."""
    size = 0
    for key, value in extra.items():
        kind = type(value)
        if type(key) is not str or kind not in _SCALARS:
            return False
        size += len(key) + (len(value) if kind is str else 8)
    return size * 2 < limit  # x2: JSON escaping can double a string


def _one_of(value: object, allowed: frozenset[str], default: str) -> str:
    return value if isinstance(value, str) and value in allowed else default


def _cached(cache: dict[K, str], key: K, compute: Callable[[K], str]) -> str:
    value = cache.get(key)
    if value is None:
        value = compute(key)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[key] = value
    return value


class Renderer:
    """Formats, scrubs, truncates and serialises events. Used by one thread (the sender) at a time."""

    def __init__(self, options: ClientOptions, scrubber: TextScrubber) -> None:
        self.options = options
        self.scrubber = scrubber
        base: dict[str, Any] = {}
        if options.host:
            base["host"] = options.host
        if options.environment:
            base["environment"] = options.environment
        if options.release:
            base["release"] = options.release
        if options.sample_rate < 1.0:
            base["sample_rate"] = options.sample_rate
        self._base = base
        # Errors repeat: the same stacks, contexts and (in a flood) messages. Each cache maps a distinct input to
        # its formatted and scrubbed text, so a flood of one error pays for formatting and scrubbing once.
        self._frames_cache: dict[Hashable, tuple[str, str]] = {}
        """(frames, omitted) -> (traceback text, default context)."""
        self._origin_cache: dict[Frame, str] = {}
        """Where a message was captured -> default context."""
        self._context_cache: dict[str, str] = {}
        self._message_cache: dict[str, str] = {}

    def render(self, rec: Captured) -> bytes:
        """One event as compact JSON. Raises only on a bug; the sender counts and drops such events."""
        error_type = safe_str(rec.error_type, 256).strip() or "Error"
        if rec.context is not None:
            context = _cached(self._context_cache, rec.context, self._scrub_context)
        else:
            context = self._frames_info(rec.chain[0])[1] if rec.chain else ""
            if not context and rec.origin:  # a message, or an exception that was never raised
                context = _cached(self._origin_cache, rec.origin, lambda at: self._scrub_context(context_of([at])))
        # The server needs a non-empty message; `raise ValueError()` has none.
        message = _cached(self._message_cache, rec.message, self.scrubber.text) if rec.message else ""
        event = {
            "service": self.options.service,
            "context": context or error_type,
            "error_type": error_type,
            "error_message": message or f"{error_type} (no message)",
            "severity": _one_of(rec.severity, SEVERITIES, "medium"),
            "stack_trace": self._stack(rec.chain, message) if rec.chain else None,
            "additional_data": self._data(rec),
            "timestamp": dt.datetime.fromtimestamp(rec.timestamp, dt.UTC),
            "kind": _one_of(rec.kind, KINDS, "runtime"),
        }
        try:
            return _json.dumps(event)
        except TypeError:  # lone surrogates ("\udcff") are not UTF-8: replace them rather than lose the event
            return _json.dumps(_clean(event))

    def _scrub_context(self, context: str | None) -> str:
        return self.scrubber.text(safe_str(context, 512)) if context else ""

    def _stack(self, chain: tuple[ExcSnapshot, ...], top_message: str) -> str:
        parts: list[str] = []
        for i in range(len(chain) - 1, -1, -1):
            snap = chain[i]
            if snap.frames:
                parts.append(self._frames_info(snap)[0])
            # The outermost message was scrubbed already (it is the event's message); scrub causes here.
            message = top_message if i == 0 else self.scrubber.text(snap.message)
            parts.append(f"{snap.type_name}: {message}\n" if snap.message else f"{snap.type_name}\n")
            parts.extend(self.scrubber.text(note) + "\n" for note in snap.notes)
            if i > 0:
                parts.append(_LINKS.get(snap.link, "\n"))
        text = "".join(parts)
        limit = self.options.max_stack_chars
        if len(text) > limit:
            # Keep the head (outer frames) and the longer tail: the innermost frames and the message matter most.
            head = limit // 4
            text = f"{text[:head]}\n  [... {len(text) - limit} chars cut ...]\n{text[-(limit - head) :]}"
        return text

    def _frames_info(self, snap: ExcSnapshot) -> tuple[str, str]:
        """The traceback text and the default context of one exception's frames (cached per distinct stack)."""
        if snap.rendered is not None:  # render() and _stack() both ask; hashing a stack costs ~0.2 µs a frame
            return snap.rendered
        key: Hashable = snap.frames if not snap.omitted else (snap.frames, snap.omitted)
        info = self._frames_cache.get(key)
        if info is None:
            frames = pairs(snap.frames)
            info = (self._format_frames(frames, snap.omitted), self._scrub_context(context_of(frames)))
            if len(self._frames_cache) >= _CACHE_SIZE:
                self._frames_cache.clear()
            self._frames_cache[key] = info
        snap.rendered = info
        return info

    def _format_frames(self, frames: list[Frame], omitted: int) -> str:
        lines = ["Traceback (most recent call last):\n"]
        cut_at = outer_frames_kept(self.options.max_frames) if omitted else -1
        previous: Frame | None = None
        repeats = 0
        for index, frame in enumerate(frames):
            if index == cut_at:
                lines.append(f"  [Previous {omitted} frames omitted]\n")
            if frame == previous and index != cut_at:
                repeats += 1
                if repeats >= _RECURSIVE_CUTOFF:
                    continue  # Python's own traceback prints recursion this way too
            else:
                if repeats >= _RECURSIVE_CUTOFF:
                    lines.append(_repeated(repeats - _RECURSIVE_CUTOFF + 1))
                previous, repeats = frame, 0
            code, lineno = frame
            lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
            source = linecache.getline(code.co_filename, lineno).strip() if lineno else ""
            if source:
                lines.append(f"    {source}\n")
        if repeats >= _RECURSIVE_CUTOFF:
            lines.append(_repeated(repeats - _RECURSIVE_CUTOFF + 1))
        return self.scrubber.text("".join(lines))

    def _data(self, rec: Captured) -> Any:
        data: dict[str, Any] = dict(self._base)
        if rec.sampled_count > 1:
            data["sampled_count"] = rec.sampled_count
        extra = rec.extra
        if not extra:
            return data
        limit = self.options.max_data_bytes
        if _plain_and_small(extra, limit):
            # The common case (ids, names, counts): already JSON-safe, no round trip needed.
            data.update(self.scrubber.data(extra))
            return data
        try:
            # Round-trip through JSON: arbitrary objects become strings and the scrubber sees plain data.
            raw = _json.dumps(extra, default=_fallback, non_str_keys=True)
            plain = _json.loads(raw) if len(raw) <= limit else {"truncated": raw[:limit].decode(errors="replace")}
        except Exception:  # circular references, a dict mutated while we read it, ...
            plain = {str(k): safe_str(v, 1024) for k, v in list(extra.items())[:100]}
        data.update(self.scrubber.data(plain))
        return data
