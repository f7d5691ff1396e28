"""Named conditions, decided from stored events and patterns only (never from model text).

Each condition looks back over a window of events by *received* time: the server's clock, which a
client cannot backdate, and the indexed column. A condition yields `Hit`s: which service it holds
for, the busiest matching pattern, and how many events support it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Connection, select

from agent.store.tables import EventRow, PatternRow

EVENTS = EventRow.__table__
PATTERNS = PatternRow.__table__
MAX_EVENTS_SCANNED = 20_000
"""Newest events read per evaluation; bounds the work when a service floods errors."""
TEXT_SCANNED = 4000
"""Characters of message/stack matched against detector regexes (bounds regex cost on hostile text)."""


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    window_minutes: float = Field(default=5.0, gt=0, le=24 * 60)
    """Look back this far."""
    min_events: int = Field(default=1, ge=1, le=1_000_000)
    """Matching events needed in the window."""
    services: list[str] = Field(default_factory=list, max_length=1000)
    """Only these services (empty: any)."""


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"regex does not compile: {exc}") from exc
    return value


class PatternCondition(_Condition):
    """Events of a given pattern (by id) or of patterns whose error type / template match regexes."""

    type: Literal["pattern"]
    pattern_id: str | None = Field(default=None, max_length=64)
    error_type: str | None = Field(default=None, max_length=500)
    """Regex searched in the pattern's error type."""
    template: str | None = Field(default=None, max_length=500)
    """Regex searched in the pattern's message template."""

    @field_validator("error_type", "template")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _regex(value)

    @model_validator(mode="after")
    def _something(self) -> PatternCondition:
        if not (self.pattern_id or self.error_type or self.template):
            raise ValueError("a pattern condition needs pattern_id, error_type or template")
        return self


class ErrorRateCondition(_Condition):
    """A service's error rate over the window is above a threshold."""

    type: Literal["error_rate"]
    threshold_per_minute: float = Field(gt=0)


class ServiceDownCondition(_Condition):
    """Connection refused / service unavailable errors, or a health-ping event saying a service is down.

    The service it holds for is `additional_data.target_service` when the event names one (a client
    reporting that its dependency is down), else the reporting service.
    """

    type: Literal["service_down"]


class HighMemoryCondition(_Condition):
    """MemoryError, OOMKilled, exit code 137, heap out of memory, or a memory metric above a threshold."""

    type: Literal["high_memory"]
    memory_percent: float = Field(default=90.0, gt=0, le=100)
    """`additional_data.memory_percent` (or `memory_usage_percent`) at or above this counts."""


class DatabaseConnectionCondition(_Condition):
    """The service cannot connect to its database."""

    type: Literal["database_connection_failed"]


class DiskFullCondition(_Condition):
    """No space left on device."""

    type: Literal["disk_full"]


ConditionSpec = Annotated[
    PatternCondition
    | ErrorRateCondition
    | ServiceDownCondition
    | HighMemoryCondition
    | DatabaseConnectionCondition
    | DiskFullCondition,
    Field(discriminator="type"),
]

_DOWN_TYPES = re.compile(r"ConnectionRefused|ServiceUnavailable|HealthCheck(Failed|Error)|ECONNREFUSED", re.I)
_DOWN_TEXT = re.compile(
    r"ECONNREFUSED|connection refused|service unavailable|\b503\b|health ?check failed|no healthy upstream"
    r"|upstream connect error",
    re.I,
)
_HEALTH_DOWN = frozenset({"down", "failed", "failing", "unhealthy", "unreachable"})
_MEMORY_TEXT = re.compile(
    r"MemoryError|OOMKilled|OutOfMemory|out of memory|heap out of memory|Cannot allocate memory|std::bad_alloc"
    r"|\b(exit|exited|exit code|exit status|status code|code)[ :=]*137\b",
    re.I,
)
_DB_TYPES = re.compile(
    r"OperationalError|InterfaceError|PSQLException|SQLException|Sequelize\w*Connection|"
    r"MongoNetworkError|MongoServerSelectionError|DatabaseError|PoolTimeout|CannotConnectNow",
    re.I,
)
_DB_CONNECT = re.compile(r"connect|connection|refused|timeout|timed out|too many (clients|connections)", re.I)
_DB_TEXT = re.compile(
    r"could not connect to (server|database)|connection to server .{0,200} failed|too many (clients|connections)"
    r"|Can't connect to MySQL|Connection terminated unexpectedly|SQLSTATE\[?08|QueuePool limit"
    r"|ECONNREFUSED [\w.\-\[\]:]*:(5432|3306|27017|1433|1521)\b",
    re.I,
)
_DISK_TEXT = re.compile(r"No space left on device|ENOSPC|disk (is )?full|Disk quota exceeded", re.I)


@dataclass(frozen=True)
class Hit:
    """A condition holding for one service."""

    condition: str
    service: str
    pattern_id: str | None
    events: int
    detail: str


@dataclass(frozen=True)
class _Event:
    pattern_id: str
    service: str
    error_type: str
    text: str
    data: dict[str, Any]
    received_at: dt.datetime


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None


def _is_down(ev: _Event) -> bool:
    health = ev.data.get("health") or ev.data.get("health_check")
    if isinstance(health, str) and health.lower() in _HEALTH_DOWN:
        return True
    return bool(_DOWN_TYPES.search(ev.error_type) or _DOWN_TEXT.search(ev.text))


def _is_memory(ev: _Event, threshold: float) -> bool:
    if ev.data.get("oom_killed") is True or _number(ev.data.get("exit_code")) == 137:
        return True
    for key in ("memory_percent", "memory_usage_percent", "mem_percent"):
        value = _number(ev.data.get(key))
        if value is not None and value >= threshold:
            return True
    return bool(_MEMORY_TEXT.search(ev.error_type) or _MEMORY_TEXT.search(ev.text))


def _is_db(ev: _Event) -> bool:
    if _DB_TEXT.search(ev.text):
        return True
    return bool(_DB_TYPES.search(ev.error_type) and _DB_CONNECT.search(ev.text))


def _is_disk(ev: _Event) -> bool:
    return bool(_DISK_TEXT.search(ev.error_type) or _DISK_TEXT.search(ev.text))


def _matches(cond: _Condition, ev: _Event) -> bool:
    if isinstance(cond, HighMemoryCondition):
        return _is_memory(ev, cond.memory_percent)
    if isinstance(cond, DatabaseConnectionCondition):
        return _is_db(ev)
    return isinstance(cond, DiskFullCondition) and _is_disk(ev)


def _down_target(ev: _Event) -> str:
    target = ev.data.get("target_service")
    return target if isinstance(target, str) and target else ev.service


@functools.lru_cache(maxsize=256)
def _compiled(expr: str) -> re.Pattern[str]:
    return re.compile(expr)


class Snapshot:
    """The recent events (and their patterns) that every condition of one evaluation reads."""

    def __init__(self, now: dt.datetime, events: list[_Event], patterns: dict[str, tuple[str, str, str]]) -> None:
        self.now = now
        self.events = events
        self.patterns = patterns
        """pattern id -> (service, error_type, template)."""

    @classmethod
    def load(cls, conn: Connection, now: dt.datetime, window_minutes: float) -> Snapshot:
        since = now - dt.timedelta(minutes=window_minutes)
        rows = conn.execute(
            select(
                EVENTS.c.pattern_id,
                EVENTS.c.service,
                EVENTS.c.error_type,
                EVENTS.c.error_message,
                EVENTS.c.stack_trace,
                EVENTS.c.context,
                EVENTS.c.additional_data,
                EVENTS.c.received_at,
            )
            .where(EVENTS.c.received_at >= since, EVENTS.c.received_at <= now)
            .order_by(EVENTS.c.received_at.desc())
            .limit(MAX_EVENTS_SCANNED)
        ).all()
        events = [
            _Event(
                r.pattern_id,
                r.service,
                r.error_type[:500],
                f"{r.error_message[:TEXT_SCANNED]}\n{(r.stack_trace or '')[-TEXT_SCANNED:]}\n{r.context[:500]}",
                r.additional_data if isinstance(r.additional_data, dict) else {},
                r.received_at,
            )
            for r in rows
        ]
        ids = sorted({e.pattern_id for e in events})
        patterns: dict[str, tuple[str, str, str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for p in conn.execute(
                select(PATTERNS.c.id, PATTERNS.c.service, PATTERNS.c.error_type, PATTERNS.c.template).where(
                    PATTERNS.c.id.in_(chunk)
                )
            ):
                patterns[p.id] = (p.service, p.error_type, p.template)
        return cls(now, events, patterns)

    def _window(self, cond: _Condition) -> Iterable[_Event]:
        since = self.now - dt.timedelta(minutes=cond.window_minutes)
        return (e for e in self.events if e.received_at >= since)

    def _pattern_matches(self, cond: PatternCondition, pattern_id: str) -> bool:
        if cond.pattern_id is not None and pattern_id != cond.pattern_id:
            return False
        meta = self.patterns.get(pattern_id)
        if meta is None:
            return False
        _, error_type, template = meta
        if cond.error_type is not None and not _compiled(cond.error_type).search(error_type):
            return False
        return cond.template is None or bool(_compiled(cond.template).search(template[:TEXT_SCANNED]))

    def hits(self, cond: ConditionSpec) -> list[Hit]:
        """Services for which `cond` holds now, each with its busiest matching pattern."""
        by_service: dict[str, Counter[str]] = defaultdict(Counter)
        if isinstance(cond, PatternCondition):
            matches = {pid for pid in {e.pattern_id for e in self._window(cond)} if self._pattern_matches(cond, pid)}
            for e in self._window(cond):
                if e.pattern_id in matches:
                    by_service[e.service][e.pattern_id] += 1
        elif isinstance(cond, ErrorRateCondition):
            for e in self._window(cond):
                by_service[e.service][e.pattern_id] += 1
        else:
            for e in self._window(cond):
                if isinstance(cond, ServiceDownCondition):
                    if _is_down(e):
                        by_service[_down_target(e)][e.pattern_id] += 1
                elif _matches(cond, e):
                    by_service[e.service][e.pattern_id] += 1
        out: list[Hit] = []
        for service, counts in sorted(by_service.items()):
            if cond.services and service not in cond.services:
                continue
            total = sum(counts.values())
            if total < cond.min_events:
                continue
            detail = f"{cond.type}: {total} matching events in {cond.window_minutes:g} min"
            if isinstance(cond, ErrorRateCondition):
                rate = total / cond.window_minutes
                if rate <= cond.threshold_per_minute:
                    continue
                detail = (
                    f"error_rate: {rate:.2f}/min > {cond.threshold_per_minute:g}/min over {cond.window_minutes:g} min"
                )
            top = counts.most_common(1)[0][0]
            out.append(Hit(cond.type, service, top, total, detail))
        return out


def max_window(conditions: Sequence[ConditionSpec]) -> float:
    return max((c.window_minutes for c in conditions), default=0.0)
