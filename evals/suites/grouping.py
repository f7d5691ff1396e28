"""Grouping suite: do occurrences of one error land in one pattern, and different errors apart?

Each source gets a fresh pipeline (Drain's state is shared across services, so another dataset in
the same run could otherwise change a system's result). Events go through `POST /errors/batch`;
then the merge pass runs (as the worker does), and the pattern each event is stored under is the
predicted group.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any

from evals.published import published_ga
from evals.scorers import grouping_accuracy, grouping_f1, pairwise_prf
from evals.suites.base import EvalData, Metrics, SuiteContext, SuiteResult, mean_metrics
from evals.suites.events import loghub_body, own_body, trace_body
from evals.suites.pipeline import Ingested, open_pipeline


def score(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> Metrics:
    """GA, FGA, pairwise P/R/F1, and how many patterns were made for how many true groups."""
    precision, recall, f1 = pairwise_prf(pred, truth)
    return {
        "grouping_accuracy": round(grouping_accuracy(pred, truth), 4),
        "grouping_f1": round(grouping_f1(pred, truth), 4),
        "pairwise_precision": round(precision, 4),
        "pairwise_recall": round(recall, 4),
        "pairwise_f1": round(f1, 4),
        "patterns": len(set(pred)),
        "true_groups": len(set(truth)),
        "cases": len(truth),
    }


def _predictions(results: Sequence[Ingested], ids: Sequence[str]) -> list[str]:
    # A rejected event is a group of its own: it was grouped with nothing.
    return [r.pattern_id or f"rejected:{case_id}" for r, case_id in zip(results, ids, strict=True)]


def run(data: EvalData, ctx: SuiteContext) -> SuiteResult:
    result = SuiteResult("grouping")
    started = time.perf_counter()
    if data.own:
        _own(data, ctx, result)
    for log in data.loghub:
        ctx.progress.start(f"grouping loghub/{log.system}", len(log.lines))
        with open_pipeline(ctx.settings) as pipe:
            ingested = pipe.settle(pipe.ingest([loghub_body(line) for line in log.lines]))
        ctx.progress.advance(len(log.lines))
        ids = [f"{log.system}:{line.line_id}" for line in log.lines]
        pred = _predictions(ingested, ids)
        truth = [line.event_id for line in log.lines]
        metrics = score(pred, truth)
        metrics["published_drain_ga"] = published_ga(log.system)
        metrics["rejected"] = sum(r.status != "accepted" for r in ingested)
        result.by_source[f"loghub/{log.system}"] = metrics
        result.cases += _case_rows(f"loghub/{log.system}", ids, truth, pred)
    if data.loghub:
        result.by_kind["loghub"] = _kind_mean(result, "loghub/")
    for project in data.defects4j:
        bugs = set(project.limited_bugs)
        traces = [t for t in project.traces if t.bug in bugs]
        ctx.progress.start(f"grouping defects4j/{project.project}", len(traces))
        with open_pipeline(ctx.settings) as pipe:
            ingested = pipe.settle(pipe.ingest([trace_body(t) for t in traces]))
        ctx.progress.advance(len(traces))
        ids = [f"{t.cluster}:{t.test_name}" for t in traces]
        pred = _predictions(ingested, ids)
        truth = [t.cluster for t in traces]
        metrics = score(pred, truth)
        metrics["rejected"] = sum(r.status != "accepted" for r in ingested)
        result.by_source[f"defects4j/{project.project}"] = metrics
        result.cases += _case_rows(f"defects4j/{project.project}", ids, truth, pred)
    if data.defects4j:
        result.by_kind["defects4j"] = _kind_mean(result, "defects4j/")
    if not (data.own or data.loghub or data.defects4j):
        result.notes.append("no grouping data found (our JSONL, Loghub CSVs or Defects4J trigger_tests)")
    result.seconds = round(time.perf_counter() - started, 2)
    return result.finish()


def _own(data: EvalData, ctx: SuiteContext, result: SuiteResult) -> None:
    cases = data.own
    ctx.progress.start("grouping own cases", len(cases))
    with open_pipeline(ctx.settings) as pipe:
        ingested = pipe.settle(pipe.ingest([own_body(c) for c in cases]))
    ctx.progress.advance(len(cases))
    ids = [c.id for c in cases]
    pred = _predictions(ingested, ids)
    truth = [c.labels.group for c in cases]
    metrics = score(pred, truth)
    metrics["rejected"] = sum(r.status != "accepted" for r in ingested)
    result.by_kind["own"] = metrics
    result.by_source["own"] = metrics
    for service in sorted({c.event.service for c in cases}):
        keep = [i for i, c in enumerate(cases) if c.event.service == service]
        result.by_source[f"own/{service}"] = score([pred[i] for i in keep], [truth[i] for i in keep])
    result.cases += _case_rows("own", ids, truth, pred)


def _kind_mean(result: SuiteResult, prefix: str) -> Metrics:
    rows = [m for name, m in result.by_source.items() if name.startswith(prefix)]
    metrics = mean_metrics({k: v for k, v in m.items() if k != "published_drain_ga"} for m in rows)
    metrics["sources"] = len(rows)
    return metrics


def _case_rows(source: str, ids: Sequence[str], truth: Sequence[str], pred: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"suite": "grouping", "source": source, "id": i, "truth": t, "pred": p}
        for i, t, p in zip(ids, truth, pred, strict=True)
    ]
