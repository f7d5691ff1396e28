"""Is a failed model call an outage (the model is down, retry later) or a bug? One answer for the API and the
worker."""

from __future__ import annotations


def outage_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s cause chain that says the model is unreachable, overloaded or timed out.

    pydantic-ai and httpx are imported here, after a failure: they are loaded already when a model ran.
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
        if isinstance(cur, outage):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None
