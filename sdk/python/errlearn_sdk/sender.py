"""The background sender: render queued events, post them in batches, retry, spool, and drain the spool.

One daemon thread per client. It is the only place that does I/O, so the application's threads never
wait on the network or the disk. While the server is down (a batch failed all its retries) fresh
batches go straight to the spool; after a growing pause one spooled batch probes the server, and once
it answers the spool drains oldest first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from typing import Protocol

from errlearn_sdk.capture import Captured
from errlearn_sdk.options import ClientOptions
from errlearn_sdk.render import Renderer
from errlearn_sdk.spool import Spool
from errlearn_sdk.stats import Counters
from errlearn_sdk.transport import HttpTransport, Outcome, SendResult, batch_body

log = logging.getLogger("errlearn.sdk")

THREAD_NAME = "errlearn-sdk-sender"
_BODY_OVERHEAD = len(batch_body([]))
_PAUSE_EVERY = 10
_PAUSE_SECONDS = 0.0001
_SPOOL_RECHECK_SECONDS = 60.0
"""How often to look for batches other processes left in a shared spool."""


class BatchSource(Protocol):
    """The client's queue, as the sender sees it (`buffer.EventBuffer`)."""

    wake: threading.Event
    """Set by producers when a full batch waits, and by flush/close."""

    def take(self, limit: int) -> list[Captured]:
        """Pop up to `limit` events, oldest first, and mark them in flight."""
        ...

    def taken_done(self) -> None:
        """The events from the last `take` were sent, spooled or dropped."""
        ...

    def backlog(self) -> int:
        """Events waiting in the queue."""
        ...


class Sender:
    """Owns the sender thread; `start()` once, `stop()` once."""

    def __init__(
        self,
        source: BatchSource,
        renderer: Renderer,
        transport: HttpTransport,
        spool: Spool,
        options: ClientOptions,
        counters: Counters,
    ) -> None:
        self.source = source
        self.renderer = renderer
        self.transport = transport
        self.spool = spool
        self.options = options
        self.counters = counters
        self.wake = source.wake
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._failures = 0
        self._down_until = 0.0
        self._spool_maybe_ready = True
        self._spool_checked_at = 0.0
        self._logged: set[str] = set()

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float) -> bool:
        """Ask the thread to send (one attempt per batch) or spool what is queued, and wait for it.

        Returns:
            True when the thread finished within `timeout`.
        """
        self.stopping.set()
        self.wake.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)
        return not self.thread.is_alive()

    @property
    def server_down(self) -> bool:
        return time.monotonic() < self._down_until

    # -- the loop --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            released = self.spool.recover()
            if released:
                log.info("errlearn: released %d spooled batches left by stopped processes", released)
        except Exception:
            log.debug("errlearn: spool recovery failed", exc_info=True)
        while True:
            self.wake.wait(self.options.flush_interval)
            self.wake.clear()
            stopping = self.stopping.is_set()
            try:
                if not stopping:
                    self._drain_spool()
                self._drain_queue(stopping)
            except Exception:  # a bug here must not kill the thread: the next cycle starts afresh
                self._log_once("loop", logging.ERROR, "errlearn: sender cycle failed", exc_info=True)
            if stopping:
                break
        self.transport.close()

    def _drain_queue(self, stopping: bool) -> None:
        while True:
            records = self.source.take(self.options.batch_size)
            if not records:
                return
            try:
                lines = self._render(records)
                for chunk in self._chunks(lines):
                    if self.server_down:
                        self._to_spool(chunk)
                    else:
                        retries = 0 if stopping else self.options.max_retries
                        for part in self._send(chunk, uuid.uuid4().hex, retries):
                            self._to_spool(part)
            finally:
                self.source.taken_done()

    def _drain_spool(self) -> None:
        now = time.monotonic()
        if now - self._spool_checked_at > _SPOOL_RECHECK_SECONDS:
            self._spool_maybe_ready = True
        if not self._spool_maybe_ready or self.server_down:
            return
        batch_size = self.options.batch_size
        while not self.stopping.is_set() and self.source.backlog() < batch_size:
            entry = self.spool.claim_oldest()
            if entry is None:
                self._spool_maybe_ready = False
                self._spool_checked_at = time.monotonic()
                return
            # The file name is the batch id: a resend after a lost answer carries the same Idempotency-Key.
            leftovers = self._send(entry.lines, entry.name, retries=0)
            if not leftovers:
                self.spool.done(entry)
            elif leftovers == [entry.lines]:
                self.spool.release(entry)
                return
            else:  # split by a 413 and only partly delivered: keep the rest as new batches
                self.spool.done(entry)
                for part in leftovers:
                    self._to_spool(part)

    # -- one batch -------------------------------------------------------------------------------------------

    def _send(self, lines: list[bytes], batch_id: str, retries: int) -> list[list[bytes]]:
        """Deliver `lines`, retrying; returns the parts that still need delivering (to be spooled)."""
        attempt = 0
        while True:
            result = self.transport.send(batch_body(lines), batch_id)
            outcome = result.outcome
            if outcome is Outcome.DELIVERED:
                self._delivered(result, len(lines))
                return []
            if outcome is Outcome.TOO_LARGE:
                if len(lines) == 1:
                    self.counters.failed += 1
                    self._log_once("413", logging.WARNING, "errlearn: server refused one event as too large")
                    return []
                mid = len(lines) // 2
                return self._send(lines[:mid], f"{batch_id}.0", retries) + self._send(
                    lines[mid:], f"{batch_id}.1", retries
                )
            if outcome is Outcome.UNAUTHORIZED or outcome is Outcome.INVALID:
                self.counters.failed += len(lines)
                what = "the API key was refused" if outcome is Outcome.UNAUTHORIZED else "the batch was refused"
                self._log_once(
                    f"status-{result.status}",
                    logging.ERROR,
                    "errlearn: %s (HTTP %s); dropping events: %s",
                    what,
                    result.status,
                    result.detail,
                )
                return []
            # Outcome.RETRY
            if attempt >= retries or self.stopping.is_set():
                self._mark_down(result)
                return [lines]
            attempt += 1
            self.counters.retries += 1
            if self.stopping.wait(self._delay(attempt, result)):
                return [lines]

    def _delivered(self, result: SendResult, count: int) -> None:
        self.counters.sent += count if result.accepted is None else result.accepted
        if result.rejected:
            self.counters.rejected += result.rejected
            self._log_once("rejected", logging.WARNING, "errlearn: server rejected events, e.g. %s", result.detail)
        if self._failures:
            log.info("errlearn: server reachable again; sending spooled events")
            self._logged.discard("down")
        self._failures = 0
        self._down_until = 0.0

    def _mark_down(self, result: SendResult) -> None:
        self._failures += 1
        pause = min(self.options.backoff_max, self.options.backoff_base * 2.0 ** min(self._failures, 30))
        self._down_until = time.monotonic() + pause * random.uniform(0.5, 1.0)
        self._log_once(
            "down",
            logging.WARNING,
            "errlearn: server unreachable (%s); spooling to %s",
            result.detail,
            self.spool.directory,
        )

    def _delay(self, attempt: int, result: SendResult) -> float:
        ceiling = min(self.options.backoff_max, self.options.backoff_base * 2.0 ** (attempt - 1))
        if result.retry_after is not None:
            return min(self.options.backoff_max, result.retry_after)
        # Equal jitter: spread clients that failed together, but never retry at once.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _render(self, records: list[Captured]) -> list[bytes]:
        lines = []
        for index, rec in enumerate(records, 1):
            try:
                lines.append(self.renderer.render(rec))
            except Exception:
                self.counters.failed += 1
                self._log_once("render", logging.ERROR, "errlearn: could not render an event", exc_info=True)
            if index % _PAUSE_EVERY == 0:
                # Rendering is pure Python and holds the GIL: an application thread that wants it would wait
                # up to the switch interval (5 ms). A short real sleep hands it over within ~0.5 ms instead.
                time.sleep(_PAUSE_SECONDS)
        return lines

    def _chunks(self, lines: list[bytes]) -> list[list[bytes]]:
        """Split so that no request body passes `max_batch_bytes` (a single huge event goes alone)."""
        chunks: list[list[bytes]] = []
        current: list[bytes] = []
        size = _BODY_OVERHEAD
        for line in lines:
            if current and size + len(line) + 1 > self.options.max_batch_bytes:
                chunks.append(current)
                current, size = [], _BODY_OVERHEAD
            current.append(line)
            size += len(line) + 1
        if current:
            chunks.append(current)
        return chunks

    def _to_spool(self, lines: list[bytes]) -> None:
        try:
            written, dropped = self.spool.put(lines)
        except OSError as exc:
            self.counters.failed += len(lines)
            self._log_once("spool", logging.ERROR, "errlearn: cannot write the spool, events lost: %s", exc)
            return
        self.counters.spooled += written
        self.counters.dropped_spool_full += dropped
        self._spool_maybe_ready = True

    def _log_once(self, key: str, level: int, msg: str, *args: object, exc_info: bool = False) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args, exc_info=exc_info)
