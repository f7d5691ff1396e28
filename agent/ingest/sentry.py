"""Sentry event JSON -> `EventCreate`: what an official Sentry SDK reports, in errlearn's terms.

Pure (no I/O): the route in `agent/api/routes/sentry.py` unpacks envelopes and hands each event here.
Stack frames are rendered as the text the event's runtime prints (a Python traceback, a Java
`at pkg.Class.method(File.java:N)` trace, a V8 `at fn (file:line:col)` trace), because that is what
`agent.ingest.stacktrace.parse_stack` parses and groups on: a Sentry event and the same error sent as
text to `POST /errors` land in the same pattern.

Only a bounded subset of the event is kept (see `docs/sentry.md`); local variables, source context
other than the failing line, request headers, cookies, bodies, user data and breadcrumbs are dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from agent.domain import Severity
from agent.ingest.normalize import EventCreate

MAX_EXCEPTIONS = 5
"""Chained exceptions rendered: the reported one and its nearest causes."""
MAX_FRAMES = 100
"""Frames rendered per exception: the innermost ones, where it was raised."""
MAX_STACK_CHARS = 32_000
"""Rendered trace budget: the parser reads the first 64 KB, and Python names the reported exception last."""
MAX_FIELD = 300
"""Characters kept of one frame field, tag or other short value."""
MAX_TAGS = 50

_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DOTTED = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_EVENT_ID = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_JAVA_FILE = re.compile(r"[\w$.-]+\.(?:java|kt|kts|scala|groovy|clj|cljc|jsp|aj)")
_UNQUALIFIED_MODULES = frozenset({"builtins", "__builtin__", "__main__", "exceptions"})  # Python prints no prefix
_LEVELS = {
    "fatal": Severity.critical,
    "critical": Severity.critical,
    "error": Severity.high,
    "warning": Severity.medium,
    "warn": Severity.medium,
    "info": Severity.low,
    "debug": Severity.low,
    "log": Severity.low,
}
_PY_CAUSE = "\nThe above exception was the direct cause of the following exception:\n"
_PY_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n"


class SentryEventError(ValueError):
    """The payload cannot be read as a Sentry event; the message says which part is wrong."""


# --------------------------------------------------------------------------- small readers


def _clean(value: Any, limit: int = MAX_FIELD) -> str | None:
    """A one-line, bounded string from a JSON scalar; None for anything else or blank."""
    if isinstance(value, str):
        text = value[: limit * 4]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            text = str(value)
        except ValueError:  # an int past Python's str() digit limit
            return None
    else:
        return None
    if "\x00" in text or "\n" in text or "\r" in text:
        text = text.replace("\x00", "").replace("\r", " ").replace("\n", " ")
    return text.strip()[:limit] or None


def _text(value: Any) -> str | None:
    """A free-text field (message, log line) without NULs; None when absent or blank."""
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "")
    return text if text.strip() else None


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _objs(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else None


def _first_line(text: str, limit: int = 500) -> str:
    line, _, rest = text.strip().partition("\n")
    line = line.replace("\x00", "").replace("\r", "").strip()
    cut = len(line) > limit or bool(rest.strip())
    return line[:limit] + (" …" if cut else "")


# --------------------------------------------------------------------------- exceptions and frames


@dataclass(frozen=True)
class _Exc:
    """One exception of a chain, as read from `exception.values[i]`."""

    type: str
    message: str
    frames: tuple[Mapping[str, Any], ...]
    """Oldest (outermost) first, as Sentry sends them."""
    via_context: bool
    """Python: this exception is the `__context__` (not the `__cause__`) of the next one."""


def qualified_type(exc: Mapping[str, Any]) -> str:
    """`exception.values[i].type`, module-qualified as its runtime prints it (`java.lang.IllegalStateException`).

    Types that already carry a namespace (.NET `System.InvalidOperationException`, Go `*fs.PathError`) are
    kept as they are: there the module is an assembly or package path, not a prefix.
    """
    name = _clean(exc.get("type"), 200) or ""
    module = _clean(exc.get("module"), 200)
    if name and module and "." not in name and module not in _UNQUALIFIED_MODULES and _DOTTED.fullmatch(module):
        return f"{module}.{name}"
    return name or "Error"


def _raw_exceptions(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = event.get("exception", event.get("sentry.interfaces.Exception"))
    if isinstance(raw, Mapping):
        values: Any = raw.get("values") if "values" in raw else [raw]
    else:
        values = raw
    return [v for v in _objs(values) if v.get("type") or v.get("value")][-MAX_EXCEPTIONS:]


def _stack_frames(stacktrace: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(_objs(_obj(stacktrace).get("frames"))[-MAX_FRAMES:])


def _thread_frames(event: Mapping[str, Any], thread_id: Any = None) -> tuple[Mapping[str, Any], ...]:
    """Frames of the thread an exception names, else the crashed or current thread, else `event.stacktrace`."""
    threads = _objs(_obj(event.get("threads")).get("values"))
    for pick in (
        lambda t: thread_id is not None and t.get("id") == thread_id,
        lambda t: t.get("crashed") is True,
        lambda t: t.get("current") is True,
    ):
        for thread in threads:
            if pick(thread) and (frames := _stack_frames(thread.get("stacktrace"))):
                return frames
    return _stack_frames(event.get("stacktrace"))


def _chain(event: Mapping[str, Any]) -> list[_Exc]:
    """The exception chain, root cause first and reported exception last (Sentry's order)."""
    raws = _raw_exceptions(event)
    chain = []
    for i, raw in enumerate(raws):
        frames = _stack_frames(raw.get("stacktrace")) or _stack_frames(raw.get("raw_stacktrace"))
        if not frames and i == len(raws) - 1:  # native crashes and ANRs put the stack on the thread
            frames = _thread_frames(event, raw.get("thread_id"))
        message = raw.get("value")
        chain.append(
            _Exc(
                type=qualified_type(raw),
                message=_first_line(message) if isinstance(message, str) else "",
                frames=frames,
                via_context=_obj(raw.get("mechanism")).get("source") == "__context__",
            )
        )
    return chain


def _function(frame: Mapping[str, Any]) -> str | None:
    name = _clean(frame.get("function")) or _clean(frame.get("raw_function")) or _clean(frame.get("symbol"))
    return None if name in (None, "?") else name


def _path(frame: Mapping[str, Any]) -> str | None:
    return _clean(frame.get("abs_path")) or _clean(frame.get("filename"))


def _header(exc: _Exc) -> str:
    return f"{exc.type}: {exc.message}" if exc.message else exc.type


# --------------------------------------------------------------------------- renderers, one per trace format


def _render_python(chain: Sequence[_Exc]) -> str:
    lines: list[str] = []
    for i, exc in enumerate(chain):
        if i:
            lines.append(_PY_CONTEXT if chain[i - 1].via_context else _PY_CAUSE)
        if exc.frames:
            lines.append("Traceback (most recent call last):")
        for frame in exc.frames:
            path = (_path(frame) or _clean(frame.get("module")) or "<unknown>").replace('"', "'")
            lines.append(f'  File "{path}", line {_int(frame.get("lineno")) or 0}, in {_function(frame) or "<module>"}')
            if source := _clean(frame.get("context_line"), 200):
                lines.append(f"    {source}")
        lines.append(_header(exc))
    return "\n".join(lines)


def _java_name(frame: Mapping[str, Any]) -> str:
    module, function = _clean(frame.get("module")), _function(frame) or "<unknown>"
    name = f"{module}.{function}" if module else function
    return re.sub(r"[\s()]", "_", name)


def _java_source(frame: Mapping[str, Any]) -> str:
    if frame.get("native") is True:
        return "Native Method"
    filename = _clean(frame.get("filename"))
    source = filename if filename and _JAVA_FILE.fullmatch(filename) else "Unknown Source"
    line = _int(frame.get("lineno"))
    return f"{source}:{line}" if line else source


def _render_java(chain: Sequence[_Exc]) -> str:
    lines: list[str] = []
    for depth, exc in enumerate(reversed(chain)):  # reported exception first, then "Caused by:" each cause
        lines.append(_header(exc) if depth == 0 else f"Caused by: {_header(exc)}")
        lines.extend(f"\tat {_java_name(f)}({_java_source(f)})" for f in reversed(exc.frames))
    return "\n".join(lines)


def _v8_location(frame: Mapping[str, Any]) -> str:
    where = _path(frame) or _clean(frame.get("module")) or _clean(frame.get("package")) or "<anonymous>"
    line, col = _int(frame.get("lineno")), _int(frame.get("colno"))
    if line:
        where += f":{line}" + (f":{col}" if col else "")
    return where.replace(" (", " _")


def _render_v8(chain: Sequence[_Exc]) -> str:
    """Node/V8 shape; also the generic shape for platforms without a renderer of their own (file + function)."""
    lines: list[str] = []
    for depth, exc in enumerate(reversed(chain)):
        lines.append(_header(exc) if depth == 0 else f"Caused by: {_header(exc)}")
        for frame in reversed(exc.frames):
            function = re.sub(r"[()]", "", _function(frame) or "") or "<anonymous>"
            lines.append(f"    at {function} ({_v8_location(frame)})")
    return "\n".join(lines)


def _render_dotnet(chain: Sequence[_Exc]) -> str:
    lines = ["\n ---> ".join(_header(e) for e in reversed(chain))]
    for i, exc in enumerate(chain):  # the root cause's frames first, as .NET prints them
        if i:
            lines.append("   --- End of inner exception stack trace ---")
        for frame in reversed(exc.frames):
            module, function = _clean(frame.get("module")), (_function(frame) or "<unknown>").partition("(")[0]
            name = re.sub(r"\s", "_", f"{module}.{function}" if module else function)
            path, line = _path(frame), _int(frame.get("lineno"))
            lines.append(f"   at {name}()" + (f" in {path}:line {line}" if path and line else ""))
    return "\n".join(lines)


_RENDERERS: dict[str, Callable[[Sequence[_Exc]], str]] = {
    "python": _render_python,
    "java": _render_java,
    "javascript": _render_v8,
    "node": _render_v8,
    "csharp": _render_dotnet,
}


def render_stack(event: Mapping[str, Any]) -> str | None:
    """The event's stack trace as its platform prints it; None when no exception or thread has frames."""
    return _render(event, _chain(event))


def _render(event: Mapping[str, Any], chain: list[_Exc]) -> str | None:
    if not any(e.frames for e in chain):
        frames = _thread_frames(event)
        if not frames:
            return None
        # A message event with attach_stacktrace: the stack of the thread that logged it.
        chain = [_Exc(_error_type(event, chain), "", frames, False)]
    render = _RENDERERS.get(_clean(event.get("platform"), 32) or "", _render_v8)
    for keep in (MAX_FRAMES, 30, 10, 3):  # over budget: fewer frames each, innermost kept
        text = render([replace(e, frames=e.frames[-keep:]) for e in chain])
        if len(text) <= MAX_STACK_CHARS:
            break
    return text


# --------------------------------------------------------------------------- event fields


def _error_type(event: Mapping[str, Any], chain: Sequence[_Exc]) -> str:
    if chain:
        return chain[-1].type
    logger = _clean(event.get("logger"), 200)
    return logger if logger and _DOTTED.fullmatch(logger) else "Message"


def _log_message(event: Mapping[str, Any]) -> str | None:
    for raw in (event.get("logentry"), event.get("sentry.interfaces.Message"), event.get("message")):
        entry = _obj(raw)
        if text := _text(raw) or _text(entry.get("formatted")) or _text(entry.get("message")):
            return text
    return None


def _error_message(event: Mapping[str, Any], raws: Sequence[Mapping[str, Any]], error_type: str) -> str:
    if raws:
        return _text(raws[-1].get("value")) or error_type  # `raise ValueError()`: the type is all there is
    return _log_message(event) or "<unlabeled event>"


def severity_of(level: Any) -> Severity:
    """fatal -> critical, error -> high, warning -> medium, info/debug -> low; missing or unknown -> high."""
    return _LEVELS.get(level.lower(), Severity.high) if isinstance(level, str) else Severity.high


def parse_timestamp(value: Any, now: dt.datetime) -> dt.datetime | None:
    """Unix seconds (float or numeric string) or ISO 8601; None when unreadable or implausible.

    A client clock far off (more than a day ahead, more than 10 years back) must not cost the event:
    it is then timed when it arrived.
    """
    when: dt.datetime | None = None
    try:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                when = dt.datetime.fromisoformat(value.strip())
        if isinstance(value, int | float) and not isinstance(value, bool):
            when = dt.datetime.fromtimestamp(value, dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if not now - dt.timedelta(days=3650) < when < now + dt.timedelta(days=1):
        return None
    return when.astimezone(dt.UTC)


def _url_path(url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return None
    return _clean(path, 1024)


def context_of(event: Mapping[str, Any]) -> str:
    """`transaction`, else the request URL's path (never its query), else `culprit`; HTTP method in front."""
    request = _obj(event.get("request"))
    name = _clean(event.get("transaction"), 1024) or _url_path(request.get("url")) or _clean(event.get("culprit"))
    method = _clean(request.get("method"), 16)
    if name and method and name.startswith("/"):
        return f"{method.upper()} {name}"
    return name or ""


def tags_of(event: Mapping[str, Any]) -> dict[str, str]:
    """Tags as a flat dict (Sentry accepts an object or a list of [key, value] pairs), bounded."""
    raw = event.get("tags")
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [(p[0], p[1]) for p in raw if isinstance(p, list | tuple) and len(p) == 2]
    tags: dict[str, str] = {}
    for key, value in pairs:
        k, v = _clean(key, 64), _clean(value, 200)
        if k and v is not None and len(tags) < MAX_TAGS:
            tags[k] = v
    return tags


def service_of(event: Mapping[str, Any], *, dsn_service: str | None, project_id: str) -> str:
    """Which errlearn service an event belongs to.

    In order: the event's `service` (or `service.name`) tag; the DSN's path prefix
    (`http://key@host/<service>/<project_id>`); the package part of a `name@version` release;
    else `sentry-<project_id>`. Candidates that are not valid service names are skipped.
    """
    tags = tags_of(event)
    release = _clean(event.get("release"), 200) or ""
    name, at, _ = release.partition("@")
    for candidate in (tags.get("service"), tags.get("service.name"), dsn_service, name if at else None):
        if candidate and _SERVICE.fullmatch(candidate):
            return candidate
    return f"sentry-{project_id}"


def event_id_of(event: Mapping[str, Any], fallback: str | None = None) -> str:
    """The Sentry event id as 32 lower-case hex digits (what Sentry answers with); a new one if absent."""
    for candidate in (event.get("event_id"), fallback):
        if isinstance(candidate, str) and _EVENT_ID.fullmatch(candidate.strip()):
            return candidate.strip().replace("-", "").lower()
    return uuid.uuid4().hex


def _name_version(raw: Any) -> dict[str, str]:
    obj = _obj(raw)
    out = {k: v for k in ("name", "version") if (v := _clean(obj.get(k), 100))}
    return out


MAX_EXTRA_KEYS = 50
MAX_EXTRA_VALUE = 1000
AUTOMATIC_EXTRA = frozenset({"sys.argv"})
"""`extra` keys an SDK adds to every event by itself (sentry-python's command line, which can carry secrets)."""


def extra_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """The context the application attached (`captureException(err, {extra})`, `set_extra`), bounded.

    At most `MAX_EXTRA_KEYS` keys; numbers and booleans as they are, strings and anything nested as (compact JSON)
    text cut at `MAX_EXTRA_VALUE` characters. Scrubbing happens in the normal ingest, like every other field.
    """
    out: dict[str, Any] = {}
    for raw_key, value in list(_obj(event.get("extra")).items())[: MAX_EXTRA_KEYS * 2]:
        key = _clean(raw_key, 64)
        if key is None or key in AUTOMATIC_EXTRA:
            continue
        if value is None or isinstance(value, bool) or (isinstance(value, int | float) and _clean(value) is not None):
            out[key] = value
        elif isinstance(value, str):
            out[key] = value[:MAX_EXTRA_VALUE]
        else:
            try:
                out[key] = json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)[:MAX_EXTRA_VALUE]
            except (ValueError, RecursionError):  # nested past what we render: drop that one value
                continue
        if len(out) >= MAX_EXTRA_KEYS:
            break
    return out


def _additional(event: Mapping[str, Any], raws: Sequence[Mapping[str, Any]], event_id: str) -> dict[str, Any]:
    contexts = _obj(event.get("contexts"))
    data: dict[str, Any] = {
        "source": "sentry",
        "sentry_event_id": event_id,
        "platform": _clean(event.get("platform"), 32),
        "release": _clean(event.get("release"), 200),
        "environment": _clean(event.get("environment"), 64),
        "server_name": _clean(event.get("server_name"), 200),
        "logger": _clean(event.get("logger"), 200),
        "sdk": _name_version(event.get("sdk")),
        "os": _name_version(contexts.get("os")),
        "runtime": _name_version(contexts.get("runtime")),
        "tags": tags_of(event),
        "request_method": _clean(_obj(event.get("request")).get("method"), 16),
        "extra": extra_of(event),
    }
    if raws:
        mechanism = _obj(raws[-1].get("mechanism"))
        data["mechanism"] = _clean(mechanism.get("type"), 64)
        handled = mechanism.get("handled")
        data["handled"] = handled if isinstance(handled, bool) else None
        message = _log_message(event)  # logger.exception("Payment failed"): the log line next to the exception
        data["log_message"] = message[:1024] if message else None
    return {k: v for k, v in data.items() if v not in (None, {}, "")}


def event_from_sentry(
    event: Any,
    *,
    project_id: str,
    dsn_service: str | None = None,
    event_id: str | None = None,
    now: dt.datetime | None = None,
) -> EventCreate:
    """Convert one Sentry event (the JSON of an envelope `event` item or of `POST /api/<id>/store/`).

    Args:
        event: The decoded JSON.
        project_id: The DSN's project id (the fallback service is `sentry-<project_id>`).
        dsn_service: The DSN's path prefix, when it has one (see `service_of`).
        event_id: The envelope header's event id, used when the event carries none.
        now: The current time, to judge the client's timestamp (default: now).

    Raises:
        SentryEventError: `event` is not a JSON object.
    """
    if not isinstance(event, Mapping):
        raise SentryEventError(f"a Sentry event must be a JSON object, not {type(event).__name__}")
    raws = _raw_exceptions(event)
    chain = _chain(event)
    error_type = _error_type(event, chain)[:256]
    sentry_id = event_id_of(event, event_id)
    return EventCreate(
        service=service_of(event, dsn_service=dsn_service, project_id=project_id),
        context=context_of(event)[:4096],
        error_type=error_type,
        error_message=_error_message(event, raws, error_type),
        severity=severity_of(event.get("level")),
        stack_trace=_render(event, chain),
        additional_data=_additional(event, raws, sentry_id),
        timestamp=parse_timestamp(event.get("timestamp"), now or dt.datetime.now(dt.UTC)),
    )
