"""The eval runner: load any folder of recorded data, run suites on errlearn's real pipeline, check thresholds.

Python API (the CLI `errlearn eval` and tests/test_evals_ci.py both call it):

    report = run_eval("grouping", [Path("../shared/evaldata/loghub2-2k")], RunOptions(limit=200))
    failures = [r for r in check_thresholds(report) if r.failed]

`--limit N` keeps at most N cases per detected source: the first N lines of each Loghub CSV, the
first N bugs of each Defects4J project, the first N cases of each JSONL file, the first N
incidents, and N runbook queries (every runbook is still imported, as the corpus).
"""

from __future__ import annotations

import datetime as dt
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from agent.settings import Settings, get_settings
from evals.loaders import Defects4jSource, IncidentsSource, LoghubSource, OwnSource, RunbooksSource, detect
from evals.report import build_report
from evals.suites import SUITES
from evals.suites.base import (
    NO_PROGRESS,
    Defects4jData,
    EvalData,
    LoghubData,
    Progress,
    RunbooksData,
    SuiteContext,
    SuiteResult,
)

SUITE_NAMES = (*SUITES, "all")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_THRESHOLDS = Path(__file__).resolve().parent / "thresholds.toml"
SEED_KNOWLEDGE = REPO / "knowledge"


class EvalError(RuntimeError):
    """The run cannot start: unknown suite, missing data path, no data a suite can use."""


@dataclass(frozen=True)
class RunOptions:
    limit: int | None = None
    """At most this many cases per source (see the module docstring)."""
    judge: str | None = None
    """A model id to judge diagnoses with, reached through the configured provider."""
    settings: Settings | None = None
    """Base settings (default: the configured ones); storage is always replaced by a temporary one."""
    knowledge: Path | None = SEED_KNOWLEDGE
    """Knowledge imported before diagnosing; None for none."""


def load_data(paths: Sequence[Path], limit: int | None = None) -> EvalData:
    """Detect every dataset under `paths` and cut each source to `limit` cases."""
    data = EvalData()
    for path in paths:
        if not path.exists():
            raise EvalError(f"no such file or folder: {path}")
        for source in detect(path):
            if isinstance(source, OwnSource):
                data.own += list(islice(source, limit))
            elif isinstance(source, LoghubSource):
                data.loghub.append(LoghubData(source.system, list(islice(source, limit))))
            elif isinstance(source, Defects4jSource):
                traces = [t for t in source if t.active]
                bugs = list(dict.fromkeys(t.bug for t in traces))
                data.defects4j.append(Defects4jData(source.project, traces, bugs[:limit] if limit else bugs))
            elif isinstance(source, IncidentsSource):
                data.incidents += list(islice(source, limit))
            elif isinstance(source, RunbooksSource):
                data.runbooks.append(RunbooksData(source.root, list(source), limit))
    return data


def suites_for(suite: str) -> list[str]:
    if suite == "all":
        return list(SUITES)
    if suite not in SUITES:
        raise EvalError(f"unknown suite {suite!r}; choose one of {', '.join(SUITE_NAMES)}")
    return [suite]


def run_eval(
    suite: str,
    data: Sequence[Path] | Path,
    options: RunOptions | None = None,
    progress: Progress = NO_PROGRESS,
) -> dict[str, Any]:
    """Run a suite (or `all`) on the data and return the report (see `evals.report.build_report`).

    Raises:
        EvalError: unknown suite or missing path.
        agent.llm.providers.ModelUnavailable: the diagnosis suite cannot reach its model.
    """
    options = options or RunOptions()
    paths = [data] if isinstance(data, Path) else list(data)
    names = suites_for(suite)
    started_at = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    progress.start("loading data", None)
    loaded = load_data(paths, options.limit)
    settings = options.settings or get_settings()
    ctx = SuiteContext(settings=settings, progress=progress, judge=options.judge, knowledge=options.knowledge)
    results: list[SuiteResult] = [SUITES[name](loaded, ctx) for name in names]
    return build_report(
        suite=suite,
        paths=paths,
        results=results,
        started_at=started_at,
        seconds=time.perf_counter() - started,
        config={
            "limit": options.limit,
            "judge": options.judge,
            "llm": settings.llm,
            "llm_model": settings.llm_model,
            "embedder": settings.embedder,
            "knowledge": str(options.knowledge) if options.knowledge else None,
        },
    )


# ---------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class ThresholdResult:
    """One threshold of `thresholds.toml` against the run."""

    suite: str
    scope: str
    """`loghub` (data kind) or `loghub/HDFS` (one source)."""
    metric: str
    bound: float
    upper: bool
    """True for `_max` keys: the value must not exceed `bound`."""
    value: float | None
    """Measured value; None when the run did not measure it."""

    @property
    def failed(self) -> bool:
        if self.value is None:
            return False
        return self.value > self.bound if self.upper else self.value < self.bound

    def describe(self) -> str:
        where = f"{self.suite}.{self.scope.replace('/', '.')} {self.metric}"
        if self.value is None:
            return f"{where}: not measured in this run (threshold {self.bound})"
        op = "<=" if self.upper else ">="
        verdict = "FAIL" if self.failed else "ok"
        return f"{where} = {self.value:.4g} (needs {op} {self.bound:.4g}): {verdict}"


def load_thresholds(path: Path = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def check_thresholds(
    report: dict[str, Any], thresholds: Path | dict[str, Any] = DEFAULT_THRESHOLDS
) -> list[ThresholdResult]:
    """Every threshold that applies to what the report ran (suites and data kinds it has)."""
    table = thresholds if isinstance(thresholds, dict) else load_thresholds(thresholds)
    out: list[ThresholdResult] = []
    for suite, kinds in table.items():
        section = report.get("suites", {}).get(suite)
        if section is None or not isinstance(kinds, dict):
            continue
        for kind, keys in kinds.items():
            if kind not in section.get("by_kind", {}) or not isinstance(keys, dict):
                continue
            out += _check_scope(suite, kind, keys, section["by_kind"][kind])
            for name, sub in keys.items():
                if isinstance(sub, dict):
                    measured = section.get("by_source", {}).get(f"{kind}/{name}")
                    if measured is not None:
                        out += _check_scope(suite, f"{kind}/{name}", sub, measured)
    return out


def _check_scope(suite: str, scope: str, keys: dict[str, Any], measured: dict[str, Any]) -> list[ThresholdResult]:
    out: list[ThresholdResult] = []
    for key, bound in keys.items():
        if isinstance(bound, dict) or not isinstance(bound, int | float):
            continue
        upper = key.endswith("_max")
        metric = key.removesuffix("_max") if upper else key
        value = measured.get(metric)
        out.append(
            ThresholdResult(
                suite, scope, metric, float(bound), upper, float(value) if isinstance(value, int | float) else None
            )
        )
    return out
