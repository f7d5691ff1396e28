"""Retrieval suite: does a new error retrieve its earlier pattern, and does an alert find its runbook?

- own: cases are ingested one by one, in file order, and indexed after each (as the worker would).
  Before a case with `similar_to` is ingested, its text is searched: the relevant patterns are
  those of the `similar_to` case and of every earlier case of that case's group.
- defects4j: the first trace of every bug is ingested and indexed; each other trace of a bug
  (within `--limit`) is a query whose relevant answer is its bug's pattern.
- runbooks: every runbook is imported as knowledge; each is queried with an alert description
  made from it: the alert name split into words plus the first sentence of its Impact section
  (Meaning when there is no Impact). The relevant answer is the entry imported from its file.

Queries use `Retrieval.search(query_text(...))` on the event's scrubbed text, the call errlearn
makes for an incoming event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from agent.retrieval.knowledge import load_path
from agent.retrieval.service import query_text
from evals.loaders import Runbook, Trace
from evals.scorers import mrr, recall_at_k
from evals.suites.base import EvalData, Metrics, SuiteContext, SuiteResult, mean_metrics
from evals.suites.events import own_body, trace_body
from evals.suites.pipeline import Pipeline, open_pipeline

TOP_K = 10
"""Results asked for per query; MRR counts ranks up to here."""

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SENTENCE = re.compile(r"(?<=[.!?])\s")
_MARKUP = re.compile(r"[`*_>#\[\]]|\(https?://[^)]*\)")


def score(ranked: Sequence[Sequence[str]], expected: Sequence[Collection[str]]) -> Metrics:
    if not ranked:
        return {"recall_at_1": None, "recall_at_5": None, "mrr": None, "cases": 0}
    return {
        "recall_at_1": round(recall_at_k(ranked, expected, 1), 4),
        "recall_at_5": round(recall_at_k(ranked, expected, 5), 4),
        "mrr": round(mrr(ranked, expected, TOP_K), 4),
        "cases": len(ranked),
    }


MACRO_KEYS = ("recall_at_1", "recall_at_5", "mrr")


def _macro(rows: Iterable[Metrics]) -> Metrics:
    """`macro_<metric>`: the mean of the per-source figures (each source weighs the same)."""
    mean = mean_metrics([{k: m.get(k) for k in MACRO_KEYS} for m in rows])
    return {f"macro_{k}": mean.get(k) for k in MACRO_KEYS}


def micro_and_macro(result: SuiteResult, kind: str) -> Metrics:
    """A data kind's metrics over all its queries (micro: the headline), with the per-source mean beside.

    A source with hundreds of near-identical queries weighs by its queries in the micro figure; the
    macro figure weighs each source (project) alike, so the two together show a skewed source.
    """
    prefix = (kind + "/", kind)
    rows = [c for c in result.cases if c["source"] == kind or c["source"].startswith(prefix[0])]
    ranks = [c["rank"] for c in rows]
    sources = [m for name, m in result.by_source.items() if name == kind or name.startswith(prefix[0])]
    counts = {k: v for k, v in mean_metrics(sources).items() if isinstance(v, int) and k != "cases"}
    return _score_ranks(ranks) | _macro(sources) | counts


def _score_ranks(ranks: Sequence[int | None]) -> Metrics:
    if not ranks:
        return {"recall_at_1": None, "recall_at_5": None, "mrr": None, "cases": 0}
    n = len(ranks)
    return {
        "recall_at_1": round(sum(1 for r in ranks if r is not None and r <= 1) / n, 4),
        "recall_at_5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r is not None and r <= TOP_K) / n, 4),
        "cases": n,
    }


def _event_query(pipe: Pipeline, body: dict[str, Any]) -> str:
    """The query for an incoming event, from its scrubbed text (what errlearn stores and indexes)."""
    scrub = pipe.services.core.scrubber.text
    stack = body.get("stack_trace")
    return query_text(
        service=body["service"],
        error_type=scrub(body["error_type"]),
        message=scrub(body["error_message"]),
        stack_trace=scrub(stack) if stack else None,
    )


def _pattern_ranking(pipe: Pipeline, text: str, body: dict[str, Any]) -> list[str]:
    stack = body.get("stack_trace")
    stack = pipe.services.core.scrubber.text(stack) if stack else None
    hits = pipe.retrieval().search(text, k=TOP_K, knowledge_k=0, stack_trace=stack)
    return [s.id for s in hits if s.kind == "pattern"]


def run(data: EvalData, ctx: SuiteContext) -> SuiteResult:
    result = SuiteResult("retrieval")
    started = time.perf_counter()
    if data.own:
        _own(data, ctx, result)
    for project in data.defects4j:
        _defects4j(project.project, project.traces, project.limited_bugs, ctx, result)
    if data.defects4j:
        result.by_kind["defects4j"] = micro_and_macro(result, "defects4j")
    for books in data.runbooks:
        _runbooks(books.root, books.runbooks, books.limit, ctx, result)
    if data.runbooks:
        result.by_kind["runbooks"] = micro_and_macro(result, "runbooks")
    if not (data.own or data.defects4j or data.runbooks):
        result.notes.append("no retrieval data found (our JSONL with similar_to, Defects4J, runbooks)")
    result.seconds = round(time.perf_counter() - started, 2)
    return result.finish()


def _own(data: EvalData, ctx: SuiteContext, result: SuiteResult) -> None:
    cases = data.own
    loaded = {c.id: c for c in cases}
    pattern_of: dict[str, str] = {}
    patterns_of_group: dict[str, set[str]] = {}
    ranked: list[list[str]] = []
    expected: list[set[str]] = []
    services: list[str] = []
    skipped = 0
    ctx.progress.start("retrieval own cases", len(cases))
    with open_pipeline(ctx.settings) as pipe:
        for case in cases:
            body = own_body(case)
            target = case.labels.similar_to
            if target is not None and target not in pattern_of:
                skipped += 1  # its earlier twin is outside --data/--limit (or was rejected at ingest)
            elif target is not None:
                relevant = {pattern_of[target]} | patterns_of_group.get(loaded[target].labels.group, set())
                hits = _pattern_ranking(pipe, _event_query(pipe, body), body)
                ranked.append(hits)
                expected.append(relevant)
                services.append(case.event.service)
                result.cases.append(_row("own", case.id, hits, relevant, group=case.labels.group, tags=case.tags))
            (stored,) = pipe.ingest([body])
            if stored.pattern_id:
                pattern_of[case.id] = stored.pattern_id
                patterns_of_group.setdefault(case.labels.group, set()).add(stored.pattern_id)
            pipe.index()
            ctx.progress.advance()
    for service in sorted(set(services)):
        keep = [i for i, s in enumerate(services) if s == service]
        result.by_source[f"own/{service}"] = score([ranked[i] for i in keep], [expected[i] for i in keep])
    metrics = score(ranked, expected) | _macro(m for name, m in result.by_source.items() if name.startswith("own/"))
    metrics["skipped_missing_target"] = skipped
    result.by_kind["own"] = metrics
    if skipped:
        result.notes.append(
            f"own: {skipped} queries skipped because their similar_to case was not loaded (or not stored)"
        )


def _defects4j(
    project: str, traces: Sequence[Trace], limited: Sequence[str], ctx: SuiteContext, result: SuiteResult
) -> None:
    first: dict[str, Trace] = {}
    for trace in traces:
        first.setdefault(trace.bug, trace)
    queries = [t for t in traces if t.bug in set(limited) and first[t.bug] is not t]
    ctx.progress.start(f"retrieval defects4j/{project}", len(first) + len(queries))
    ranked: list[list[str]] = []
    expected: list[set[str]] = []
    with open_pipeline(ctx.settings) as pipe:
        bugs = list(first)
        stored = pipe.ingest([trace_body(first[b]) for b in bugs])
        pattern_of_bug = {b: s.pattern_id for b, s in zip(bugs, stored, strict=True) if s.pattern_id}
        pipe.index()
        ctx.progress.advance(len(first))
        for trace in queries:
            relevant = {pattern_of_bug[trace.bug]} if trace.bug in pattern_of_bug else set()
            hits = _pattern_ranking(pipe, _event_query(pipe, trace_body(trace)), trace_body(trace))
            ranked.append(hits)
            expected.append(relevant)
            result.cases.append(_row(f"defects4j/{project}", f"{trace.cluster}:{trace.test_name}", hits, relevant))
            ctx.progress.advance()
    metrics = score(ranked, expected)
    metrics["indexed"] = len(pattern_of_bug)
    metrics["distinct_patterns_indexed"] = len(set(pattern_of_bug.values()))
    result.by_source[f"defects4j/{project}"] = metrics


def alert_query(runbook: Runbook) -> str:
    """An alert as a pager would show it: the alert name in words, then what it impacts."""
    words = " ".join(w.lower() if not w.isupper() else w for w in _CAMEL.findall(runbook.alert_name))
    for section in ("Impact", "Meaning"):
        body = _MARKUP.sub("", runbook.sections.get(section, "")).strip()
        if body:
            sentence = _SENTENCE.split(" ".join(body.split()), maxsplit=1)[0]
            return f"{words}. {sentence}"
    return words


def _runbooks(
    root: Path, runbooks: Sequence[Runbook], limit: int | None, ctx: SuiteContext, result: SuiteResult
) -> None:
    entries = load_path(root)
    by_file: dict[str, set[str]] = {}
    for entry in entries:
        source = PurePosixPath(entry.source)
        by_file.setdefault(str(source.with_suffix("")), set()).add(entry.id)
    queried = list(runbooks)[:limit] if limit is not None else list(runbooks)
    ctx.progress.start("retrieval runbooks", len(queried) + 1)
    ranked: list[list[str]] = []
    expected: list[set[str]] = []
    unindexed = 0
    with open_pipeline(ctx.settings) as pipe:
        pipe.retrieval().import_knowledge(entries, pipe.services.runtime.clock())
        ctx.progress.advance()
        for runbook in queried:
            relevant = by_file.get(runbook.id, set())
            if not relevant:
                unindexed += 1  # e.g. an extension-less file the knowledge importer does not read
                ctx.progress.advance()
                continue
            text = alert_query(runbook)
            hits = [s.id for s in pipe.retrieval().search(text, k=0, knowledge_k=TOP_K) if s.kind == "knowledge"]
            ranked.append(hits)
            expected.append(relevant)
            result.cases.append(_row("runbooks", runbook.id, hits, relevant, query=text))
            ctx.progress.advance()
    metrics = score(ranked, expected)
    metrics["indexed"] = len(entries)
    metrics["unindexed"] = unindexed
    name = "runbooks" if not result.by_source.get("runbooks") else f"runbooks/{root}"
    result.by_source[name] = metrics
    if unindexed:
        result.notes.append(f"runbooks: {unindexed} runbooks have no imported knowledge entry and were not queried")


def _row(source: str, case_id: str, hits: Sequence[str], relevant: Collection[str], **extra: Any) -> dict[str, Any]:
    rank = next((i for i, h in enumerate(hits, start=1) if h in relevant), None)
    return {
        "suite": "retrieval",
        "source": source,
        "id": case_id,
        "rank": rank,
        "top": list(hits[:5]),
        "relevant": sorted(relevant),
        **extra,
    }
