"""What the calling thread records: a cheap snapshot of an exception or message, rendered later.

The snapshot keeps code objects and line numbers, never frames: a traceback pins every frame's
locals (request bodies, connections, large buffers) for as long as the event waits in the queue,
so holding one per queued event would make the SDK's memory depend on the application's locals.
Walking the traceback costs ~0.1 µs per frame; formatting, reading source lines and scrubbing
happen on the sender thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any

Frame = tuple[CodeType, int | None]
"""A code object and the line executing in it."""
Frames = tuple[CodeType | int | None, ...]
"""Frames flattened as (code, line, code, line, ...): one allocation per stack instead of one per frame,
which keeps the calling thread's garbage-collector work low. `pairs()` reads them back."""

_MAX_CHAIN = 5
"""Causes/contexts followed per exception; deeper chains are cut (and cycles are cut at once)."""
_OUTER_FRAMES_KEPT = 10
"""When a stack is cut, how many of its outermost frames stay (the rest kept are the innermost)."""
_SHAPE_CHARS = 160
_SHAPE_DROPPED = b"0123456789abcdefABCDEFxX"
"""Removed from a message to get its shape: numbers, hex ids and addresses vary between occurrences of one error.
(Ordinary words lose their a-f letters too; shapes are only compared with each other, never shown.)"""


@dataclass(slots=True)
class ExcSnapshot:
    """One exception of a chain, as captured in the calling thread."""

    type_name: str
    message: str
    frames: Frames
    omitted: int
    """Frames cut from the middle of a very deep stack (e.g. a RecursionError)."""
    link: str
    """How this exception relates to the one before it in the chain: "", "cause" or "context"."""
    notes: tuple[str, ...] = ()
    rendered: tuple[str, str] | None = None
    """Set by the sender: the formatted frames and the default context (see `render.Renderer`)."""


@dataclass(slots=True)
class Captured:
    """One event waiting in the queue. Only the sender thread turns it into JSON."""

    timestamp: float
    severity: str
    kind: str
    error_type: str
    message: str
    chain: tuple[ExcSnapshot, ...]
    """Outermost exception first; empty for messages."""
    origin: Frame | None
    """Where a message, or an exception that was never raised, was captured (for the default context)."""
    context: str | None
    extra: dict[str, Any]
    sampled_count: int = 1


def type_name(cls: type) -> str:
    """The exception type as Python's tracebacks print it (`module.Qualname` unless builtin or __main__)."""
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "Unknown")
    if module in (None, "builtins", "__main__"):
        return str(qualname)
    return f"{module}.{qualname}"


def safe_str(value: object, limit: int) -> str:
    """`str(value)` cut to `limit` characters; never raises (an unprintable object gets a placeholder)."""
    try:
        text = value if type(value) is str else str(value)
        if type(text) is not str:  # a __str__ may return a str subclass with surprising methods
            text = str.__str__(text)
    except Exception:
        return f"<unprintable {type_name(type(value))} object>"
    if len(text) > limit:
        return f"{text[:limit]}... [truncated {len(text) - limit} chars]"
    return text


def shape(error_type: str, message: str) -> tuple[str, bytes]:
    """The flood-control key: the type and the message's start without digits and hex letters.

    A bytes translation costs ~0.5 µs where a regex substitution of number runs costs 5-15 µs.
    """
    return error_type, message[:_SHAPE_CHARS].encode("utf-8", "replace").translate(None, _SHAPE_DROPPED)


def pairs(frames: Frames) -> list[Frame]:
    """The (code, line) pairs of flattened frames."""
    return list(zip(frames[::2], frames[1::2], strict=True))  # type: ignore[arg-type]


def outer_frames_kept(max_frames: int) -> int:
    """When a stack is cut, how many of its outermost frames stay; the omission comes right after them."""
    return min(_OUTER_FRAMES_KEPT, max_frames // 2)


def _walk(tb: TracebackType | None, max_frames: int) -> tuple[Frames, int]:
    flat: list[CodeType | int | None] = []
    append = flat.append
    while tb is not None:
        append(tb.tb_frame.f_code)
        append(tb.tb_lineno)
        tb = tb.tb_next
    count = len(flat) // 2
    if count <= max_frames:
        return tuple(flat), 0
    outer = outer_frames_kept(max_frames)
    inner = max_frames - outer
    return tuple(flat[: 2 * outer] + flat[-2 * inner :]), count - outer - inner


def _next_in_chain(exc: BaseException) -> tuple[BaseException | None, str]:
    if exc.__cause__ is not None:
        return exc.__cause__, "cause"
    if exc.__context__ is not None and not exc.__suppress_context__:
        return exc.__context__, "context"
    return None, ""


def _snapshot_one(exc: BaseException, link: str, max_frames: int, max_chars: int) -> ExcSnapshot:
    frames, omitted = _walk(exc.__traceback__, max_frames)
    raw_notes = getattr(exc, "__notes__", None)
    notes = tuple(safe_str(n, max_chars) for n in raw_notes[:10]) if isinstance(raw_notes, list) else ()
    return ExcSnapshot(type_name(type(exc)), safe_str(exc, max_chars), frames, omitted, link, notes)


def snapshot_exception(exc: BaseException, max_frames: int, max_chars: int) -> tuple[ExcSnapshot, ...]:
    """Snapshot an exception and its causes/contexts, outermost first. May raise; callers wrap it."""
    first = _snapshot_one(exc, "", max_frames, max_chars)
    current, link = _next_in_chain(exc)
    if current is None:  # the common case: no chain, no bookkeeping
        return (first,)
    chain = [first]
    seen: list[BaseException] = [exc]
    while current is not None and len(chain) < _MAX_CHAIN and not any(current is s for s in seen):
        seen.append(current)
        chain.append(_snapshot_one(current, link, max_frames, max_chars))
        current, link = _next_in_chain(current)
    return tuple(chain)
