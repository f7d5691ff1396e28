"""Backpressure: when the writer falls behind, ingest answers 503 with `Retry-After` instead of queueing.

Events wait in the writer's queue between the request and the commit; without a bound a burst
larger than the database absorbs grows that queue (and memory) without limit while every caller
waits longer. Past `writer_max_queued_events` a request is refused before its body is read: nothing
of it was acknowledged, and every SDK (ours and Sentry's) retries after `Retry-After`.
"""

from __future__ import annotations

from agent import metrics
from agent.api.errors import ApiError
from agent.service import Core


def check(core: Core) -> None:
    """Raise a 503 `overloaded` when the writer's queue is at its bound."""
    writer = core.writer
    limit = core.settings.writer_max_queued_events
    if writer is None or writer.queued_events < limit:
        return
    core.live.add_refused_busy()
    metrics.record_backpressure()  # metrics
    retry = str(core.settings.backpressure_retry_after_s)
    raise ApiError(
        503,
        "overloaded",
        f"the event writer is {writer.queued_events} events behind (limit {limit}); retry after {retry} s",
        headers={"Retry-After": retry},
    )
