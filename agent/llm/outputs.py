"""Output models the agents must fill. Every list and string is bounded; numbers are clamped.

Small local models honour the JSON schema's structure (llama.cpp turns it into a grammar) but not
always its bounds, so validators trim and clamp instead of failing the whole answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


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


Short = Annotated[str, _trim(200), Field(max_length=200)]
Id = Annotated[str, _trim(40), Field(max_length=40)]
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
    summary: Annotated[str, _trim(300), Field(max_length=300)]
    """One or two sentences: what is failing."""
    root_cause: Annotated[str, _trim(600), Field(max_length=600)]
    """Why it fails, as supported by the cited evidence."""
    confidence: Confidence
    """0 to 1."""
    solution_steps: Annotated[list[Short], _take(5), Field(max_length=5)]
    """Concrete steps to fix it, most important first."""
    prevention_tips: Annotated[list[Short], _take(4), Field(max_length=4)]
    """How to keep it from happening again."""
    evidence: Annotated[list[Id], _take(8), Field(max_length=8)]
    """Aliases of the evidence items that support the root cause, e.g. ["E1", "K2"]."""
    proposed_actions: Annotated[list[ActionProposal], _take(2), Field(max_length=2)] = []
    """Optional recovery actions by id from the allowed list; leave empty when none fits."""


class AskAnswer(BaseModel):
    """What the chat agent answers."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    status: Literal["answered", "inconclusive"]
    """`inconclusive` when the evidence does not answer the question."""
    answer: Annotated[str, _trim(1200), Field(max_length=1200)]
    """The answer, citing evidence aliases in square brackets like [P1]."""
    citations: Annotated[list[Id], _take(8), Field(max_length=8)]
    """Aliases of the evidence items the answer relies on."""
