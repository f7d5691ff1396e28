"""Guide drafting on the known-cause path and behind the quality gate.

- A pattern whose current diagnosis was written from a known cause (a runbook or an approved entry)
  gets its draft written by code from that diagnosis: no model call, and no title like "error pattern".
- A model's draft that echoes aliases or prompt text, or has a root cause without content words, is
  refused with the reason (the learning loop records it as a rejection, like a draft without citations).
"""

from __future__ import annotations

from agent.diagnosis.gate import quality_problem
from agent.diagnosis.known_cause import MODEL_NAME
from agent.domain import Diagnosis, DiagnosisStatus, Pattern
from agent.guide.drafting import MAX_TITLE, GuideDraftResult, symptom_line
from agent.guide.models import AuthorKind, Authorship, EntryContent
from agent.llm.context import EvidenceContext, evidence_hash

KNOWN_PROMPTS = frozenset({"known_cause", "pick"})
"""`Diagnosis.prompt_name` of diagnoses written by code from a known cause."""


def from_known_cause(
    pattern: Pattern, ctx: EvidenceContext, diagnosis: Diagnosis | None, title: str | None
) -> GuideDraftResult | None:
    """A draft written from a known-cause diagnosis, or None when the diagnosis is not one."""
    if (
        diagnosis is None
        or diagnosis.status is not DiagnosisStatus.diagnosed
        or diagnosis.prompt_name not in KNOWN_PROMPTS
        or not diagnosis.evidence
    ):
        return None
    symptom = symptom_line(pattern.error_type, pattern.template)
    content = EntryContent(
        title=(title or symptom)[:MAX_TITLE],
        description=diagnosis.summary[:240],
        error_type=pattern.error_type,
        template=pattern.template,
        symptoms=[symptom],
        root_cause=diagnosis.root_cause[:400],
        solution_steps=[s[:140] for s in diagnosis.solution_steps[:4]],
        prevention_tips=[s[:140] for s in diagnosis.prevention_tips[:3]],
    )
    author = Authorship(
        kind=AuthorKind.model,
        name=MODEL_NAME if diagnosis.prompt_name == "known_cause" else diagnosis.model,
        prompt_name=diagnosis.prompt_name,
        prompt_version=diagnosis.prompt_version,
        prompt_sha256=diagnosis.prompt_sha256,
    )
    return GuideDraftResult(
        content=content,
        evidence=list(diagnosis.evidence),
        removed_citations=[],
        author=author,
        evidence_hash=evidence_hash(pattern, ctx),
        input_tokens=0,
        output_tokens=0,
        latency_ms=0,
    )


def draft_problem(result: GuideDraftResult, prompt_texts: list[str], quoted: list[str]) -> str | None:
    """Why a model's draft must not be stored, or None (`quoted`: evidence and pattern it may repeat)."""
    c = result.content
    return quality_problem(
        summary=c.title,
        root_cause=c.root_cause,
        steps=[c.description, *c.solution_steps],
        prompt_texts=prompt_texts,
        quoted=quoted,
    )
