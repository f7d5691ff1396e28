"""What the UI keeps on `app.state.ui`: the session codec and the login throttle."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from threading import Lock

from starlette.requests import Request

from agent.api.ui.session import Sessions
from agent.keys import KeyRing


@dataclass
class LoginThrottle:
    """At most `limit` failed logins per client address in `window_s` (keys are long; this stops hammering)."""

    limit: int = 10
    window_s: float = 600.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: Lock = field(default_factory=Lock)

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.limit

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # bound memory under a spray of addresses
                self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


@dataclass
class UiState:
    sessions: Sessions
    throttle: LoginThrottle = field(default_factory=LoginThrottle)

    @staticmethod
    def keys(request: Request) -> KeyRing:
        ring: KeyRing = request.app.state.keys
        return ring


def ui_state(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state
