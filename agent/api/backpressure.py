"""Backpressure: when the writer falls behind, ingest answers 503 with `Retry-After` instead of queueing.

Events wait in the writer's queue between the request and the commit; without a bound a burst
larger than the database absorbs grows that queue (and memory) without limit while every caller
waits longer. Past `writer_max_queued_events` a request is refused before its body is read: nothing
of it was acknowledged, and every SDK (ours and Sentry's) retries after `Retry-After`. The writer
checks the bound again when a request's events are queued (`WriterBusy`), so the queue never holds
more than the bound plus one request's events.

With the Redis Streams ingest buffer on, the bound is the stream's (`ingest_buffer_max_entries` entries not
yet stored): the early check reads the length last seen, the add script itself refuses past it (`StreamBusy`).
"""

from __future__ import annotations

from agent import metrics
from agent.api.errors import ApiError
from agent.service import Core
from agent.store.writer import WriterBusy


def check(core: Core) -> None:
    """Raise a 503 `overloaded` when the writer's queue is at its bound (before the body is read)."""
    buffer = core.buffer
    writer = core.writer
    # With the buffer, the writer is fed by its consumer only (a bounded read at a time): the stream is the queue.
    if buffer is None and writer is not None and writer.queued_events >= core.settings.writer_max_queued_events:
        raise refused(core)
    if buffer is not None and buffer.full:
        raise refused(
            core,
            f"the ingest buffer holds {buffer.last_length} entries not yet stored (limit {buffer.config.max_entries})",
        )


def refused(core: Core, detail: WriterBusy | str | None = None) -> ApiError:
    """Count one refusal and build its 503 (also for a `WriterBusy` from the writer or the ingest buffer)."""
    core.live.add_refused_busy()
    metrics.record_backpressure()  # metrics
    retry = str(core.settings.backpressure_retry_after_s)
    if core.buffer is not None and detail is not None:
        message = f"{detail}; retry after {retry} s"
    else:
        writer = core.writer
        limit = core.settings.writer_max_queued_events
        queued = writer.queued_events if writer is not None else 0
        message = f"the event writer is {queued} events behind (limit {limit}); retry after {retry} s"
    return ApiError(503, "overloaded", message, headers={"Retry-After": retry})
