"""Write a diagnosis from a known cause: code writes, no model needed.

The root cause is the entry's meaning, the steps its mitigation, the tips its prevention; the summary
says what failed in the pattern's own words (its deciding evidence line). Citations: the entry (K1 or
G1) and the pattern's events that were shown (E1…). Confidence comes from the retrieval match, mapped
so that the calibrated threshold lands on `Settings.min_confidence` and a perfect match on 0.95.
"""

from __future__ import annotations

import hashlib

from agent.capture.evidence import extract_evidence
from agent.diagnosis.candidates import Candidate
from agent.domain import Diagnosis, DiagnosisStatus, EvidenceKind, Pattern
from agent.llm.context import EvidenceContext, evidence_hash

MODEL_NAME = "known-cause"
"""What `Diagnosis.model` says for a diagnosis written by code from a knowledge entry."""
PROMPT_NAME = "known_cause"
PROMPT_VERSION = 1
"""Bump when the way a diagnosis is written from an entry changes (stored with every diagnosis)."""
MAX_CONFIDENCE = 0.95
MAX_SUMMARY = 360
MAX_LINE = 160
MAX_EVENTS_CITED = 3


def match_confidence(score: float, threshold: float, floor: float) -> float:
    """Map a similarity in [threshold, 1] linearly onto [floor, MAX_CONFIDENCE] (clamped)."""
    if threshold >= 1.0:
        return floor
    x = (score - threshold) / (1.0 - threshold)
    return round(min(MAX_CONFIDENCE, max(0.0, floor + x * (MAX_CONFIDENCE - floor))), 3)


def failing_lines(ctx: EvidenceContext, n: int = 2) -> list[str]:
    """The `n` most telling lines of the pattern's events in the context (their deciding evidence),
    the same whatever order the events arrived in."""
    texts = sorted(i.text.split("\n", 1)[-1] for i in ctx.items if i.kind is EvidenceKind.event)
    if not texts:
        return []
    heads = sorted({extract_evidence(t, max_lines=8).headline for t in texts} - {""})
    best = extract_evidence("\n".join(texts), max_lines=8).headline
    ordered = [best, *(h for h in heads if h != best)] if best else heads
    return [line[:MAX_LINE] for line in ordered[:n]]


def summary_for(pattern: Pattern, candidate: Candidate, ctx: EvidenceContext, key_value: str = "") -> str:
    lines = failing_lines(ctx) or [f"{pattern.error_type}: {pattern.template}"]
    text = f"{candidate.title}. {pattern.service} reports: " + " | ".join(lines)
    if key_value and key_value.lower() not in text.lower():
        text += f" (key value: {key_value})"
    return text[:MAX_SUMMARY]


def known_cause_diagnosis(
    pattern: Pattern,
    ctx: EvidenceContext,
    candidate: Candidate,
    *,
    confidence: float,
    model: str = MODEL_NAME,
    summary: str | None = None,
    latency_ms: int = 0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    prompt: tuple[str, int, str] | None = None,
) -> Diagnosis:
    """The diagnosis written from `candidate` (added to `ctx` if it is not there yet, so it is citable).

    `prompt` is (name, version, sha256) of the prompt that picked it; default: this module's own.
    """
    name, version, sha = prompt or (PROMPT_NAME, PROMPT_VERSION, hashlib.sha256(candidate.text.encode()).hexdigest())
    ctx.add(candidate.kind, candidate.id, f"{candidate.title}\n{candidate.text[:1500]}", candidate.score)
    events = [i.id for i in ctx.items if i.kind is EvidenceKind.event][:MAX_EVENTS_CITED]
    return Diagnosis(
        pattern_id=pattern.id,
        status=DiagnosisStatus.diagnosed,
        summary=summary if summary is not None else summary_for(pattern, candidate, ctx),
        root_cause=candidate.root_cause,
        confidence=round(confidence, 3),
        solution_steps=list(candidate.steps),
        prevention_tips=list(candidate.tips),
        evidence=[candidate.id, *events],
        model=model,
        prompt_name=name,
        prompt_version=version,
        prompt_sha256=sha,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        evidence_hash=evidence_hash(pattern, ctx),
        latency_ms=latency_ms,
    )


def inconclusive(pattern: Pattern, ctx: EvidenceContext, reason: str, *, model: str, latency_ms: int = 0) -> Diagnosis:
    """An honest "don't know", with the reason in the summary; cites the events it looked at."""
    events = [i.id for i in ctx.items if i.kind is EvidenceKind.event][:MAX_EVENTS_CITED]
    return Diagnosis(
        pattern_id=pattern.id,
        status=DiagnosisStatus.inconclusive,
        summary=f"inconclusive: {reason}"[:MAX_SUMMARY],
        root_cause="",
        confidence=0.0,
        evidence=events,
        model=model,
        prompt_name=PROMPT_NAME,
        prompt_version=PROMPT_VERSION,
        prompt_sha256=hashlib.sha256(reason.encode()).hexdigest(),
        evidence_hash=evidence_hash(pattern, ctx),
        latency_ms=latency_ms,
    )
