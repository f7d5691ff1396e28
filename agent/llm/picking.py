"""The picking agent: the model chooses which known cause the evidence supports; code writes the rest.

A small model cannot write a root cause worth reading, but it can choose from a short list. The
output schema is an enum of the offered candidates' aliases plus "none" (llama.cpp turns it into a
grammar, so nothing else can come out), and two short slots. Slots are kept only when they occur in
the evidence verbatim: a model cannot add a value that is not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from agent.diagnosis.candidates import Candidate
from agent.llm.agents import AgentDeps, run_structured
from agent.llm.context import EvidenceContext
from agent.llm.prompts import RenderedPrompt

NONE = "none"
MAX_OFFERED = 4


def _trim(limit: int) -> BeforeValidator:
    def f(v: Any) -> Any:
        return v.strip()[:limit] if isinstance(v, str) else v

    return BeforeValidator(f)


class CausePick(BaseModel):
    """What the picking agent answers."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    cause: Annotated[str, _trim(16), Field(max_length=16)]
    """The id of the known cause the evidence shows (e.g. "K1"), or "none"."""
    failing_component: Annotated[str, _trim(60), Field(max_length=60)] = ""
    """The service, pod, host or file that fails, copied from the evidence."""
    key_value: Annotated[str, _trim(80), Field(max_length=80)] = ""
    """The value from the evidence that shows the cause (exit code, port, name)."""


@dataclass(frozen=True)
class Pick:
    """A checked pick: the chosen candidate (None for "none") and the slots found in the evidence."""

    candidate: Candidate | None
    failing_component: str
    key_value: str
    prompt: RenderedPrompt
    input_tokens: int
    output_tokens: int
    latency_ms: int


def _output(aliases: Sequence[str]) -> type[CausePick]:
    choices = [*aliases, NONE]
    extra: dict[str, Any] = {"enum": choices}
    derived = create_model(
        "CausePick",
        __base__=CausePick,
        cause=(Annotated[str, _trim(16), Field(max_length=16, json_schema_extra=extra)], ...),
    )
    return derived


def _in_evidence(value: str, ctx: EvidenceContext) -> str:
    value = value.strip()
    if len(value) < 2:
        return ""
    haystack = "\n".join(i.text for i in ctx.items).lower()
    return value if value.lower() in haystack else ""


def pick_cause(ctx: EvidenceContext, candidates: Sequence[Candidate], deps: AgentDeps) -> Pick:
    """Ask the model which of `candidates` (at most `MAX_OFFERED`) the evidence in `ctx` shows."""
    offered = list(candidates[:MAX_OFFERED])
    if not offered:
        raise ValueError("nothing to pick from")
    aliases = [f"K{n}" for n in range(1, len(offered) + 1)]
    causes = [
        {"alias": a, "title": c.title, "root_cause": c.root_cause[:240]} for a, c in zip(aliases, offered, strict=True)
    ]
    events = "\n\n".join(f"[{i.alias}] {i.text}" for i in ctx.items if i.kind.value == "event")
    system = deps.prompts.render("pick", "system")
    user = deps.prompts.render("pick", "user", evidence=events or "(no evidence)", causes=causes)
    run = run_structured(deps, _output(aliases), system, user)
    out = run.output
    choice = out.cause.strip().strip("[]").upper()
    chosen = offered[aliases.index(choice)] if choice in aliases else None
    return Pick(
        candidate=chosen,
        failing_component=_in_evidence(out.failing_component, ctx),
        key_value=_in_evidence(out.key_value, ctx),
        prompt=system,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        latency_ms=run.latency_ms,
    )
