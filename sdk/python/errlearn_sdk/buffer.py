"""The bounded in-memory queue between the calling threads and the sender thread.

Callers append under a lock held for well under a microsecond (flood control + append, no I/O);
when the queue is full the oldest event is dropped and counted. The sender takes batches and says
when it has disposed of them, which is what `wait_idle` (the client's `flush`) waits for.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from errlearn_sdk.capture import Captured, shape
from errlearn_sdk.sampling import FloodControl
from errlearn_sdk.stats import Counters


class EventBuffer:
    """Thread-safe; many producers, one consumer (the sender)."""

    def __init__(self, max_queue: int, batch_size: int, flood: FloodControl | None, counters: Counters) -> None:
        self.batch_size = batch_size
        self.flood = flood
        self.counters = counters
        self.wake = threading.Event()
        """Set when a full batch is waiting (or on flush/close): the sender need not wait for its interval."""
        self._queue: deque[Captured] = deque(maxlen=max_queue)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0

    def offer(self, rec: Captured, error_type: str, message: str) -> bool:
        """Queue an event unless flood control drops it. Returns True when queued."""
        queue = self._queue
        flood = self.flood
        key = shape(error_type, message) if flood is not None else None
        with self._lock:
            if flood is not None:
                represented = flood.admit(key, rec.timestamp)
                if not represented:
                    self.counters.sampled_out += 1
                    return False
                rec.sampled_count = represented
            if len(queue) == queue.maxlen:
                self.counters.dropped_queue_full += 1  # the deque drops the oldest on append
            queue.append(rec)
            self.counters.captured += 1
            backlog = len(queue)
        if backlog % self.batch_size == 0:
            self.wake.set()
        return True

    # -- the sender's side (sender.BatchSource) --------------------------------------------------------------

    def take(self, limit: int) -> list[Captured]:
        """Pop up to `limit` events, oldest first; they count as in flight until `taken_done()`."""
        queue = self._queue
        with self._lock:
            count = min(limit, len(queue))
            items = [queue.popleft() for _ in range(count)]
            self._inflight = count
        return items

    def taken_done(self) -> None:
        with self._lock:
            self._inflight = 0
            if not self._queue:
                self._idle.notify_all()

    def backlog(self) -> int:
        return len(self._queue)

    def drain(self) -> list[Captured]:
        """Take everything still queued (at close, when the sender did not finish in time)."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        return items

    # -- flush -----------------------------------------------------------------------------------------------

    def wait_idle(self, timeout: float, alive: threading.Thread) -> bool:
        """Wait until the queue is empty and nothing is in flight; False on timeout or if `alive` died."""
        deadline = time.monotonic() + max(0.0, timeout)
        self.wake.set()
        with self._lock:
            while self._queue or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not alive.is_alive():
                    return False
                self._idle.wait(min(remaining, 0.05))
                self.wake.set()
        return True

    def reset_after_fork(self) -> None:
        """In a forked child: fresh locks (another thread may have held them at the fork) and an empty queue
        (the parent still owns and sends what was queued)."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.wake = threading.Event()
        self._queue.clear()
        self._inflight = 0
