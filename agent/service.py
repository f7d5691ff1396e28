"""The core use cases. The API, the CLI, the worker and the eval runner all call these."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from agent import __version__, metrics
from agent.domain import ErrorEvent, Pattern, Severity
from agent.ingest.normalize import EventCreate, Normalizer
from agent.ingest.scrub import CachedScrubber
from agent.settings import Settings
from agent.store import analytics, repo
from agent.store.checkpoint import WalCheckpointer, take_over_checkpoints
from agent.store.db import make_engine, migrate, ping
from agent.store.sink import JsonlSink
from agent.store.sink_queue import BackgroundSink
from agent.store.writer import EventWriter, PatternHook, Stored

if TYPE_CHECKING:
    from agent.store.stream_buffer import StreamBuffer

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class LiveStats:
    """Counters since this process started (the durable ones live in the `counters` table)."""

    started_at: dt.datetime
    received: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    refused_busy: int = 0
    """Ingest requests answered 503 by backpressure (nothing of them was stored)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_received(self, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            for r in rows:
                self.received["total"] += 1
                self.received[f"service:{r['service']}"] += 1
                self.received[f"severity:{r['severity']}"] += 1

    def add_refused_busy(self) -> None:
        with self.lock:
            self.refused_busy += 1

    def add_rejected(self, n: int, reason: str) -> None:
        with self.lock:
            self.rejected["total"] += n
            self.rejected[f"reason:{reason}"] += n


def _split(counter: dict[str, int], total_key: str) -> dict[str, Any]:
    by_service = {k.split(":", 1)[1]: v for k, v in counter.items() if k.startswith("service:")}
    by_severity = {k.split(":", 1)[1]: v for k, v in counter.items() if k.startswith("severity:")}
    by_reason = {k.split(":", 1)[1]: v for k, v in counter.items() if k.startswith("rejected:")}
    return {
        "received": counter.get(total_key, 0),
        "by_service": dict(sorted(by_service.items())),
        "by_severity": {s.value: by_severity.get(s.value, 0) for s in Severity},
        "rejected_by_reason": by_reason,
    }


class Core:
    """Owns the database engine and the event writer; everything else asks it."""

    def __init__(self, settings: Settings, *, clock: Clock = utcnow, pattern_hooks: list[PatternHook] | None = None):
        self.settings = settings
        self.clock = clock
        self.engine: Engine = make_engine(
            settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.checkpointer: WalCheckpointer | None = None
        self.scrubber = CachedScrubber(emails=settings.scrub_emails)
        self.normalize = Normalizer(
            self.scrubber, max_stack_bytes=settings.max_stack_bytes, max_message_bytes=settings.max_message_bytes
        )
        self.live = LiveStats(started_at=clock())
        self.pattern_hooks: list[PatternHook] = list(pattern_hooks or [])
        self.writer: EventWriter | None = None
        self.buffer: StreamBuffer | None = None
        """The Redis Streams ingest buffer, when `ingest_buffer_url` is set: ingest hands events to it."""
        self.started_monotonic = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self, *, consume: bool = False) -> Core:
        """Migrate, start the writer; with an ingest buffer configured, open it (its consumer with `consume`)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate(self.engine)
        if self.settings.sqlite_checkpoint_every_s > 0:  # SQLite files only; None on PostgreSQL
            self.checkpointer = take_over_checkpoints(self.engine, interval_s=self.settings.sqlite_checkpoint_every_s)
        sink = JsonlSink(
            self.settings.sink_dir, max_bytes=self.settings.sink_max_bytes, backups=self.settings.sink_backups
        )
        self.writer = EventWriter(
            self.engine,
            sink=BackgroundSink(sink),  # file writes off the commit path
            max_batch=self.settings.writer_max_batch,
            fold_every_s=self.settings.writer_fold_every_s,
            pattern_hooks=self.pattern_hooks,
            on_committed=self.live.add_received,
            on_commit=metrics.record_commit,
        )
        self.writer.start()
        if self.settings.ingest_buffer_url:
            self.buffer = self._open_buffer(self.writer, consume=consume and self.settings.ingest_buffer_consume)
        return self

    def _open_buffer(self, writer: EventWriter, *, consume: bool) -> StreamBuffer:
        from agent.store.stream_buffer import StreamBuffer, StreamConfig  # redis is an optional extra

        s = self.settings
        config = StreamConfig(
            url=s.ingest_buffer_url or "",
            stream=s.ingest_buffer_stream,
            group=s.ingest_buffer_group,
            max_entries=s.ingest_buffer_max_entries,
            claim_idle_ms=int(s.ingest_buffer_claim_idle_s * 1000),
            durability=s.ingest_buffer_durability,
        )
        return StreamBuffer(config, writer, consume=consume).open()

    def close(self) -> None:
        if self.buffer is not None:  # first: its consumer's last batch still goes through the writer
            self.buffer.close()
            self.buffer = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        self.engine.dispose()

    def _writer(self) -> EventWriter:
        if self.writer is None:
            raise RuntimeError("Core.open() was not called")
        return self.writer

    # -- ingest ------------------------------------------------------------------------------------
    async def ingest(self, bodies: list[EventCreate], *, idempotency_key: str | None = None) -> list[Stored]:
        now = self.clock()
        rows = [self.normalize(b, now) for b in bodies]
        # Bounded: past `writer_max_queued_events` the writer refuses (WriterBusy; the API answers 503).
        limit = self.settings.writer_max_queued_events
        # With the ingest buffer: acknowledged once durably in the stream (StreamBusy, a WriterBusy, past its bound).
        sink = self.buffer or self._writer()
        return await sink.write(rows, idempotency_key=idempotency_key, limit=limit)

    def ingest_sync(self, bodies: list[EventCreate]) -> list[Stored]:
        now = self.clock()
        return self._writer().write_sync([self.normalize(b, now) for b in bodies])

    def reject(self, n: int, reason: str) -> None:
        self.live.add_rejected(n, reason)
        metrics.record_rejected(n, reason)  # metrics
        self._writer().count({"rejected": n, f"rejected:{reason}": n})

    # -- reads -------------------------------------------------------------------------------------
    def event(self, event_id: str) -> ErrorEvent | None:
        with self.engine.connect() as conn:
            return repo.get_event(conn, event_id)

    def pattern(self, pattern_id: str) -> Pattern | None:
        with self.engine.connect() as conn:
            return repo.get_pattern(conn, pattern_id)

    def pattern_detail(self, pattern_id: str, samples: int = 10) -> tuple[Pattern, list[ErrorEvent]] | None:
        with self.engine.connect() as conn:
            pattern = repo.get_pattern(conn, pattern_id)
            if pattern is None:
                return None
            return pattern, repo.recent_events(conn, pattern_id, samples)

    def patterns(self, **filters: Any) -> tuple[list[Pattern], int]:
        with self.engine.connect() as conn:
            return repo.list_patterns(conn, **filters)

    def stats(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            durable = repo.counters(conn)
            reset_at = repo.get_meta(conn, "stats_reset_at")
        since_reset = _split(durable, "received")
        since_reset["rejected"] = durable.get("rejected", 0)
        since_reset["since"] = reset_at
        live: dict[str, int] = {**self.live.received}
        since_start = _split(live, "total")
        since_start["rejected"] = self.live.rejected.get("total", 0)
        since_start["rejected_by_reason"] = {
            k.split(":", 1)[1]: v for k, v in self.live.rejected.items() if k.startswith("reason:")
        }
        since_start["since"] = self.live.started_at.isoformat()
        return {"since_start": since_start, "since_reset": since_reset}

    def reset_stats(self) -> dt.datetime:
        now = self.clock()
        with self.engine.begin() as conn:
            repo.reset_counters(conn, now)
        return now

    def analytics(self, *, hours: int = 24, bucket: analytics.Bucket = "hour", top: int = 10) -> dict[str, Any]:
        since = self.clock() - dt.timedelta(hours=hours)
        with self.engine.connect() as conn:
            return {
                "window": {"since": since.isoformat(), "hours": hours, "bucket": bucket},
                "trends": analytics.trends(conn, since=since, bucket=bucket),
                "top_patterns": analytics.top_patterns(conn, since=since, limit=top),
                "new_vs_recurring": analytics.new_vs_recurring(conn, since=since),
                "per_service": analytics.per_service(conn, since=since),
            }

    def request_learning(self, trigger: str) -> int:
        with self.engine.begin() as conn:
            return repo.record_learning_request(conn, trigger, self.clock())

    def status(self) -> dict[str, Any]:
        db_ok = ping(self.engine)
        out: dict[str, Any] = {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_monotonic, 1),
            "database": {"ok": db_ok, "backend": self.engine.dialect.name},
            "writer": {
                "queue_depth": self.writer.depth if self.writer else None,
                "batches": self.writer.batches if self.writer else 0,
                "events": self.writer.committed_events if self.writer else 0,
            },
            "backpressure": {
                "active": self.buffer.full  # with the ingest buffer, its stream is the bound (not the writer's queue)
                if self.buffer
                else bool(self.writer and self.writer.queued_events >= self.settings.writer_max_queued_events),
                "queued_events": self.writer.queued_events if self.writer else 0,
                "limit": self.settings.writer_max_queued_events,
                "refused_requests": self.live.refused_busy,
            },
            "ingest_buffer": self.buffer.status() if self.buffer else {"enabled": False},
        }
        if db_ok:
            with self.engine.connect() as conn:
                out["events"] = repo.count_events(conn)
                out["patterns"] = repo.count_patterns(conn)
                out["patterns_unindexed"] = repo.count_unindexed_patterns(conn)
                out["jobs"] = repo.job_counts(conn)
                out["learning_runs"] = repo.learning_runs(conn, 5)
        return out

    def ingest_activity(self) -> int:
        """Grows while events arrive (this process's committed events): the worker yields to it."""
        return self.writer.committed_events if self.writer else 0

    def healthy(self) -> bool:
        return ping(self.engine)
