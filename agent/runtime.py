"""Everything one process runs, opened lazily: the core, retrieval (embedder + Chroma), the model.

Heavy parts load on first use, off the request path, so `/health` answers within a second of
start and ingest never waits for an embedder or a model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.llm.config import LLMConfig
from agent.service import Clock, Core, utcnow
from agent.settings import Settings

if TYPE_CHECKING:  # pydantic-ai, openai and chromadb load on first use, off the API's start path
    from agent.llm.providers import ModelRuntime
    from agent.retrieval.service import Retrieval

log = logging.getLogger(__name__)
_LEFT_FOR_EXIT: list[ModelRuntime] = []


def llm_config(settings: Settings) -> LLMConfig:
    base = settings.llm_base_url
    if settings.llm == "ollama" and not base:
        base = settings.ollama_url
    return LLMConfig(
        provider=settings.llm,
        model=settings.llm_model,
        base_url=base,
        api_key=settings.llm_api_key,
        gguf_path=settings.llm_gguf_path,
        context_tokens=settings.llm_context_tokens,
        prompt_cache_mb=settings.llm_prompt_cache_mb,
        max_output_tokens=settings.llm_max_output_tokens,
        timeout_s=settings.llm_timeout_s,
        threads=settings.llm_threads,
        temperature=settings.llm_temperature,
    )


def open_model(config: LLMConfig) -> ModelRuntime:
    from agent.llm.providers import open_model as _open

    return _open(config)


def open_retrieval(settings: Settings, core: Core) -> Retrieval:
    from agent.retrieval.embedders import make_embedder
    from agent.retrieval.service import Retrieval
    from agent.store.vectors import VectorStore

    embedder = make_embedder(
        settings.embedder, ollama_url=settings.ollama_url, ollama_model=settings.ollama_embed_model
    )
    if settings.chroma_url:
        store = VectorStore.open(embedder, url=settings.chroma_url)
    else:
        store = VectorStore.open(embedder, path=settings.data_dir / "chroma")
    return Retrieval(core.engine, store)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        core: Core | None = None,
        retrieval_factory: Callable[[Settings, Core], Retrieval] | None = None,
        model_factory: Callable[[LLMConfig], ModelRuntime] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.core = core or Core(settings, clock=clock)
        self._retrieval_factory = retrieval_factory or open_retrieval
        self._model_factory = model_factory or open_model
        self._retrieval: Retrieval | None = None
        self._model: ModelRuntime | None = None
        self._lock = threading.RLock()

    def retrieval(self) -> Retrieval:
        with self._lock:
            if self._retrieval is None:
                self._retrieval = self._retrieval_factory(self.settings, self.core)
            return self._retrieval

    @property
    def retrieval_ready(self) -> bool:
        return self._retrieval is not None

    def model(self) -> ModelRuntime:
        with self._lock:
            if self._model is None:
                self._model = self._model_factory(llm_config(self.settings))
            return self._model

    @property
    def model_ready(self) -> bool:
        return self._model is not None

    def close(self, timeout: float | None = None) -> bool:
        """Commit and close the core (the writer flushes what it acknowledged), then stop the model.

        With a `timeout` (a bounded shutdown), an embedded llama.cpp server is not stopped here: it cannot be
        stopped mid-generation from Python (dropping it joins its HTTP loop, which waits for the generation,
        and a thread started to do so may never get to run), so it is left to the process exit, which ends it
        at once. Returns False then, so that the caller exits with `agent.shutdown.exit_now_if_unclean`.
        """
        self.core.close()
        model, self._model = self._model, None
        if model is None:
            return True
        if timeout is not None and model.has_server:
            log.info("leaving the embedded model server to the process exit")
            _LEFT_FOR_EXIT.append(model)  # dropping the last reference would run the blocking destructor
            return False
        try:
            model.close()
        except Exception:
            log.exception("closing the model failed")
        return True
