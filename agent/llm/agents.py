"""The two agents, each behind one typed function: `draft_diagnosis` and `answer_question`.

Callers never touch `Agent`. Citations are checked by code: an alias or id that was not in the
context is removed, and an answer left without valid evidence becomes inconclusive.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from agent.domain import Diagnosis, DiagnosisStatus, EvidenceKind, Pattern, ProposedAction
from agent.llm.context import EvidenceContext, evidence_hash
from agent.llm.outputs import AskAnswer, DiagnosisDraft, with_citable
from agent.llm.prompts import PromptLibrary, RenderedPrompt

EVENTS_ONLY_CONFIDENCE_CAP = 0.6
"""Events show what happened; without a retrieved incident or runbook behind it, a cause is a guess."""


@dataclass(frozen=True)
class ActionInfo:
    id: str
    description: str


@dataclass
class AgentDeps:
    """What an agent call needs; built by the composition root."""

    model: Model
    model_name: str
    prompts: PromptLibrary
    model_settings: ModelSettings
    min_confidence: float = 0.35
    actions: Sequence[ActionInfo] = field(default_factory=tuple)
    retries: int = 2
    tools: Sequence[Callable[..., str]] = field(default_factory=tuple)
    """Read-only tools for the chat agent (only for models that call tools well)."""


@dataclass(frozen=True)
class AskResult:
    status: str
    answer: str
    citations: list[str]
    """Real ids (events, patterns, knowledge) that were in the context."""
    removed_citations: list[str]
    model: str
    prompt: RenderedPrompt
    input_tokens: int
    output_tokens: int
    latency_ms: int


def check_citations(cited: Sequence[str], ctx: EvidenceContext) -> tuple[list[str], list[str], set[EvidenceKind]]:
    """(valid real ids in order, removed citations, kinds of the valid items)."""
    valid: list[str] = []
    removed: list[str] = []
    kinds: set[EvidenceKind] = set()
    for c in cited:
        item = ctx.resolve(c)
        if item is None:
            removed.append(c)
        elif item.id not in valid:
            valid.append(item.id)
            kinds.add(item.kind)
    return valid, removed, kinds


# strict=False: OpenAI's strict mode drops maxLength/maxItems from the schema, and those bounds are what
# keep a small model's answer inside its output budget (llama.cpp turns them into grammar rules).


def _prompts(deps: AgentDeps, agent: str, **variables: Any) -> tuple[RenderedPrompt, RenderedPrompt]:
    system = deps.prompts.render(agent, "system", **variables.pop("system_vars", {}))
    user = deps.prompts.render(agent, "user", **variables)
    return system, user


def diagnosis_prompts(pattern: Pattern, ctx: EvidenceContext, deps: AgentDeps) -> tuple[RenderedPrompt, RenderedPrompt]:
    return _prompts(
        deps,
        "diagnosis",
        system_vars={"actions": [{"id": a.id, "description": a.description} for a in deps.actions]},
        pattern=pattern.model_dump(mode="json"),
        evidence=ctx.render() or "(no evidence)",
    )


@dataclass(frozen=True)
class Structured:
    """What one structured model call gave: the validated output, its token counts and its latency."""

    output: Any
    input_tokens: int
    output_tokens: int
    latency_ms: int


def run_structured(
    deps: AgentDeps, output_type: Any, system: RenderedPrompt, user: RenderedPrompt, *, strict: bool | None = False
) -> Structured:
    """One structured call with `deps`' model, settings and retries: `system` as instructions, `user` as input."""
    agent = Agent(
        deps.model,
        output_type=NativeOutput(output_type, strict=strict),
        instructions=system.text,
        model_settings=deps.model_settings,
        retries=deps.retries,
    )
    started = time.perf_counter()
    result = agent.run_sync(user.text)
    usage = result.usage
    return Structured(
        result.output, usage.input_tokens or 0, usage.output_tokens or 0, int((time.perf_counter() - started) * 1000)
    )


def draft_diagnosis(pattern: Pattern, ctx: EvidenceContext, deps: AgentDeps) -> Diagnosis:
    """Ask the model for a diagnosis of `pattern` grounded in `ctx`, then check it."""
    system, user = diagnosis_prompts(pattern, ctx, deps)
    output = with_citable(DiagnosisDraft, "evidence", [i.alias for i in ctx.items], no_actions=not deps.actions)
    run = run_structured(deps, output, system, user)
    return finalize_diagnosis(
        pattern,
        ctx,
        run.output,
        deps,
        system=system,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        latency_ms=run.latency_ms,
    )


def finalize_diagnosis(
    pattern: Pattern,
    ctx: EvidenceContext,
    draft: DiagnosisDraft,
    deps: AgentDeps,
    *,
    system: RenderedPrompt,
    input_tokens: int,
    output_tokens: int,
    latency_ms: int,
) -> Diagnosis:
    """Apply the citation and confidence rules to a model's draft."""
    valid, removed, kinds = check_citations(draft.evidence, ctx)
    confidence = draft.confidence
    if not (kinds - {EvidenceKind.event}):
        confidence = min(confidence, EVENTS_ONLY_CONFIDENCE_CAP)
    status = DiagnosisStatus(draft.status)
    if not valid or confidence < deps.min_confidence:
        status = DiagnosisStatus.inconclusive
    # Unknown action ids are kept on purpose: the recovery layer refuses and audits them.
    actions = [
        ProposedAction(action_id=a.action_id, params={"service": a.service} if a.service else {})
        for a in draft.proposed_actions
    ]
    return Diagnosis(
        pattern_id=pattern.id,
        status=status,
        summary=draft.summary,
        root_cause=draft.root_cause,
        confidence=round(confidence, 3),
        solution_steps=draft.solution_steps,
        prevention_tips=draft.prevention_tips,
        evidence=valid,
        removed_citations=removed,
        proposed_actions=actions,
        model=deps.model_name,
        prompt_name=system.name.split("/")[0],
        prompt_version=system.version,
        prompt_sha256=system.sha256,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        evidence_hash=evidence_hash(pattern, ctx),
        latency_ms=latency_ms,
    )


def _ask_agent(deps: AgentDeps, system: RenderedPrompt, ctx: EvidenceContext) -> Agent[None, AskAnswer]:
    # With tools the set of citable aliases grows during the run, so it cannot be fixed in the schema;
    # the code check after the run still applies.
    output = AskAnswer if deps.tools else with_citable(AskAnswer, "citations", [i.alias for i in ctx.items])
    return Agent(
        deps.model,
        output_type=NativeOutput(output, strict=False),
        instructions=system.text,
        model_settings=deps.model_settings,
        retries=deps.retries,
        tools=list(deps.tools),
    )


def _ask_result(
    out: AskAnswer,
    ctx: EvidenceContext,
    deps: AgentDeps,
    system: RenderedPrompt,
    input_tokens: int,
    output_tokens: int,
    latency_ms: int,
) -> AskResult:
    valid, removed, _ = check_citations(out.citations, ctx)
    # Aliases written inline in the answer ("[P1]") count as citations too.
    import re

    for alias in re.findall(r"\[([EPKG]\d{1,3})\]", out.answer):
        item = ctx.resolve(alias)
        if item is not None and item.id not in valid:
            valid.append(item.id)
    status = out.status if valid else "inconclusive"
    return AskResult(
        status, out.answer, valid, removed, deps.model_name, system, input_tokens, output_tokens, latency_ms
    )


def ask_prompts(
    question: str, service: str | None, ctx: EvidenceContext, deps: AgentDeps
) -> tuple[RenderedPrompt, RenderedPrompt]:
    return _prompts(deps, "ask", question=question, service=service or "", evidence=ctx.render() or "(no evidence)")


def answer_question(question: str, service: str | None, ctx: EvidenceContext, deps: AgentDeps) -> AskResult:
    system, user = ask_prompts(question, service, ctx, deps)
    started = time.perf_counter()
    result = _ask_agent(deps, system, ctx).run_sync(user.text)
    usage = result.usage
    return _ask_result(
        result.output,
        ctx,
        deps,
        system,
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        int((time.perf_counter() - started) * 1000),
    )


async def stream_answer(
    question: str, service: str | None, ctx: EvidenceContext, deps: AgentDeps
) -> AsyncIterator[str | AskResult]:
    """Yield growing answer text as it is generated, then the checked `AskResult`."""
    system, user = ask_prompts(question, service, ctx, deps)
    started = time.perf_counter()
    sent = ""
    async with _ask_agent(deps, system, ctx).run_stream(user.text) as stream:
        async for partial in stream.stream_output(debounce_by=0.05):
            text = getattr(partial, "answer", "") or ""
            if len(text) > len(sent):
                yield text[len(sent) :]
                sent = text
        final = await stream.get_output()
        usage = stream.usage
    yield _ask_result(
        final,
        ctx,
        deps,
        system,
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        int((time.perf_counter() - started) * 1000),
    )
