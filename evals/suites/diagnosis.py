"""Diagnosis suite: errlearn's Diagnoser drafts a diagnosis with the configured model; we score it.

One pipeline for the whole suite, like one errlearn deployment: the seed knowledge base and any
runbooks under `--data` are imported, our own cases are ingested (all loaded ones, so repeats add
events to their patterns), each incident becomes one service's events (see `events.py`). Then the
pattern of every diagnosis case is diagnosed, synchronously, as the worker's job would.

Scores: schema-valid rate (a draft that raised or failed validation is invalid), citation validity
(every evidence id of a diagnosis exists in the database), removed citations, the inconclusive
rate on no-issue controls, expected-bullet recall by key tokens (and by a judge model with
`--judge`), latency and tokens.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.diagnosis.known_cause import known_cause_diagnosis
from agent.domain import Diagnosis, DiagnosisStatus
from agent.llm.providers import ModelUnavailable
from evals.calibration import (
    MatchRow,
    calibrate_threshold,
    calibration_bins,
    is_confident_wrong,
    is_useful,
    split_of,
)
from evals.scorers import bullet_recall, no_issue_inconclusive_rate, schema_valid_rate
from evals.suites.base import EvalData, Metrics, SuiteContext, SuiteResult, percentile, rounded
from evals.suites.events import incident_bodies, own_body
from evals.suites.judge import PROMPT_VERSION as JUDGE_PROMPT_VERSION
from evals.suites.judge import Judge, open_judge
from evals.suites.pipeline import Pipeline, open_pipeline


@dataclass(frozen=True)
class Target:
    """One diagnosis to draft and how to score it."""

    source: str
    case_id: str
    pattern_id: str | None
    bullets: list[str]
    no_issue: bool
    events: int


@dataclass
class Outcome:
    target: Target
    diagnosis: Diagnosis | None
    error: str | None
    citations_exist: bool | None
    bullet_recall: float | None
    judge_recall: float | None
    judge_hits: list[bool | None] | None
    match: MatchRow | None = None
    """The nearest known cause, scored as if it were the answer (for calibrating the threshold)."""


def answer_text(d: Diagnosis) -> str:
    """What bullets are matched against: summary, root cause and solution steps."""
    return "\n".join([d.summary, d.root_cause, *d.solution_steps])


def run(data: EvalData, ctx: SuiteContext) -> SuiteResult:
    result = SuiteResult("diagnosis")
    started = time.perf_counter()
    if not (data.own or data.incidents):
        result.notes.append("no diagnosis data found (our JSONL cases or incidents)")
        result.seconds = round(time.perf_counter() - started, 2)
        return result.finish()
    judge: Judge | None = None
    with open_pipeline(ctx.settings) as pipe:
        knowledge = _import_knowledge(pipe, data, ctx)
        targets = _ingest(pipe, data, ctx)
        pipe.index()
        ctx.progress.start("diagnosis (model)", len(targets))
        if ctx.judge:
            judge = open_judge(ctx.settings, ctx.judge)
        try:
            outcomes = [_diagnose(pipe, t, judge, ctx) for t in targets]
        finally:
            if judge is not None:
                judge.close()
        model_name = (
            pipe.services.runtime.model().name
            if pipe.services.runtime.model_ready
            else f"{ctx.settings.llm} (not started: no case needed it)"
        )
    for kind in ("own", "incidents"):
        mine = [o for o in outcomes if o.target.source == kind]
        if mine:
            result.by_kind[kind] = score(mine)
            result.by_source[kind] = result.by_kind[kind]
    result.cases = [_row(o) for o in outcomes]
    result.notes += calibration_notes(outcomes)
    result.notes.append(f"model {model_name}; knowledge entries imported: {knowledge}")
    if judge is not None:
        result.notes.append(f"judge {judge.name} (prompt v{JUDGE_PROMPT_VERSION})")
    result.seconds = round(time.perf_counter() - started, 2)
    return result.finish()


def _import_knowledge(pipe: Pipeline, data: EvalData, ctx: SuiteContext) -> int:
    ctx.progress.start("diagnosis: importing knowledge", None)
    total = 0
    if ctx.knowledge is not None and ctx.knowledge.exists():
        total += pipe.import_knowledge(ctx.knowledge)
    for books in data.runbooks:
        total += pipe.import_knowledge(books.root)
    return total


def _ingest(pipe: Pipeline, data: EvalData, ctx: SuiteContext) -> list[Target]:
    ctx.progress.start("diagnosis: ingesting", None)
    targets: list[Target] = []
    if data.own:
        stored = pipe.ingest([own_body(c) for c in data.own])
        counts: dict[str, int] = {}
        for s in stored:
            if s.pattern_id:
                counts[s.pattern_id] = counts.get(s.pattern_id, 0) + 1
        for case, s in zip(data.own, stored, strict=True):
            if str(case.suite) != "diagnosis":
                continue
            bullets = list(case.labels.root_cause_keywords)
            events = counts.get(s.pattern_id, 0) if s.pattern_id else 0
            targets.append(Target("own", case.id, s.pattern_id, bullets, case.labels.no_issue, events))
    for index, incident in enumerate(data.incidents, start=1):
        # A neutral service name: the case id ("01_oom_kill") would hand the model the answer.
        bodies = incident_bodies(incident, f"incident-{index:03d}")
        stored = pipe.ingest(bodies)
        patterns: dict[str, int] = {}
        for s in stored:
            if s.pattern_id:
                patterns[s.pattern_id] = patterns.get(s.pattern_id, 0) + 1
        main = max(patterns, key=lambda p: patterns[p]) if patterns else None
        targets.append(
            Target(
                "incidents",
                incident.id,
                main,
                list(incident.expected_output),
                incident.no_issue,
                patterns.get(main, 0) if main else 0,
            )
        )
    return targets


def _diagnose(pipe: Pipeline, target: Target, judge: Judge | None, ctx: SuiteContext) -> Outcome:
    diagnosis: Diagnosis | None = None
    error: str | None = None
    if target.pattern_id is None:
        error = "the event was rejected at ingest"
    else:
        try:
            diagnosis = pipe.services.diagnoser.diagnose(target.pattern_id, force=True).diagnosis
        except ModelUnavailable:
            raise  # nothing can be scored without the model: stop the run with its message
        except Exception as exc:  # a draft that failed (bad JSON, validation, retries spent) is schema-invalid
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
    exists: bool | None = None
    recall: float | None = None
    judge_recall: float | None = None
    judge_hits: list[bool | None] | None = None
    if diagnosis is not None:
        exists = all(_exists(pipe, ident) for ident in diagnosis.evidence)
        if target.bullets:
            recall = bullet_recall(answer_text(diagnosis), target.bullets).score
            if judge is not None:
                judge_hits = judge.bullets(answer_text(diagnosis), target.bullets)
                judged = [h for h in judge_hits if h is not None]
                judge_recall = sum(judged) / len(judged) if judged else None
    elif target.bullets:
        recall = 0.0  # no answer states nothing
    ctx.progress.advance()
    match = _match_row(pipe, target) if target.pattern_id is not None else None
    return Outcome(target, diagnosis, error, exists, recall, judge_recall, judge_hits, match)


def _match_row(pipe: Pipeline, target: Target) -> MatchRow:
    """The known-cause path's view of a case, whatever threshold is set: its nearest cause and that answer's recall."""
    assert target.pattern_id is not None
    diagnoser = pipe.services.diagnoser
    candidates, signal = diagnoser.candidates(target.pattern_id)
    pattern, ectx = diagnoser.gather(target.pattern_id)
    if not candidates:
        return MatchRow(target.case_id, target.no_issue, signal, None, None)
    top = candidates[0]
    recall = None
    if target.bullets:
        written = known_cause_diagnosis(pattern, ectx, top, confidence=1.0)
        recall = bullet_recall(answer_text(written), target.bullets).score
    return MatchRow(target.case_id, target.no_issue, signal, top.score, recall)


def _exists(pipe: Pipeline, ident: str) -> bool:
    core = pipe.services.core
    if core.event(ident) is not None or core.pattern(ident) is not None:
        return True
    return pipe.retrieval().knowledge_entry(ident) is not None


def score(outcomes: Sequence[Outcome]) -> Metrics:
    """The suite's metrics over some outcomes (all of one data kind)."""
    done = [o for o in outcomes if o.diagnosis is not None]
    diagnoses = [o.diagnosis for o in done if o.diagnosis is not None]
    outputs: list[str | dict[str, object]] = [
        o.diagnosis.model_dump(mode="json") if o.diagnosis is not None else "" for o in outcomes
    ]
    controls = [o for o in outcomes if o.target.no_issue]
    issues = [o for o in outcomes if not o.target.no_issue]
    recalls = [o.bullet_recall for o in outcomes if o.bullet_recall is not None]
    judge_recalls = [o.judge_recall for o in outcomes if o.judge_recall is not None]
    latencies = [float(d.latency_ms) for d in diagnoses]
    return {
        "cases": len(outcomes),
        "schema_valid_rate": round(schema_valid_rate(outputs, Diagnosis), 4),
        "citation_valid_rate": _share([o.citations_exist is True for o in done]),
        "cited_rate": _share([bool(d.evidence) for d in diagnoses]),
        "removed_citations": sum(len(d.removed_citations) for d in diagnoses),
        "diagnoses_with_removed_citations": sum(bool(d.removed_citations) for d in diagnoses),
        "no_issue_inconclusive_rate": (
            round(no_issue_inconclusive_rate([_verdict(o) for o in controls], [True] * len(controls)), 4)
            if controls
            else None
        ),
        "issue_inconclusive_rate": _share([_verdict(o) == "inconclusive" for o in issues]),
        "useful_rate": _share([_useful(o) for o in issues]),
        "confident_wrong_rate": _share([_wrong(o) for o in issues]),
        "useful_rate_test_half": _share([_useful(o) for o in issues if split_of(o.target.case_id) == "test"]),
        "bullet_recall": rounded(sum(recalls) / len(recalls)) if recalls else None,
        "judge_bullet_recall": rounded(sum(judge_recalls) / len(judge_recalls)) if judge_recalls else None,
        "latency_ms_mean": rounded(sum(latencies) / len(latencies), 1) if latencies else None,
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p95": percentile(latencies, 95),
        "input_tokens_mean": rounded(sum(d.input_tokens for d in diagnoses) / len(diagnoses), 1) if diagnoses else None,
        "output_tokens_mean": rounded(sum(d.output_tokens for d in diagnoses) / len(diagnoses), 1)
        if diagnoses
        else None,
    }


def _useful(o: Outcome) -> bool:
    d = o.diagnosis
    return d is not None and is_useful(d.status is DiagnosisStatus.inconclusive, o.bullet_recall)


def _wrong(o: Outcome) -> bool:
    d = o.diagnosis
    return d is not None and is_confident_wrong(d.status is DiagnosisStatus.inconclusive, o.bullet_recall)


def calibration_notes(outcomes: Sequence[Outcome]) -> list[str]:
    """Confidence-vs-useful bins of the answered issue cases, and the known-cause threshold calibrated
    on the dev half with its figures on the test half."""
    notes: list[str] = []
    points = [
        (o.diagnosis.confidence, _useful(o))
        for o in outcomes
        if o.diagnosis is not None and not o.target.no_issue and o.diagnosis.status is DiagnosisStatus.diagnosed
    ]
    bins = calibration_bins(points)
    if bins:
        notes.append(
            "calibration (confidence: answered, useful share): "
            + "; ".join(f"{b['bin']}: {b['n']}, {b['useful']}" for b in bins)
        )
    rows = [o.match for o in outcomes if o.match is not None]
    calibrated = calibrate_threshold(rows)
    if calibrated is not None:
        dev, test = calibrated
        notes.append(
            f"known-cause threshold calibrated on the dev half: {dev.threshold} "
            f"(dev useful {dev.useful_rate}, confident-wrong {dev.confident_wrong_rate}, {dev.cases} cases; "
            f"test useful {test.useful_rate}, confident-wrong {test.confident_wrong_rate}, "
            f"controls answered {test.controls_answered}, {test.cases} cases)"
        )
    return notes


def _share(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _verdict(o: Outcome) -> str:
    # A failed draft is not an "inconclusive" answer: it is no answer.
    return o.diagnosis.status.value if o.diagnosis is not None else "failed"


def _row(o: Outcome) -> dict[str, Any]:
    d = o.diagnosis
    row: dict[str, Any] = {
        "suite": "diagnosis",
        "source": o.target.source,
        "id": o.target.case_id,
        "pattern_id": o.target.pattern_id,
        "events": o.target.events,
        "no_issue": o.target.no_issue,
        "schema_valid": d is not None,
        "error": o.error,
        "status": d.status.value if d else None,
        "inconclusive": d.status is DiagnosisStatus.inconclusive if d else None,
        "confidence": d.confidence if d else None,
        "split": split_of(o.target.case_id),
        "path_model": d.model if d else None,
        "known_cause_score": o.match.score if o.match else None,
        "known_cause_recall": rounded(o.match.recall) if o.match else None,
        "failure_signal": o.match.failure_signal if o.match else None,
        "evidence": d.evidence if d else [],
        "citations_exist": o.citations_exist,
        "removed_citations": d.removed_citations if d else [],
        "bullets": o.target.bullets,
        "bullet_recall": rounded(o.bullet_recall),
        "judge_hits": o.judge_hits,
        "judge_recall": rounded(o.judge_recall),
        "latency_ms": d.latency_ms if d else None,
        "input_tokens": d.input_tokens if d else None,
        "output_tokens": d.output_tokens if d else None,
        "summary": d.summary if d else None,
        "root_cause": d.root_cause if d else None,
        "solution_steps": d.solution_steps if d else [],
        "proposed_actions": [a.model_dump() for a in d.proposed_actions] if d else [],
    }
    return row
