"""Tell a model outage (503: try again later) from a bug (500) when a model call fails."""

from __future__ import annotations

from agent.llm.outage import outage_cause
from agent.settings import Settings


def model_down(exc: BaseException, settings: Settings) -> str | None:
    """What is down, in words for the client, when ``exc`` (or its cause) is a model outage; None otherwise."""
    from agent.llm.providers import ModelUnavailable

    cause = outage_cause(exc)
    if cause is None:
        return None
    if isinstance(cause, ModelUnavailable):
        return str(cause)
    where = settings.llm_base_url or (settings.ollama_url if settings.llm == "ollama" else "")
    at = f" at {where}" if where else ""
    return f"the {settings.llm} model{at} is not answering ({type(cause).__name__}: {cause})"


def context_overflow(exc: BaseException) -> str | None:
    """The model's refusal, when ``exc`` (or its cause) says the prompt does not fit its context window.

    pydantic-ai names it `ModelContextWindowExceededError` where the provider is known; llama.cpp's server
    (embedded) answers a plain 400 `exceed_context_size_error`, which arrives as `ModelRequestRejectedError`.
    """
    from pydantic_ai.exceptions import ModelContextWindowExceededError, ModelRequestRejectedError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModelContextWindowExceededError):
            return str(current)
        if isinstance(current, ModelRequestRejectedError) and "context" in str(current).lower():
            return str(current)
        current = current.__cause__ or current.__context__
    return None
