"""Did a run help? Compare the triggering pattern's error rate before and after it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection

from agent.recovery import store
from agent.recovery.models import OutcomeStatus


def rates(
    conn: Connection, pattern_id: str, started_at: dt.datetime, finished_at: dt.datetime, window_minutes: float
) -> tuple[float, float]:
    """Events per minute in the window before the run started and in the window after it finished."""
    window = dt.timedelta(minutes=window_minutes)
    before = store.count_events(conn, pattern_id, started_at - window, started_at)
    after = store.count_events(conn, pattern_id, finished_at, finished_at + window)
    return before / window_minutes, after / window_minutes


def judge(before: float, after: float) -> OutcomeStatus:
    """improved when the rate dropped; inconclusive when there was nothing to drop; else not_improved."""
    if before == 0 and after == 0:
        return "inconclusive"
    return "improved" if after < before else "not_improved"


def note(
    action_id: str,
    pattern_id: str,
    status: OutcomeStatus,
    before: float,
    after: float,
    window_minutes: float,
    at: dt.datetime,
) -> str:
    when = at.isoformat(timespec="seconds")
    rates_text = f"{before:.2f}/min before vs {after:.2f}/min after (windows of {window_minutes:g} min)"
    if status == "not_improved":
        return f"{action_id} at {when} did not reduce {pattern_id}: {rates_text}; escalated for a person to look at"
    if status == "improved":
        return f"{action_id} at {when} reduced {pattern_id}: {rates_text}"
    return f"{action_id} at {when}: {pattern_id} had no events before or after; nothing to compare"
