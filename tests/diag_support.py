"""Helpers for diagnosis tests: scripted models and services wired to them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent.bootstrap import Services, build_services
from agent.llm.config import LLMConfig
from agent.llm.providers import ModelRuntime
from agent.settings import Settings


def prompt_text(messages: list[ModelMessage]) -> str:
    """Everything the model was shown (instructions and user parts)."""
    out = []
    for m in messages:
        instructions = getattr(m, "instructions", None)
        if instructions:
            out.append(str(instructions))
        for part in getattr(m, "parts", []):
            content = getattr(part, "content", None)
            if isinstance(content, str):
                out.append(content)
    return "\n".join(out)


def scripted(answer: Callable[[str], dict[str, Any]], seen: list[str] | None = None) -> FunctionModel:
    """A model that answers with `answer(prompt)` as JSON, recording every prompt in `seen`."""

    def fn(messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
        text = prompt_text(messages)
        if seen is not None:
            seen.append(text)
        return ModelResponse(parts=[TextPart(json.dumps(answer(text)))])

    async def stream(messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str]:
        text = prompt_text(messages)
        if seen is not None:
            seen.append(text)
        body = json.dumps(answer(text))
        for i in range(0, len(body), 16):  # arrive in pieces, like tokens
            yield body[i : i + 16]

    return FunctionModel(fn, stream_function=stream)


def draft(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "diagnosed",
        "summary": "The service cannot reach its database.",
        "root_cause": "PostgreSQL refuses connections on port 5432.",
        "confidence": 0.8,
        "solution_steps": ["Start the database", "Check DATABASE_URL"],
        "prevention_tips": ["Add a readiness check"],
        "evidence": ["E1"],
        "proposed_actions": [],
    }
    body.update(over)
    return body


def services_with(settings: Settings, model: FunctionModel | Callable[[LLMConfig], ModelRuntime]) -> Services:
    factory = (
        model
        if callable(model) and not isinstance(model, FunctionModel)
        else (
            lambda cfg: ModelRuntime(model=model, name="function:test", config=cfg)  # type: ignore[arg-type]
        )
    )
    return build_services(settings, model_factory=factory)  # type: ignore[arg-type]


def writing(settings: Settings) -> Settings:
    """Settings on the model's free-form writing path with no known cause ever strong enough: for tests
    of what a model that writes its own diagnosis (and proposes actions) can do."""
    return settings.model_copy(update={"diagnosis_mode": "write", "known_cause_min_score": 1.0})
