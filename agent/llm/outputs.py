"""Output models the agents must fill. Every list and string is bounded; numbers are clamped.

Small local models honour the JSON schema's structure (llama.cpp turns it into a grammar) but not
always its bounds, so validators trim and clamp instead of failing the whole answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model


def _trim(limit: int) -> BeforeValidator:
    def f(v: Any) -> Any:
        return v.strip()[:limit] if isinstance(v, str) else v

    return BeforeValidator(f)


def _take(limit: int) -> BeforeValidator:
    def f(v: Any) -> Any:
        if isinstance(v, str):  # a model that answers a list with one string
            v = [v] if v.strip() else []
        return list(v)[:limit] if isinstance(v, list | tuple) else v

    return BeforeValidator(f)


def _clamp01(v: Any) -> Any:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    if x != x:  # NaN
        return 0.0
    if x > 1.0 and x <= 100.0:  # a percentage
        x /= 100.0
    return min(1.0, max(0.0, x))


DraftT = TypeVar("DraftT", bound=BaseModel)
Short = Annotated[str, _trim(90), Field(max_length=90)]
Id = Annotated[str, _trim(32), Field(max_length=32)]
Confidence = Annotated[float, BeforeValidator(_clamp01), Field(ge=0.0, le=1.0)]


class ActionProposal(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    action_id: Annotated[str, _trim(64), Field(max_length=64)]
    """The id of an allow-listed recovery action (from the list you were given), never a command."""
    service: Annotated[str, _trim(64), Field(max_length=64)] = ""
    """The service the action applies to, if it takes one."""


class DiagnosisDraft(BaseModel):
    """What the diagnosis agent answers."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    status: Literal["diagnosed", "inconclusive"]
    """`inconclusive` when the evidence does not show a cause (or shows nothing is wrong)."""
    summary: Annotated[str, _trim(140), Field(max_length=140)]
    """One or two sentences: what is failing."""
    root_cause: Annotated[str, _trim(220), Field(max_length=220)]
    """Why it fails, as supported by the cited evidence."""
    confidence: Confidence
    """0 to 1."""
    solution_steps: Annotated[list[Short], _take(3), Field(max_length=3)]
    """Concrete steps to fix it, most important first."""
    prevention_tips: Annotated[list[Short], _take(2), Field(max_length=2)]
    """How to keep it from happening again."""
    evidence: Annotated[list[Id], _take(5), Field(max_length=5)]
    """Aliases of the evidence items that support the root cause, e.g. ["E1", "K2"]."""
    proposed_actions: Annotated[list[ActionProposal], _take(1), Field(max_length=1)] = []
    """Optional recovery actions by id from the allowed list; leave empty when none fits."""


# Budget check: at their bounds the strings total ~950 characters. Even degenerate text ("2. 2. 2.")
# costs under 0.6 tokens a character, so with JSON syntax an answer stays under the default 512 output
# tokens and is never cut off mid-JSON. (`no_actions` removes proposed_actions when none are allowed.)


class AskAnswer(BaseModel):
    """What the chat agent answers."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    status: Literal["answered", "inconclusive"]
    """`inconclusive` when the evidence does not answer the question."""
    answer: Annotated[str, _trim(600), Field(max_length=600)]
    """The answer, citing evidence aliases in square brackets like [P1]."""
    citations: Annotated[list[Id], _take(5), Field(max_length=5)]
    """Aliases of the evidence items the answer relies on."""


def with_citable(model: type[DraftT], field: str, aliases: Sequence[str], *, no_actions: bool = False) -> type[DraftT]:
    """The same output model, but its JSON schema lets `field` hold only the given aliases.

    Constrained decoding (llama.cpp, Ollama and OpenAI turn the schema into a grammar) then keeps a
    model from citing anything that was not in its context. Validation stays `list[str]`, so a
    provider that ignores the schema still reaches the citation check instead of failing.
    """
    if not aliases and not no_actions:
        return model
    key = (model, field, tuple(aliases), no_actions)
    cached = _CITABLE.get(key)
    if cached is not None:
        return cached  # type: ignore[return-value]
    info = model.model_fields[field]
    limit = next((m.max_length for m in info.metadata if hasattr(m, "max_length")), 5)
    fields: dict[str, Any] = {}
    if aliases:
        # minItems 1: every answer points at evidence; "not sure" is said with status and confidence.
        extra: dict[str, Any] = {"items": {"type": "string", "enum": list(aliases)}, "minItems": 1, "maxItems": limit}
        fields[field] = (Annotated[list[str], _take(limit), Field(max_length=limit, json_schema_extra=extra)], ...)
    if no_actions and "proposed_actions" in model.model_fields:
        # Nothing may be proposed: the grammar allows only [] (and validation still accepts what a
        # schema-ignoring provider sends, so the recovery layer can refuse and audit it).
        fields["proposed_actions"] = (
            Annotated[list[ActionProposal], Field(json_schema_extra={"maxItems": 0})],
            [],
        )
    derived = create_model(model.__name__, __base__=model, **fields)
    _CITABLE[key] = derived
    return derived  # type: ignore[no-any-return]


_CITABLE: dict[tuple[type[BaseModel], str, tuple[str, ...], bool], type[BaseModel]] = {}
