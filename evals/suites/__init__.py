"""One module per eval suite; each exposes `run(data, ctx) -> SuiteResult`."""

from __future__ import annotations

from collections.abc import Callable

from evals.suites import diagnosis, grouping, retrieval, safety
from evals.suites.base import EvalData, SuiteContext, SuiteResult

SuiteRun = Callable[[EvalData, SuiteContext], SuiteResult]

SUITES: dict[str, SuiteRun] = {
    "grouping": grouping.run,
    "retrieval": retrieval.run,
    "diagnosis": diagnosis.run,
    "safety": safety.run,
}
"""Suites in the order `all` runs them (cheapest first)."""
