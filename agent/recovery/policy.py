"""When an action may run: cooldown per target, a rate cap per action, and a circuit breaker.

Pure functions of the run history and an injected clock, so they are tested without waiting.
The history comes from the proposals table (see `store.run_history`); dry runs count for
cooldowns and rate caps (a dry run is a faithful rehearsal of when things would have run) but
never for the breaker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from agent.recovery.config import ActionSpec

Clock = Callable[[], dt.datetime]
HOUR = dt.timedelta(hours=1)


class RunResult(StrEnum):
    ok = "ok"
    """Exited 0 and the outcome was good, inconclusive or not measured."""
    failed = "failed"
    """Non-zero exit, timeout, could not start, or the error rate did not drop."""
    pending = "pending"
    """Running, or exited 0 with the outcome check still to come."""
    dry_run = "dry_run"


@dataclass(frozen=True)
class RunRecord:
    """One run (or dry run) of an action, newest first in a history."""

    action_id: str
    target: str
    at: dt.datetime
    result: RunResult


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str = ""
    """`cooldown`, `rate_limited` or `breaker_open` when not allowed."""
    reason: str = ""
    retry_at: dt.datetime | None = None


ALLOW = Verdict(True)


class Policy:
    """Decides from the history whether a run may start now."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    @staticmethod
    def consecutive_failures(history: Sequence[RunRecord], reset_at: dt.datetime | None = None) -> int:
        """Failures since the last good run or breaker reset (pending runs and dry runs are neutral)."""
        count = 0
        for run in history:  # newest first
            if reset_at is not None and run.at <= reset_at:
                break
            if run.result is RunResult.failed:
                count += 1
            elif run.result is RunResult.ok:
                break
        return count

    def breaker_open(self, action: ActionSpec, history: Sequence[RunRecord], reset_at: dt.datetime | None) -> bool:
        return self.consecutive_failures(history, reset_at) >= action.breaker_threshold

    def check(
        self, action: ActionSpec, target: str, history: Sequence[RunRecord], reset_at: dt.datetime | None = None
    ) -> Verdict:
        """May `action` run now for `target`? `history` is this action's runs, newest first."""
        now = self.clock()
        failures = self.consecutive_failures(history, reset_at)
        if failures >= action.breaker_threshold:
            return Verdict(
                False,
                "breaker_open",
                f"circuit breaker open after {failures} consecutive failures; an admin must reset it",
            )
        cooldown = dt.timedelta(minutes=action.cooldown_minutes)
        last = next((r for r in history if r.target == target), None)
        if last is not None and cooldown and now < last.at + cooldown:
            until = last.at + cooldown
            return Verdict(False, "cooldown", f"cooldown until {until.isoformat(timespec='seconds')}", until)
        recent = [r for r in history if r.at > now - HOUR]
        if len(recent) >= action.max_runs_per_hour:
            until = min(r.at for r in recent) + HOUR
            return Verdict(
                False,
                "rate_limited",
                f"rate cap of {action.max_runs_per_hour} runs per hour reached; next slot "
                f"{until.isoformat(timespec='seconds')}",
                until,
            )
        return ALLOW
