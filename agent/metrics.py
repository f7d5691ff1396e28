"""errlearn's Prometheus metrics. Every metric errlearn exports is defined in this module.

Two kinds of numbers:

- *Events in this process* (counters and histograms): events stored and rejected, writer batches, jobs
  run, model calls, recovery actions. Code elsewhere reports them through the ``record_*`` functions
  below, which write to the process's active :class:`Metrics` and never raise (a metrics bug must not
  break ingest).
- *State in the database* (read at scrape time by :class:`_StateCollector`): patterns open/resolved, jobs
  by kind and status, learning runs, guide entries, current diagnoses, the writer's queue depth. Because
  they come from the database they are right whichever process (``serve`` or ``worker``) did the work;
  only the API's registry carries them, so Prometheus does not see them twice.

Each app gets its own ``CollectorRegistry`` (tests build many apps in one process); :func:`install`
makes one the process's active registry. Label values that come from clients are capped (the first
``SERVICE_LABEL_LIMIT`` services keep their name, later ones are counted as ``"other"``), so a client
inventing service names cannot grow Prometheus without bound.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, column, func, select, table

from agent import __version__
from agent.store.tables import DiagnosisRow, JobRow, LearningRunRow, PatternRow, table_of

log = logging.getLogger(__name__)

SERVICE_LABEL_LIMIT = 200
"""Distinct `service` label values kept per process; later services are counted as `OTHER`."""
SMALL_LABEL_LIMIT = 50
"""Cap for labels the code chooses (reasons, models, agents, actions, outcomes): a guard, not a budget."""
OTHER = "other"
STATE_CACHE_S = 5.0
"""Database-backed values are reused for this long, so several scrapers cost one set of queries."""
UNFINISHED_RUNS = ("queued", "running")

PATTERNS = table_of(PatternRow)
JOBS = table_of(JobRow)
RUNS = table_of(LearningRunRow)
DIAGNOSES = table_of(DiagnosisRow)
# The guide layer owns its tables; a light reference keeps this module independent of its code.
GUIDE_ENTRIES = table("guide_entries", column("status"))

_P = ParamSpec("_P")


class LabelCap:
    """Bounds one label's cardinality: the first `limit` distinct values pass, later ones become `OTHER`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:  # the common case takes no lock
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
            return value


class _Stored(Protocol):
    """What the writer returns per event (agent.store.writer.Stored)."""

    @property
    def pattern_id(self) -> str: ...
    @property
    def new_pattern(self) -> bool: ...


class _Writer(Protocol):
    @property
    def depth(self) -> int: ...


class _Buffer(Protocol):
    def lag(self) -> int | None: ...


class _Core(Protocol):
    """What the state collector reads from `agent.service.Core` (a protocol: metrics sits below the service)."""

    @property
    def engine(self) -> Engine: ...
    @property
    def writer(self) -> _Writer | None: ...
    @property
    def buffer(self) -> _Buffer | None: ...


class _ModelResult(Protocol):
    """The usage fields shared by `Diagnosis` and `AskResult`."""

    @property
    def model(self) -> str: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def latency_ms(self) -> int: ...


@dataclass
class _StateSnapshot:
    database_up: bool = False
    patterns: dict[str, int] = field(default_factory=dict)
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    drafts_created: int = 0
    guide_entries: dict[str, int] = field(default_factory=dict)
    diagnoses: dict[str, int] = field(default_factory=dict)


def _read_state(conn: Connection) -> _StateSnapshot:
    snap = _StateSnapshot(database_up=True)
    for resolved, n in conn.execute(select(PATTERNS.c.resolved, func.count()).group_by(PATTERNS.c.resolved)):
        snap.patterns["resolved" if resolved else "open"] = int(n)
    for kind, status, n in conn.execute(
        select(JOBS.c.kind, JOBS.c.status, func.count()).group_by(JOBS.c.kind, JOBS.c.status)
    ):
        snap.jobs[(kind, status)] = int(n)
    for status, n in conn.execute(select(RUNS.c.status, func.count()).group_by(RUNS.c.status)):
        snap.runs[status] = int(n)
    snap.drafts_created = int(conn.execute(select(func.coalesce(func.sum(RUNS.c.drafts_created), 0))).scalar() or 0)
    for status, n in conn.execute(
        select(DIAGNOSES.c.status, func.count()).where(DIAGNOSES.c.current.is_(True)).group_by(DIAGNOSES.c.status)
    ):
        snap.diagnoses[status] = int(n)
    try:  # last: on PostgreSQL a failed statement spoils the rest of the transaction
        rows = conn.execute(select(GUIDE_ENTRIES.c.status, func.count()).group_by(GUIDE_ENTRIES.c.status)).all()
        snap.guide_entries = {status: int(n) for status, n in rows}
    except Exception:  # the guide layer's tables are optional here
        log.debug("guide_entries not readable", exc_info=True)
    return snap


class _StateCollector(Collector):
    """Reads the database (and the writer's queue) when Prometheus scrapes; cached for `STATE_CACHE_S`."""

    def __init__(self, core: Callable[[], _Core | None]) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._cached: tuple[float, _StateSnapshot] | None = None

    def _snapshot(self, core: _Core) -> _StateSnapshot:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < STATE_CACHE_S:
                return self._cached[1]
            try:
                with core.engine.connect() as conn:
                    snap = _read_state(conn)
            except Exception:  # a scrape must still answer, saying the database is down
                log.warning("metrics: reading state from the database failed", exc_info=True)
                snap = _StateSnapshot(database_up=False)
            self._cached = (now, snap)
            return snap

    def collect(self) -> Iterator[Metric]:
        core = self._core()
        snap = self._snapshot(core) if core is not None else _StateSnapshot()
        depth = GaugeMetricFamily("errlearn_writer_queue_depth", "Requests waiting for the event writer.")
        if core is not None and core.writer is not None:
            depth.add_metric([], core.writer.depth)
        yield depth
        lag = GaugeMetricFamily(
            "errlearn_ingest_buffer_lag_entries",
            "Redis ingest buffer: entries (ingest requests) acknowledged and not yet stored; absent when it is off.",
        )
        buffer = core.buffer if core is not None else None
        if buffer is not None and (entries := buffer.lag()) is not None:
            lag.add_metric([], entries)
        yield lag
        up = GaugeMetricFamily("errlearn_database_up", "1 when the last metrics read of the database worked.")
        if core is not None:
            up.add_metric([], 1 if snap.database_up else 0)
        yield up
        patterns = GaugeMetricFamily(
            "errlearn_patterns", "Error patterns in the database by status (open, resolved).", labels=["status"]
        )
        jobs = GaugeMetricFamily(
            "errlearn_jobs", "Background jobs in the database by kind and status.", labels=["kind", "status"]
        )
        runs = CounterMetricFamily(
            "errlearn_learning_runs", "Finished learning runs by final status.", labels=["status"]
        )
        pending = GaugeMetricFamily(
            "errlearn_learning_runs_pending", "Learning runs queued or running.", labels=["status"]
        )
        drafts = CounterMetricFamily("errlearn_guide_drafts_created", "Guide entries drafted by learning runs.")
        guide = GaugeMetricFamily(
            "errlearn_guide_entries", "Guide entries by status (draft, approved …).", labels=["status"]
        )
        diagnoses = GaugeMetricFamily(
            "errlearn_diagnoses", "Current diagnoses by status (diagnosed, inconclusive …).", labels=["status"]
        )
        if snap.database_up:
            for status in ("open", "resolved"):
                patterns.add_metric([status], snap.patterns.get(status, 0))
            for (kind, status), n in sorted(snap.jobs.items()):
                jobs.add_metric([kind, status], n)
            for status in UNFINISHED_RUNS:
                pending.add_metric([status], snap.runs.get(status, 0))
            for status, n in sorted(snap.runs.items()):
                if status not in UNFINISHED_RUNS:
                    runs.add_metric([status], n)
            drafts.add_metric([], snap.drafts_created)
            for status, n in sorted(snap.guide_entries.items()):
                guide.add_metric([status], n)
            for status, n in sorted(snap.diagnoses.items()):
                diagnoses.add_metric([status], n)
        yield from (patterns, jobs, runs, pending, drafts, guide, diagnoses)


class Metrics:
    """One registry and the metric objects in it.

    Args:
        registry: default a new, empty one (not prometheus_client's process-wide default).
        core: returns the app's core when there is one; database-backed metrics are exported only then
            (the API's registry), so a worker's registry does not repeat them.
        service_limit: distinct `service` label values before the rest become `"other"`.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        core: Callable[[], _Core | None] | None = None,
        service_limit: int = SERVICE_LABEL_LIMIT,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.service_label = LabelCap(service_limit)
        self.small_label = LabelCap(SMALL_LABEL_LIMIT)
        info = Gauge("errlearn_build_info", "errlearn's version (always 1).", ["version"], registry=r)
        info.labels(__version__).set(1)
        self.events_received = Counter(
            "errlearn_events_received",
            "Events durably stored, by service (first 200, then 'other') and severity.",
            ["service", "severity"],
            registry=r,
        )
        self.events_rejected = Counter(
            "errlearn_events_rejected", "Events refused at ingest, by reason.", ["reason"], registry=r
        )
        self.patterns_created = Counter("errlearn_patterns_created", "New error patterns created.", registry=r)
        self.backpressure = Counter(
            "errlearn_ingest_backpressure",
            "Ingest requests answered 503 + Retry-After because the writer was behind.",
            registry=r,
        )
        self.writer_batch_events = Histogram(
            "errlearn_writer_batch_events",
            "Events per writer transaction (group commit).",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.writer_commit_seconds = Histogram(
            "errlearn_writer_commit_seconds",
            "Time to group, store and commit one writer batch.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.job_seconds = Histogram(
            "errlearn_job_duration_seconds",
            "Background job run time by kind and outcome (done, failed).",
            ["kind", "outcome"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
            registry=r,
        )
        self.llm_calls = Counter(
            "errlearn_llm_calls", "Model calls by agent and model.", ["agent", "model"], registry=r
        )
        self.llm_tokens = Counter(
            "errlearn_llm_tokens",
            "Model tokens by agent, model and direction (input, output).",
            ["agent", "model", "direction"],
            registry=r,
        )
        self.llm_seconds = Histogram(
            "errlearn_llm_call_duration_seconds",
            "Model call latency by agent.",
            ["agent"],
            buckets=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0),
            registry=r,
        )
        self.recovery_actions = Counter(
            "errlearn_recovery_actions",
            "Recovery actions by allow-listed action id and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        if core is not None:
            r.register(_StateCollector(core))

    # -- recording (called through the module functions below) ---------------------------------------------
    def committed(
        self, events: Sequence[Mapping[str, Any]], results: Iterable[Iterable[_Stored]], seconds: float
    ) -> None:
        tally = Tally((str(e["service"]), str(e["severity"])) for e in events)
        for (service, severity), n in tally.items():
            self.events_received.labels(self.service_label(service), self.small_label(severity)).inc(n)
        new = {s.pattern_id for stored in results for s in stored if s.new_pattern}
        if new:
            self.patterns_created.inc(len(new))
        self.writer_batch_events.observe(len(events))
        self.writer_commit_seconds.observe(seconds)

    def rejected(self, n: int, reason: str) -> None:
        self.events_rejected.labels(self.small_label(reason)).inc(n)

    def refused_busy(self) -> None:
        self.backpressure.inc()

    def llm_call(self, agent: str, result: _ModelResult) -> None:
        agent, model = self.small_label(agent), self.small_label(result.model)
        self.llm_calls.labels(agent, model).inc()
        self.llm_tokens.labels(agent, model, "input").inc(max(result.input_tokens, 0))
        self.llm_tokens.labels(agent, model, "output").inc(max(result.output_tokens, 0))
        self.llm_seconds.labels(agent).observe(max(result.latency_ms, 0) / 1000)

    def job(self, kind: str, outcome: str, seconds: float) -> None:
        self.job_seconds.labels(self.small_label(kind), self.small_label(outcome)).observe(seconds)

    def recovery(self, action_id: str, outcome: str) -> None:
        self.recovery_actions.labels(self.small_label(action_id), self.small_label(outcome)).inc()


# -- the process's active metrics ------------------------------------------------------------------------------
_active: Metrics | None = None
_active_lock = threading.Lock()


def install(metrics: Metrics) -> Metrics:
    """Make `metrics` the one the ``record_*`` functions write to (the last app or worker built wins)."""
    global _active
    with _active_lock:
        _active = metrics
    return metrics


def current() -> Metrics:
    """The active metrics; a fresh, unexported set when nothing was installed (e.g. a CLI command)."""
    global _active
    if _active is None:
        with _active_lock:
            if _active is None:
                _active = Metrics()
    return _active


def _never_raise(fn: Callable[_P, None]) -> Callable[_P, None]:
    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:  # a metrics bug must never fail an ingest, a job or a model call
            log.exception("recording metric %s failed", fn.__name__)

    return wrapper


@_never_raise
def record_commit(events: Sequence[Mapping[str, Any]], results: Iterable[Iterable[_Stored]], seconds: float) -> None:
    """After a writer commit: events by service/severity, new patterns, batch size, commit latency."""
    if events:
        current().committed(events, results, seconds)


@_never_raise
def record_rejected(n: int, reason: str) -> None:
    """`n` events refused for `reason` (e.g. "validation", "invalid_json")."""
    current().rejected(n, reason)


@_never_raise
def record_backpressure() -> None:
    """One ingest request refused with 503 because the writer's queue was full."""
    current().refused_busy()


@_never_raise
def record_llm_call(agent: str, result: _ModelResult) -> None:
    """One model call by `agent` ("diagnosis", "ask" …) with the usage on its `Diagnosis`/`AskResult`."""
    current().llm_call(agent, result)


@_never_raise
def record_job(kind: str, outcome: str, seconds: float) -> None:
    """A background job of `kind` finished with `outcome` ("done" or "failed") after `seconds`."""
    current().job(kind, outcome, seconds)


@_never_raise
def record_recovery(action_id: str, outcome: str) -> None:
    """A recovery action (allow-listed id) ended with `outcome` (e.g. "succeeded", "failed", "refused")."""
    current().recovery(action_id, outcome)


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint started by :func:`start_metrics_server`."""

    port: int
    stop: Callable[[], None]


def start_metrics_server(metrics: Metrics, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve `metrics` at http://host:port/metrics from a daemon thread (for `errlearn worker`).

    `port=0` picks a free port (see `MetricsServer.port`).
    """
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return MetricsServer(port=int(server.server_port), stop=stop)
