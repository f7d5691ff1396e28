"""The JSONL sink off the commit path: a thread of its own writes the files after the writer commits.

The writer hands each committed batch over and goes back to committing; file writes (and their
rotation checks) no longer delay the next transaction. The database stays the source of truth:
lines that were queued when the process died are re-written from it by `replay` (`errlearn sink
replay --since ...`), so the files can always be made whole again.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, select

from agent.store.tables import EventRow, table_of

log = logging.getLogger(__name__)
EVENTS = table_of(EventRow)
REPLAY_CHUNK = 1000


class Sink(Protocol):
    def append(self, events: Iterable[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


class BackgroundSink:
    """Wraps a sink: `append` queues, a daemon thread writes; `close` drains the queue first."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._queue: queue.SimpleQueue[Sequence[Mapping[str, Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="errlearn-sink", daemon=True)
        self._thread.start()

    def append(self, events: Iterable[Mapping[str, Any]]) -> None:
        self._queue.put(list(events))

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                self.sink.append(chunk)
            except OSError:
                log.exception("JSONL sink write failed (events are safe in the database; `errlearn sink replay`)")

    def close(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        self.sink.close()


def replay(engine: Engine, sink: Sink, since: dt.datetime, until: dt.datetime | None = None) -> int:
    """Append every stored event received in [since, until) to `sink`, oldest first; returns how many."""
    cols = [c for c in EVENTS.c]
    query = select(*cols).where(EVENTS.c.received_at >= since).order_by(EVENTS.c.received_at, EVENTS.c.id)
    if until is not None:
        query = query.where(EVENTS.c.received_at < until)
    n = 0
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=REPLAY_CHUNK).execute(query)
        for part in result.mappings().partitions(REPLAY_CHUNK):
            sink.append([dict(row) for row in part])
            n += len(part)
    return n
