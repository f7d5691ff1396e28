"""`Client`: the calling-thread side of the SDK. Capture is cheap, bounded and never raises.

A capture snapshots the error (see `capture.py`), applies sampling and flood control, and appends to
a bounded deque under a lock held for a few hundred nanoseconds (no I/O ever happens under it).
Everything else happens on the sender thread (`sender.py`).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import sys
import threading
import time
import weakref
from typing import Any, TypedDict, Unpack

from errlearn_sdk.buffer import EventBuffer
from errlearn_sdk.capture import Captured, Frame, safe_str, snapshot_exception, type_name
from errlearn_sdk.options import ClientOptions, KindName, SeverityName
from errlearn_sdk.render import Renderer, TextScrubber
from errlearn_sdk.sampling import FloodControl
from errlearn_sdk.sender import THREAD_NAME, Sender
from errlearn_sdk.spool import Spool
from errlearn_sdk.stats import Counters
from errlearn_sdk.transport import HttpTransport

log = logging.getLogger("errlearn.sdk")

_CAPTURED_MARK = "__errlearn_captured__"
_SDK_FILES = frozenset(os.path.join(os.path.dirname(__file__), name) for name in ("api.py", "client.py"))


class ClientConfig(TypedDict, total=False):
    """Optional keyword arguments of `Client` and `init`; each is documented on `ClientOptions`."""

    sample_rate: float
    environment: str | None
    release: str | None
    host: str | None
    max_queue: int
    batch_size: int
    max_batch_bytes: int
    flush_interval: float
    spool_dir: os.PathLike[str] | str | None
    spool_max_bytes: int
    per_type_limit: tuple[int, float] | None
    per_type_keep_one_in: int
    timeout: float
    max_retries: int
    backoff_base: float
    backoff_max: float
    max_message_chars: int
    max_stack_chars: int
    max_frames: int
    max_data_bytes: int
    scrub_emails: bool
    compress: bool
    shutdown_timeout: float


def _default_scrubber(emails: bool) -> TextScrubber:
    from errlearn_sdk.scrub import Scrubber

    scrubber: TextScrubber = Scrubber(emails=emails)
    return scrubber


class Client:
    """Reports errors of one service to one errlearn server.

    Example:
        client = Client("http://127.0.0.1:8090", key, "billing")
        try:
            charge()
        except Exception:
            client.capture_exception()
    """

    def __init__(
        self, url: str, key: str, service: str, *, scrubber: TextScrubber | None = None, **config: Unpack[ClientConfig]
    ) -> None:
        """Validate the options and start the sender thread.

        Args:
            url: base URL of the errlearn server.
            key: ingest API key.
            service: the reporting service's name.
            scrubber: replaces `errlearn_sdk.scrub.Scrubber` (tests, or a stricter policy).
            **config: see `ClientConfig` / `ClientOptions`.

        Raises:
            ValueError: on unusable options (the only time the SDK raises).
        """
        self.options = ClientOptions(url=url, key=key, service=service, **config).validated()
        opts = self.options
        self.counters = Counters()
        # Read on every capture: plain attributes are cheaper than the frozen dataclass's.
        self._sample_rate = opts.sample_rate
        self._max_frames = opts.max_frames
        self._max_chars = opts.max_message_chars
        self._closed = False
        flood = (
            FloodControl(opts.per_type_limit[0], opts.per_type_limit[1], opts.per_type_keep_one_in)
            if opts.per_type_limit
            else None
        )
        self._buffer = EventBuffer(opts.max_queue, opts.batch_size, flood, self.counters)
        self._offer = self._buffer.offer
        self._scrubber = scrubber if scrubber is not None else _default_scrubber(opts.scrub_emails)
        self._sender = self._new_sender()
        self._sender.start()
        _live_clients.add(self)

    def _new_sender(self) -> Sender:
        opts = self.options
        return Sender(
            self._buffer,
            Renderer(opts, self._scrubber),
            HttpTransport(opts.url, opts.key, timeout=opts.timeout, compress=opts.compress),
            Spool(opts.spool_path, opts.spool_max_bytes),
            opts,
            self.counters,
        )

    # -- capture (calling thread) ----------------------------------------------------------------------------

    def capture_exception(
        self,
        exc: BaseException | None = None,
        *,
        severity: SeverityName = "high",
        context: str | None = None,
        kind: KindName = "runtime",
        **extra: Any,
    ) -> bool:
        """Report an exception (default: the one being handled). Never raises, never blocks on I/O.

        Args:
            exc: the exception; None means `sys.exception()`; an `exc_info` tuple is accepted. Anything else is
                reported as a message.
            severity: low, medium, high or critical.
            context: where it happened (default: `module.function` of the innermost application frame).
            kind: runtime, build, ci or job.
            **extra: added to the event's `additional_data` (scrubbed; made JSON-safe on the sender thread).

        Returns:
            True when the event was queued (False: no exception, sampled out, closed, or an SDK failure).
        """
        try:
            if self._closed:
                return False
            if exc is None:
                exc = sys.exception()
                if exc is None:
                    return False
            if self._sample_rate < 1.0 and random.random() >= self._sample_rate:
                self.counters.sampled_out += 1
                return False
            now = time.time()
            if isinstance(exc, tuple) and len(exc) == 3 and isinstance(exc[1], BaseException):
                exc = exc[1]  # sys.exc_info() / a logging record's exc_info
            if not isinstance(exc, BaseException):
                message = safe_str(exc, self._max_chars)
                error_type = type_name(type(exc))
                rec = Captured(now, severity, kind, error_type, message, (), None, context, extra)
                return self._offer(rec, error_type, message)
            try:
                if getattr(exc, _CAPTURED_MARK, False):
                    return False  # already reported (e.g. by the middleware, then again by a logging handler)
                setattr(exc, _CAPTURED_MARK, True)
            except Exception:  # exceptions with __slots__ or a hostile __setattr__: report it, maybe twice
                pass
            chain = snapshot_exception(exc, self._max_frames, self._max_chars)
            top = chain[0]
            origin = _caller() if exc.__traceback__ is None and context is None else None  # never raised
            rec = Captured(now, severity, kind, top.type_name, top.message, chain, origin, context, extra)
            return self._offer(rec, top.type_name, top.message)
        except Exception:
            self.counters.internal_errors += 1
            return False

    def capture_message(
        self,
        message: object,
        severity: SeverityName = "medium",
        *,
        error_type: str = "Message",
        context: str | None = None,
        kind: KindName = "runtime",
        **extra: Any,
    ) -> bool:
        """Report a message that is not an exception (no stack trace). Never raises, never blocks on I/O.

        Args:
            message: the text (anything else is converted with `str`, safely).
            severity: low, medium, high or critical.
            error_type: groups messages on the server (default "Message").
            context: where it happened (default: `module.function` of the caller).
            kind: runtime, build, ci or job.
            **extra: added to the event's `additional_data`.

        Returns:
            True when the event was queued.
        """
        try:
            if self._closed:
                return False
            if self._sample_rate < 1.0 and random.random() >= self._sample_rate:
                self.counters.sampled_out += 1
                return False
            text = safe_str(message, self._max_chars)
            origin = _caller() if context is None else None
            rec = Captured(time.time(), severity, kind, safe_str(error_type, 256), text, (), origin, context, extra)
            return self._offer(rec, rec.error_type, text)
        except Exception:
            self.counters.internal_errors += 1
            return False

    # -- control ---------------------------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event captured so far has been sent, spooled or dropped.

        Returns:
            True when the queue emptied within `timeout` seconds.
        """
        return self._buffer.wait_idle(timeout, self._sender.thread)

    def close(self, timeout: float | None = None) -> None:
        """Stop capturing, send (one attempt per batch) or spool what is queued, and stop the sender thread.

        Args:
            timeout: seconds to wait for the sender (default `shutdown_timeout`); whatever is still queued
                after that is written to the spool from this thread, so a restart resends it.
        """
        if self._closed:
            return
        self._closed = True
        _live_clients.discard(self)
        finished = self._sender.stop(self.options.shutdown_timeout if timeout is None else timeout)
        if not finished:
            self._spool_leftovers()

    def _spool_leftovers(self) -> None:
        renderer = Renderer(self.options, self._scrubber)
        spool = Spool(self.options.spool_path, self.options.spool_max_bytes)
        lines = []
        for rec in self._buffer.drain():
            try:
                lines.append(renderer.render(rec))
            except Exception:
                self.counters.failed += 1
        try:
            written, dropped = spool.put(lines)
            self.counters.spooled += written
            self.counters.dropped_spool_full += dropped
        except OSError:
            self.counters.failed += len(lines)

    def stats(self) -> dict[str, int]:
        """Counters (see `errlearn_sdk.stats.Counters`) plus `queued` and `server_down` (0/1)."""
        snapshot = self.counters.snapshot()
        snapshot["queued"] = self._buffer.backlog()
        snapshot["server_down"] = int(self._sender.server_down)
        return snapshot

    @property
    def closed(self) -> bool:
        return self._closed

    def _after_fork_in_child(self) -> None:
        # The sender thread does not exist in the child.
        self._buffer.reset_after_fork()
        if not self._closed:
            self._sender = self._new_sender()
            self._sender.start()


def _caller() -> Frame:
    """Where the application called the SDK (skipping the SDK's own frames, e.g. `errlearn_sdk.capture_message`)."""
    caller = sys._getframe(2)
    while caller.f_back is not None and caller.f_code.co_filename in _SDK_FILES:
        caller = caller.f_back
    return caller.f_code, caller.f_lineno


def is_sender_thread() -> bool:
    """True on an SDK sender thread (integrations ignore errors raised there, to avoid feedback loops)."""
    return threading.current_thread().name == THREAD_NAME


_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for client in list(_live_clients):
        try:
            client.close()
        except Exception:
            log.debug("errlearn: close at exit failed", exc_info=True)


def _reinit_after_fork() -> None:
    for client in list(_live_clients):
        client._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
