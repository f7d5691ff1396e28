"""An LLM judge for the diagnosis suite: does a diagnosis state each expected bullet?

Key-token matching (`evals.scorers.bullet_recall`) cannot judge meaning or negation; a bigger model
can. The judge is any model errlearn can reach, named by id and reached through the configured
provider (Ollama when the configured one is the embedded model). `--judge embedded` uses the
bundled model, which only exercises the wiring: a 135M model is no judge.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.settings import ModelSettings

from agent.llm.config import LLMConfig
from agent.llm.providers import ModelRuntime, open_model
from agent.settings import Settings

log = logging.getLogger(__name__)

PROMPT_VERSION = 1
"""Bump (never edit) when the wording below changes, and compare both versions on the same run."""
SYSTEM = (
    "You grade an incident diagnosis written by another assistant. You get the diagnosis and one "
    "expected point. Answer stated=true only if the diagnosis states that point (same meaning, any "
    "wording); answer stated=false if it is missing, only hinted at, or contradicted."
)
USER = "Diagnosis:\n{answer}\n\nExpected point:\n{bullet}\n\nDoes the diagnosis state the expected point?"


class BulletVerdict(BaseModel):
    """The judge's answer for one expected point."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    stated: bool
    """True when the diagnosis states the expected point."""


CONFIGURED = "configured"
"""`--judge configured`: judge with the model errlearn is configured to use."""


def judge_config(settings: Settings, model: str) -> LLMConfig:
    """The judge's connection: the configured provider with another model id (`configured`: the
    configured provider and model themselves, whatever they are)."""
    if model == CONFIGURED:
        from agent.runtime import llm_config

        return llm_config(settings).model_copy(update={"max_output_tokens": 20, "temperature": 0.0})
    if model == "embedded":
        return LLMConfig(provider="embedded", gguf_path=settings.llm_gguf_path, max_output_tokens=20, temperature=0.0)
    provider = settings.llm if settings.llm != "embedded" else "ollama"
    base_url = settings.llm_base_url or (settings.ollama_url if provider == "ollama" else None)
    return LLMConfig(
        provider=provider,
        model=model,
        base_url=base_url,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
        max_output_tokens=20,
        temperature=0.0,
    )


class Judge:
    """Grades answers bullet by bullet; open it once per run and `close()` it."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.name = runtime.name
        settings = ModelSettings(max_tokens=runtime.config.max_output_tokens, temperature=0.0)
        self._agent = Agent(
            runtime.model,
            output_type=NativeOutput(BulletVerdict),
            instructions=SYSTEM,
            model_settings=settings,
            retries=1,
        )

    def bullets(self, answer: str, bullets: Sequence[str]) -> list[bool | None]:
        """Per bullet: stated or not; None when the judge failed to answer."""
        out: list[bool | None] = []
        for bullet in bullets:
            try:
                result = self._agent.run_sync(USER.format(answer=answer, bullet=bullet))
            except Exception as exc:  # a judge failure must not sink the run; it is reported per bullet
                log.warning("judge %s failed on a bullet: %s", self.name, exc)
                out.append(None)
            else:
                out.append(result.output.stated)
        return out

    def close(self) -> None:
        self.runtime.close()


def open_judge(settings: Settings, model: str) -> Judge:
    """Connect to (or start) the judge model.

    Raises:
        agent.llm.providers.ModelUnavailable: the judge model cannot be reached.
    """
    return Judge(open_model(judge_config(settings, model)))
