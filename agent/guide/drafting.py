"""The guide agent behind one typed function: `draft_guide_entry`.

Same rules as the diagnosis agent: structured `NativeOutput`, every field bounded, citations checked by code.
A draft that cites nothing that was in its context is not a draft (`GuideDraftResult.valid` is False).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from agent.domain import Diagnosis, Pattern
from agent.guide.models import AuthorKind, Authorship, EntryContent
from agent.llm.agents import AgentDeps, check_citations, run_structured
from agent.llm.context import EvidenceContext, evidence_hash
from agent.llm.outputs import Id
from agent.llm.prompts import RenderedPrompt

PROMPT = "guide"
MAX_TITLE = 120


def _text(limit: int) -> BeforeValidator:
    def trim(v: Any) -> Any:
        return " ".join(v.split())[:limit] if isinstance(v, str) else v

    return BeforeValidator(trim)


def _items(limit: int) -> BeforeValidator:
    def take(v: Any) -> Any:
        if isinstance(v, str):  # a small model answering a list with one string
            v = [v] if v.strip() else []
        if isinstance(v, list | tuple):
            return [x for x in v if not isinstance(x, str) or x.strip()][:limit]
        return v

    return BeforeValidator(take)


Line = Annotated[str, _text(140), Field(max_length=140)]
Command = Annotated[str, _text(120), Field(max_length=120)]


class GuideDraft(BaseModel):
    """What the guide agent answers: one entry of the error prevention guide."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    title: Annotated[str, _text(MAX_TITLE), Field(max_length=MAX_TITLE)]
    """A short name for the error, e.g. "Database connection refused"."""
    description: Annotated[str, _text(240), Field(max_length=240)]
    """One or two sentences: what fails and what the user sees."""
    root_cause: Annotated[str, _text(400), Field(max_length=400)]
    """Why it happens, as the cited evidence shows."""
    solution_steps: Annotated[list[Line], _items(4), Field(max_length=4)]
    """Steps that fix it, most important first."""
    prevention_tips: Annotated[list[Line], _items(3), Field(max_length=3)]
    """How to keep it from happening again."""
    commands: Annotated[list[Command], _items(3), Field(max_length=3)] = []
    """Read-only commands a person can run to check the cause (documentation; nobody runs them automatically)."""
    evidence: Annotated[list[Id], _items(8), Field(max_length=8)]
    """Aliases of the evidence items the entry relies on, e.g. ["E1", "K2"]."""


def output_model(ctx: EvidenceContext) -> type[GuideDraft]:
    """`GuideDraft` whose JSON schema lists the context's aliases as the only citations (at least one).

    A server that turns the schema into a grammar (llama.cpp, Ollama) then cannot emit an alias that was not
    in the context, which small models otherwise do (they cite timestamps). Only the schema is narrowed:
    validation still accepts any string, so a model that ignores the schema ends in the citation check, not
    in a validation retry.
    """
    aliases = [item.alias for item in ctx.items]
    if not aliases:
        return GuideDraft
    schema = {"type": "array", "items": {"type": "string", "enum": aliases}, "minItems": 1, "maxItems": 8}
    field = Annotated[list[Id], _items(8), WithJsonSchema(schema)]
    description = "Aliases of the evidence items the entry relies on."
    model = create_model(
        "GuideDraft",
        __base__=GuideDraft,
        evidence=(field, Field(description=description)),
    )
    return cast(type[GuideDraft], model)


@dataclass(frozen=True)
class GuideDraftResult:
    """A checked draft. `valid` is False when no citation survived the check: it must not be stored as a draft."""

    content: EntryContent
    evidence: list[str]
    """Real ids that were in the context."""
    removed_citations: list[str]
    author: Authorship
    evidence_hash: str
    input_tokens: int
    output_tokens: int
    latency_ms: int

    @property
    def valid(self) -> bool:
        return bool(self.evidence)


def guide_prompts(
    pattern: Pattern,
    ctx: EvidenceContext,
    deps: AgentDeps,
    *,
    diagnosis: Diagnosis | None = None,
    existing: EntryContent | None = None,
) -> tuple[RenderedPrompt, RenderedPrompt]:
    system = deps.prompts.render(PROMPT, "system")
    user = deps.prompts.render(
        PROMPT,
        "user",
        pattern=pattern.model_dump(mode="json"),
        diagnosis=(
            diagnosis.model_dump(
                mode="json",
                include={"status", "summary", "root_cause", "solution_steps", "prevention_tips", "confidence"},
            )
            if diagnosis is not None
            else None
        ),
        existing=existing.model_dump(mode="json") if existing is not None else None,
        evidence=ctx.render() or "(no evidence)",
        aliases=[item.alias for item in ctx.items],
    )
    return system, user


def draft_guide_entry(
    pattern: Pattern,
    ctx: EvidenceContext,
    deps: AgentDeps,
    *,
    diagnosis: Diagnosis | None = None,
    existing: EntryContent | None = None,
) -> GuideDraftResult:
    """Draft a guide entry for `pattern` (or a revision of `existing`) grounded in `ctx`, then check it.

    Args:
        pattern: the error pattern the entry is for.
        ctx: the evidence put in front of the model; only its aliases count as citations.
        deps: model, prompts and settings.
        diagnosis: the pattern's current diagnosis, given to the model as a starting point (not as evidence).
        existing: an approved entry to revise instead of writing a new one.
    """
    system, user = guide_prompts(pattern, ctx, deps, diagnosis=diagnosis, existing=existing)
    run = run_structured(deps, output_model(ctx), system, user, strict=None)
    return finalize_draft(
        pattern,
        ctx,
        run.output,
        deps,
        system=system,
        user=user,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        latency_ms=run.latency_ms,
    )


def finalize_draft(
    pattern: Pattern,
    ctx: EvidenceContext,
    draft: GuideDraft,
    deps: AgentDeps,
    *,
    system: RenderedPrompt,
    user: RenderedPrompt | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    latency_ms: int = 0,
) -> GuideDraftResult:
    """Apply the citation rules to a model's answer and fill what code knows better than the model."""
    valid, removed, _ = check_citations(draft.evidence, ctx)
    symptom = symptom_line(pattern.error_type, pattern.template)
    content = EntryContent(
        title=draft.title or symptom[:MAX_TITLE],
        description=draft.description,
        error_type=pattern.error_type,
        template=pattern.template,
        symptoms=[symptom],
        root_cause=draft.root_cause,
        solution_steps=list(draft.solution_steps),
        prevention_tips=list(draft.prevention_tips),
        commands=list(draft.commands),
    )
    author = Authorship(
        kind=AuthorKind.model,
        name=deps.model_name,
        prompt_name=PROMPT,
        prompt_version=system.version,
        prompt_sha256=prompt_hash(system, user),
    )
    return GuideDraftResult(
        content=content,
        evidence=valid,
        removed_citations=removed,
        author=author,
        evidence_hash=evidence_hash(pattern, ctx),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=latency_ms,
    )


def prompt_hash(system: RenderedPrompt, user: RenderedPrompt | None) -> str:
    """One hash for the pair of templates (system and user) that produced a draft."""
    if user is None:
        return system.sha256
    return hashlib.sha256(f"{system.sha256}:{user.sha256}".encode()).hexdigest()


def symptom_line(error_type: str, template: str) -> str:
    """`ErrorType: message template`, on one line (templates can span lines)."""
    return " ".join(f"{error_type}: {template}".split())[:500]
