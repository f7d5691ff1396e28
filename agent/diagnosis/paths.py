"""Which path answers a pattern: known cause, the model's pick, the model's own writing, or "don't know".

1. The events show no failure (routine lines, a retry that succeeded): inconclusive, no model call.
2. The nearest known cause is at least `known_cause_min_score` similar: code writes the diagnosis
   from it (no model).
3. `pick` mode (the embedded default): the model chooses among the known causes at least
   `known_cause_pick_min_score` similar, or "none"; code writes the diagnosis from the choice.
   Nothing near enough to offer: inconclusive, no model call.
4. `write` mode (ollama/openai/litellm by default): the model writes the diagnosis; the quality gate
   refuses echoes and empty answers (stored as inconclusive with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from agent.capture.evidence import has_failure_signal
from agent.diagnosis.candidates import Candidate
from agent.diagnosis.gate import quality_problem
from agent.diagnosis.known_cause import (
    MAX_SUMMARY,
    MODEL_NAME,
    inconclusive,
    known_cause_diagnosis,
    match_confidence,
    summary_for,
)
from agent.domain import Diagnosis, DiagnosisStatus, ErrorEvent, Pattern
from agent.llm.context import EvidenceContext
from agent.settings import Settings

if TYPE_CHECKING:  # the model stack loads only when a model path runs
    from agent.llm.agents import AgentDeps

Mode = Literal["pick", "write"]
PICK_CONFIDENCE_CAP = 0.7
"""A cause a small model picked from weaker matches is less certain than a strong match alone."""


@dataclass(frozen=True)
class Decision:
    diagnosis: Diagnosis
    path: str
    """`no_failure`, `known_cause`, `pick`, `pick_none`, `no_candidate`, `write`, `write_refused`."""
    model_called: bool


def resolve_mode(settings: Settings) -> Mode:
    if settings.diagnosis_mode != "auto":
        return settings.diagnosis_mode
    return "pick" if settings.llm == "embedded" else "write"


SEVERE = frozenset({"high", "critical"})


def events_show_failure(events: Sequence[ErrorEvent]) -> bool:
    """A high/critical event, or an event whose whole text (message and stack) says something failed."""
    return any(
        ev.severity.value in SEVERE
        or has_failure_signal(f"{ev.error_type}: {ev.error_message}\n{ev.stack_trace or ''}")
        for ev in events
    )


def decide(
    pattern: Pattern,
    ctx: EvidenceContext,
    candidates: Sequence[Candidate],
    settings: Settings,
    deps: Callable[[], AgentDeps],
    *,
    failure: bool,
) -> Decision:
    """Diagnose `pattern` along the first path that applies (see the module docstring).

    `failure`: whether the pattern's events show a failure at all (`events_show_failure`).
    """
    mode = resolve_mode(settings)
    if not failure:
        return Decision(
            inconclusive(pattern, ctx, "the events show no failure (routine messages)", model=MODEL_NAME),
            "no_failure",
            False,
        )
    threshold = settings.known_cause_min_score
    top = candidates[0] if candidates else None
    if top is not None and top.score >= threshold:
        confidence = match_confidence(top.score, threshold, max(settings.min_confidence, 0.5))
        return Decision(known_cause_diagnosis(pattern, ctx, top, confidence=confidence), "known_cause", False)
    if mode == "write":
        return _write(pattern, ctx, deps())
    offered = [c for c in candidates if c.score >= settings.known_cause_pick_min_score]
    if not offered:
        reason = "no known cause matches the evidence (add a runbook, or use a bigger model to write one)"
        return Decision(inconclusive(pattern, ctx, reason, model=MODEL_NAME), "no_candidate", False)
    return _pick(pattern, ctx, offered, settings, deps())


def _pick(
    pattern: Pattern, ctx: EvidenceContext, offered: Sequence[Candidate], settings: Settings, deps: AgentDeps
) -> Decision:
    from agent.llm.picking import pick_cause

    pick = pick_cause(ctx, offered, deps)
    if pick.candidate is None:
        diag = inconclusive(
            pattern, ctx, "the model picked none of the known causes", model=deps.model_name, latency_ms=pick.latency_ms
        )
        diag.input_tokens, diag.output_tokens = pick.input_tokens, pick.output_tokens
        return Decision(diag, "pick_none", True)
    c = pick.candidate
    floor = settings.min_confidence
    confidence = min(PICK_CONFIDENCE_CAP, match_confidence(c.score, settings.known_cause_pick_min_score, floor))
    summary = summary_for(pattern, c, ctx, pick.key_value)
    if pick.failing_component and pick.failing_component.lower() not in summary.lower():
        summary = f"{summary} [component: {pick.failing_component}]"
    diag = known_cause_diagnosis(
        pattern,
        ctx,
        c,
        confidence=confidence,
        model=deps.model_name,
        summary=summary[:MAX_SUMMARY],
        latency_ms=pick.latency_ms,
        input_tokens=pick.input_tokens,
        output_tokens=pick.output_tokens,
        prompt=(pick.prompt.name.split("/")[0], pick.prompt.version, pick.prompt.sha256),
    )
    return Decision(diag, "pick", True)


def _write(pattern: Pattern, ctx: EvidenceContext, deps: AgentDeps) -> Decision:
    from agent.llm.agents import diagnosis_prompts, draft_diagnosis

    result = draft_diagnosis(pattern, ctx, deps)
    # Inconclusive answers pass the gate too: "[P4]" is noise whatever the status says.
    system, user = diagnosis_prompts(pattern, ctx, deps)
    problem = quality_problem(
        summary=result.summary,
        root_cause=result.root_cause,
        steps=result.solution_steps,
        prompt_texts=[system.text, user.text],
        quoted=[ctx.render(), f"{pattern.error_type}: {pattern.template}", pattern.service],
    )
    if problem is None:
        return Decision(result, "write", True)
    if result.status is not DiagnosisStatus.diagnosed:
        problem = f"the model found no cause (its text was refused: {problem})"
    refused = result.model_copy(
        update={
            "status": DiagnosisStatus.inconclusive,
            "summary": f"inconclusive: {problem}"[:240],
            "root_cause": "",
            "solution_steps": [],
            "prevention_tips": [],
            "proposed_actions": [],
            "confidence": 0.0,
        }
    )
    return Decision(refused, "write_refused", True)
