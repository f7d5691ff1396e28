"""Tell a model outage (503: try again later) from a bug (500) when a model call fails."""

from __future__ import annotations

from agent.settings import Settings


def model_down(exc: BaseException, settings: Settings) -> str | None:
    """What is down, in words for the client, when ``exc`` (or its cause) is a model outage; None otherwise.

    pydantic-ai and httpx are imported only here, after a failure: they are loaded already when a model ran.
    """
    import httpx
    from pydantic_ai import exceptions as pai

    from agent.llm.providers import ModelUnavailable

    outage = (
        ModelUnavailable,
        pai.ModelConnectionError,
        pai.ModelTimeoutError,
        pai.ModelServerError,
        pai.ModelUnavailableError,
        pai.ModelOverloadedError,
        httpx.TransportError,
        ConnectionError,
        TimeoutError,
    )
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ModelUnavailable):
            return str(cur)
        if isinstance(cur, outage):
            where = settings.llm_base_url or (settings.ollama_url if settings.llm == "ollama" else "")
            at = f" at {where}" if where else ""
            return f"the {settings.llm} model{at} is not answering ({type(cur).__name__}: {cur})"
        cur = cur.__cause__ or cur.__context__
    return None
