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
