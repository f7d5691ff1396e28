"""What every suite returns, what it receives, and small helpers they share.

A suite turns loaded data into a `SuiteResult`: metrics per data kind (own, loghub, defects4j,
incidents, runbooks), per source (`loghub/HDFS`, `own/event-store` ...), and one row per case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.settings import Settings
from evals.dataset import EvalCase
from evals.loaders import Incident, LogLine, Runbook, Trace

Metric = float | int | None
"""A metric value; None when it could not be measured here (the report says why in `notes`)."""
Metrics = dict[str, Metric]


class Progress(Protocol):
    """Where suites report progress; the CLI shows it with rich, tests pass `NO_PROGRESS`."""

    def start(self, label: str, total: int | None) -> None:
        """A new step begins (`total` units, or unknown)."""

    def advance(self, n: int = 1) -> None:
        """`n` more units of the current step are done."""


class _NoProgress:
    def start(self, label: str, total: int | None) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None


NO_PROGRESS: Progress = _NoProgress()


@dataclass(frozen=True)
class LoghubData:
    system: str
    lines: list[LogLine]


@dataclass(frozen=True)
class Defects4jData:
    project: str
    traces: list[Trace]
    """All traces of the project (retrieval indexes every bug)."""
    limited_bugs: list[str]
    """Bug ids inside `--limit` (grouping uses their traces; retrieval queries them)."""


@dataclass(frozen=True)
class RunbooksData:
    root: Path
    runbooks: list[Runbook]
    """All runbooks (all are imported); `limit` of them are queried."""
    limit: int | None


@dataclass
class EvalData:
    """Everything `detect` found under `--data`, already cut to `--limit` cases per source."""

    own: list[EvalCase] = field(default_factory=list)
    loghub: list[LoghubData] = field(default_factory=list)
    defects4j: list[Defects4jData] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    runbooks: list[RunbooksData] = field(default_factory=list)


@dataclass(frozen=True)
class SuiteContext:
    """What a suite run receives from the runner (the composition root)."""

    settings: Settings
    """Base settings; each pipeline overrides the data dir, database and vector store with fresh ones."""
    progress: Progress = NO_PROGRESS
    judge: str | None = None
    """A model id to judge diagnoses with (diagnosis suite only)."""
    knowledge: Path | None = None
    """Seed knowledge base imported before diagnosing (errlearn's `knowledge/`)."""


@dataclass
class SuiteResult:
    """Metrics of one suite over all the data it found."""

    name: str
    metrics: Metrics = field(default_factory=dict)
    by_kind: dict[str, Metrics] = field(default_factory=dict)
    by_source: dict[str, Metrics] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def finish(self) -> SuiteResult:
        """Fill the suite-level metrics: the mean of each metric over the data kinds that measured it."""
        self.metrics = mean_metrics(self.by_kind.values())
        return self


def mean_metrics(rows: Iterable[Mapping[str, Metric]]) -> Metrics:
    """Per key, the mean of the float values (ints are summed: they are counts); None when no row measured it."""
    rows = list(rows)
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    out: Metrics = {}
    for key in keys:
        values = [row[key] for row in rows if row.get(key) is not None]
        if not values:
            out[key] = None
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[key] = sum(int(v) for v in values if v is not None)
        else:
            out[key] = round(sum(float(v) for v in values if v is not None) / len(values), 4)
    return out


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
