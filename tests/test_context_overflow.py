"""A prompt that overflows the model's context window is the client's 422 on `question`, not a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic_ai.exceptions import ModelContextWindowExceededError, ModelRequestRejectedError

from agent.api.model_errors import context_overflow

# What the embedded llama.cpp server answered to a 2,000-digit question (schemathesis found it).
LLAMA_CPP = "request (2193 tokens) exceeds the available context size (2048 tokens), try increasing it"


def _wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("agent run failed") from exc
    except RuntimeError as outer:
        return outer


def test_context_overflow_is_recognised_through_the_cause_chain() -> None:
    assert context_overflow(_wrapped(ModelRequestRejectedError("m", LLAMA_CPP))) is not None
    assert context_overflow(ModelContextWindowExceededError("m", "too long")) is not None
    assert context_overflow(ModelRequestRejectedError("m", "invalid json schema")) is None
    assert context_overflow(ValueError("context size")) is None


def test_ask_answers_422_naming_question(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    services: Any = client.app.state.services  # type: ignore[attr-defined]

    def overflow(*_: Any, **__: Any) -> Any:
        raise _wrapped(ModelRequestRejectedError("SmolLM2", LLAMA_CPP))

    monkeypatch.setattr(services.diagnoser, "ask", overflow)
    r = client.post("/ask", json={"question": "0" * 2000})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "question_too_long" and error["fields"][0]["field"] == "question"
