"""Shared set-up for the guide tests: a fake clock, scripted models, a wired Guide over real retrieval.

Imported by the other `test_guide_*` modules; the tests here check the helpers themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent.diagnose import Diagnoser
from agent.guide.service import Guide
from agent.ingest.normalize import EventCreate
from agent.llm.config import LLMConfig
from agent.llm.providers import ModelRuntime
from agent.runtime import Runtime
from agent.settings import Settings

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


@dataclass
class FakeClock:
    now: dt.datetime = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def _user_text(messages: list[ModelMessage]) -> str:
    parts = [p for m in messages for p in getattr(m, "parts", []) if type(p).__name__ == "UserPromptPart"]
    return str(parts[-1].content) if parts else ""


@dataclass
class ScriptedModel:
    """A FunctionModel answering like a good guide writer: it cites the first evidence alias it was shown.

    `cite` overrides the citation (e.g. an alias that was not in the context).
    """

    cite: list[str] | None = None
    calls: int = 0
    prompts: list[str] = field(default_factory=list)

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        text = _user_text(messages)
        self.prompts.append(text)
        header = re.search(r'service "([^"]+)":\n([^\n]+)', text)
        what = header.group(2) if header else "an error"
        aliases = re.findall(r"^\[([EPKG]\d+)\]", text, flags=re.M)
        answer = {
            "title": f"{what.split(':')[0]} in {header.group(1) if header else 'a service'}",
            "description": f"The service fails with {what}.",
            "root_cause": "The evidence shows the dependency is unreachable.",
            "solution_steps": ["Check that the dependency is running.", "Retry the operation."],
            "prevention_tips": ["Add a health check for the dependency."],
            "commands": ["docker ps"],
            "evidence": self.cite if self.cite is not None else aliases[:1],
        }
        return ModelResponse(parts=[TextPart(json.dumps(answer))])

    def runtime(self) -> ModelRuntime:
        return ModelRuntime(model=FunctionModel(self), name="test:scripted", config=LLMConfig())


@dataclass
class GuideEnv:
    runtime: Runtime
    guide: Guide
    clock: FakeClock
    model: ScriptedModel

    @property
    def engine(self) -> Any:
        return self.runtime.core.engine

    def ingest(self, service: str, error_type: str, message: str, n: int = 1, **extra: Any) -> None:
        bodies = [
            EventCreate(service=service, error_type=error_type, error_message=message, severity="high", **extra)
            for _ in range(n)
        ]
        self.runtime.core.ingest_sync(bodies)

    def pattern_id(self, error_type: str) -> str:
        patterns, _ = self.runtime.core.patterns(q=error_type, limit=10)
        found = [p.id for p in patterns if p.error_type == error_type]
        assert len(found) == 1, found
        return found[0]


def seed_two_errors(env: GuideEnv) -> None:
    env.ingest("api", "ConnectionRefusedError", "connection to db-1:5432 refused", 3)
    env.ingest("worker", "OSError", "[Errno 28] No space left on device: '/var/data/x.bin'", 2)


@contextmanager
def open_env(settings: Settings, model: ScriptedModel | None = None, **guide_kwargs: Any) -> Iterator[GuideEnv]:
    """A started Core (writer running), real retrieval in the data dir, the scripted model, a Guide."""
    clock = FakeClock()
    scripted = model or ScriptedModel()
    settings = settings.model_copy(update={"guide_path": settings.data_dir / "guide" / "GUIDE.md"})
    runtime = Runtime(settings, clock=clock, model_factory=lambda _cfg: scripted.runtime())
    runtime.core.open()
    try:
        guide = Guide(Diagnoser(runtime), **guide_kwargs)
        yield GuideEnv(runtime, guide, clock, scripted)
    finally:
        runtime.close()


@pytest.fixture
def guide_env(settings: Settings) -> Iterator[GuideEnv]:
    with open_env(settings) as env:
        yield env


# -- the helpers' own tests ---------------------------------------------------------------------------


def test_fake_clock_drives_received_at(guide_env: GuideEnv) -> None:
    guide_env.ingest("api", "ValueError", "bad value 1")
    guide_env.clock.advance(minutes=3)
    guide_env.ingest("api", "ValueError", "bad value 2")
    pattern = guide_env.runtime.core.pattern(guide_env.pattern_id("ValueError"))
    assert pattern is not None
    assert (pattern.first_seen, pattern.last_seen) == (T0, T0 + dt.timedelta(minutes=3))
