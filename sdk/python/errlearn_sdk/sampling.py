"""Flood control: keep the first N events of a kind per window, then one in M, saying how many it stands for."""

from __future__ import annotations

from collections.abc import Hashable


class FloodControl:
    """Per-key windows. Not thread-safe: the client calls it under its queue lock.

    A kept event after the limit carries `sampled_count`, the number of events it represents (itself plus
    those skipped since the last kept one), so the server can still count occurrences.
    """

    def __init__(self, limit: int, window: float, keep_one_in: int, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.keep_one_in = keep_one_in
        self.max_keys = max_keys
        # key -> [window start, events seen in the window, skipped since the last kept one]
        self._windows: dict[Hashable, list[float]] = {}

    def admit(self, key: Hashable, now: float) -> int:
        """Return 0 to drop the event, else its `sampled_count` (1 for an unsampled event)."""
        state = self._windows.get(key)
        if state is None or now - state[0] >= self.window:
            carried = int(state[2]) if state is not None else 0
            if state is None and len(self._windows) >= self.max_keys:
                self._evict(now)
            self._windows[key] = [now, 1.0, 0.0]
            return 1 + carried
        state[1] += 1
        over = state[1] - self.limit
        if over <= 0:
            return 1
        if over % self.keep_one_in == 0:
            represented = int(state[2]) + 1
            state[2] = 0.0
            return represented
        state[2] += 1
        return 0

    def _evict(self, now: float) -> None:
        expired = [k for k, s in self._windows.items() if now - s[0] >= self.window]
        for k in expired:
            del self._windows[k]
        if len(self._windows) >= self.max_keys:
            # Too many distinct live keys (e.g. messages full of unique ids that the shape misses): start over
            # rather than grow without bound.
            self._windows.clear()
