"""Backpressure: when the writer falls behind, ingest answers 503 with `Retry-After` instead of queueing.

Events wait in the writer's queue between the request and the commit; without a bound a burst
larger than the database absorbs grows that queue (and memory) without limit while every caller
waits longer. Past `writer_max_queued_events` a request is refused before its body is read: nothing
of it was acknowledged, and every SDK (ours and Sentry's) retries after `Retry-After`. The writer
checks the bound again when a request's events are queued (`WriterBusy`), so the queue never holds
more than the bound plus one request's events.
"""

from __future__ import annotations

from agent import metrics
from agent.api.errors import ApiError
from agent.service import Core


def check(core: Core) -> None:
    """Raise a 503 `overloaded` when the writer's queue is at its bound (before the body is read)."""
    writer = core.writer
    if writer is not None and writer.queued_events >= core.settings.writer_max_queued_events:
        raise refused(core)


def refused(core: Core) -> ApiError:
    """Count one refusal and build its 503 (also for a `WriterBusy` from the writer itself)."""
    writer = core.writer
    limit = core.settings.writer_max_queued_events
    queued = writer.queued_events if writer is not None else 0
    core.live.add_refused_busy()
    metrics.record_backpressure()  # metrics
    retry = str(core.settings.backpressure_retry_after_s)
    return ApiError(
        503,
        "overloaded",
        f"the event writer is {queued} events behind (limit {limit}); retry after {retry} s",
        headers={"Retry-After": retry},
    )
