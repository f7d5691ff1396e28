"""Build a ready pydantic-ai model for the configured provider, and check that it can be reached.

Every provider ends up as pydantic-ai's `OpenAIChatModel` speaking the OpenAI chat-completions protocol:
the embedded llama.cpp server, Ollama's `/v1`, any OpenAI-compatible server, and LiteLLM, which runs in-process
behind a small HTTP transport (see `LiteLLMTransport`). Only how we connect differs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import httpx2
import ollama
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.litellm import LiteLLMProvider
from pydantic_ai.providers.ollama import OllamaProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from agent.llm.config import DEFAULT_OLLAMA_URL, LLMConfig
from agent.llm.embedded import EmbeddedModelError, EmbeddedServer, check_gguf, default_gguf_path
from agent.llm.http import loop_safe_client

logger = logging.getLogger(__name__)

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
# Startup checks only list models: they should fail fast even when request timeouts are generous.
_CHECK_TIMEOUT_CAP_S = 10.0
# The OpenAI SDK needs a URL; LiteLLMTransport answers every request to it in-process. `.invalid` never resolves,
# so a request that somehow bypassed the transport could not reach anyone.
_LITELLM_BRIDGE_URL = "http://litellm-in-process.invalid/v1"


class ModelUnavailable(RuntimeError):
    """The configured model cannot be used; the message says what is down or missing and how to fix it."""


@dataclass
class ModelRuntime:
    """A model ready for `Agent(model, output_type=NativeOutput(...))`, and what must be cleaned up after it.

    Attributes:
        model: the pydantic-ai model.
        name: provider and model, e.g. `embedded:SmolLM2-135M-Instruct.Q4_1` or `ollama:qwen2.5:7b`.
        config: the configuration it was built from.
    """

    model: Model
    name: str
    config: LLMConfig
    _server: EmbeddedServer | None = field(default=None, repr=False)

    @property
    def has_server(self) -> bool:
        """True while this runtime runs an embedded llama.cpp server."""
        return self._server is not None

    def close(self) -> None:
        """Stop the embedded server if this runtime started one. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> ModelRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_model(config: LLMConfig) -> ModelRuntime:
    """Connect to (or, for `embedded`, start) the configured model.

    Raises:
        ModelUnavailable: the model cannot be reached, is not installed or not pulled.
    """
    if config.provider == "embedded":
        return _open_embedded(config)
    if config.provider == "ollama":
        return _open_ollama(config)
    if config.provider == "openai":
        return _open_openai(config)
    return _open_litellm(config)


def check_model(config: LLMConfig) -> None:
    """A startup check that starts nothing heavy: is the model there, is its server up?

    Raises:
        ModelUnavailable: with what is wrong and how to fix it.
    """
    if config.provider == "embedded":
        _check_embedded(config)
    elif config.provider == "ollama":
        _check_ollama(config)
    elif config.provider == "openai":
        _check_openai_compatible(config.base_url or OPENAI_DEFAULT_URL, _secret(config), _check_timeout(config))
    else:
        _check_litellm(config)


def model_settings(config: LLMConfig) -> ModelSettings:
    """The per-request settings every provider gets.

    The embedded llama.cpp server also gets a repeat penalty: tiny models otherwise loop on one
    phrase until they hit the length bound of every field.
    """
    settings = ModelSettings(
        max_tokens=config.max_output_tokens,
        temperature=config.temperature,
        timeout=config.timeout_s,
    )
    if config.provider == "embedded":
        settings["extra_body"] = {"repeat_penalty": 1.1, "repeat_last_n": 128}
    return settings


# --- embedded -------------------------------------------------------------------------------------------------


def _gguf_path(config: LLMConfig) -> Path:
    try:
        return config.gguf_path or default_gguf_path()
    except EmbeddedModelError as exc:
        raise ModelUnavailable(str(exc)) from exc


def _check_embedded(config: LLMConfig) -> None:
    path = _gguf_path(config)
    try:
        check_gguf(path)
    except EmbeddedModelError as exc:
        raise ModelUnavailable(f"{exc} Set ERRLEARN_LLM_GGUF_PATH to a GGUF model file.") from exc
    from importlib.util import find_spec

    if find_spec("xllamacpp") is None:
        raise ModelUnavailable("the embedded model needs the `xllamacpp` package: `pip install xllamacpp`")


def _open_embedded(config: LLMConfig) -> ModelRuntime:
    _check_embedded(config)
    server = EmbeddedServer(
        _gguf_path(config), ctx=config.context_tokens, threads=config.threads, prompt_cache_mb=config.prompt_cache_mb
    )
    try:
        server.start()
    except EmbeddedModelError as exc:
        raise ModelUnavailable(str(exc)) from exc
    try:
        provider = OpenAIProvider(
            base_url=server.base_url, api_key=server.api_key, http_client=loop_safe_client(config.timeout_s)
        )
        model = OpenAIChatModel(server.model_name, provider=provider, settings=model_settings(config))
    except BaseException:
        server.stop()
        raise
    return ModelRuntime(model=model, name=f"embedded:{server.model_name}", config=config, _server=server)


# --- Ollama ---------------------------------------------------------------------------------------------------


def ollama_root_url(base_url: str | None) -> str:
    """Ollama's native root (for `/api/*`), accepting a configured URL with or without `/v1`."""
    url = (base_url or DEFAULT_OLLAMA_URL).rstrip("/")
    return url.removesuffix("/v1")


def _check_ollama(config: LLMConfig) -> None:
    root = ollama_root_url(config.base_url)
    model = config.resolved_model or ""
    headers = {"Authorization": f"Bearer {_secret(config)}"} if config.api_key else None
    client = ollama.Client(host=root, timeout=_check_timeout(config), headers=headers)
    try:
        try:
            pulled = [entry.model or "" for entry in client.list().models]
        except ollama.ResponseError as exc:
            raise ModelUnavailable(
                f"{root} answered GET /api/tags with HTTP {exc.status_code} ({exc.error}); is it an Ollama server? "
                "Set ERRLEARN_LLM_BASE_URL to Ollama's address."
            ) from exc
        try:
            shown = client.show(model)
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                have = ", ".join(name for name in pulled if name) or "none"
                raise ModelUnavailable(
                    f"Ollama at {root} does not have the model {model!r}. Pull it with `ollama pull {model}` "
                    f"(models pulled there: {have})."
                ) from exc
            raise ModelUnavailable(
                f"Ollama at {root} could not describe {model!r}: HTTP {exc.status_code} ({exc.error})"
            ) from exc
    # The client turns a refused connection into ConnectionError but lets timeouts and other
    # transport failures through as raw httpx errors.
    except (ConnectionError, httpx.HTTPError) as exc:
        raise ModelUnavailable(
            f"Ollama is not reachable at {root} ({_describe(exc)}). Start it (`ollama serve`), fix "
            "ERRLEARN_LLM_BASE_URL, or use ERRLEARN_LLM=embedded."
        ) from exc
    finally:
        client.close()  # type: ignore[no-untyped-call]  # ollama's close() lacks annotations
    capabilities = shown.capabilities
    # Older Ollama versions do not report capabilities; only refuse when they say the model cannot chat.
    if capabilities is not None and "completion" not in capabilities:
        raise ModelUnavailable(
            f"{model!r} on Ollama at {root} cannot generate text (capabilities: {', '.join(capabilities)}); "
            "choose a chat model such as qwen2.5:7b."
        )


def _open_ollama(config: LLMConfig) -> ModelRuntime:
    _check_ollama(config)
    model_name = config.resolved_model or ""
    provider = OllamaProvider(
        base_url=f"{ollama_root_url(config.base_url)}/v1",
        api_key=_secret(config),
        http_client=loop_safe_client(config.timeout_s),
    )
    model = OpenAIChatModel(model_name, provider=provider, settings=model_settings(config))
    return ModelRuntime(model=model, name=f"ollama:{model_name}", config=config)


# --- OpenAI-compatible servers --------------------------------------------------------------------------------


def _check_openai_compatible(base_url: str, api_key: str | None, timeout_s: float) -> None:
    url = f"{base_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ModelUnavailable(
            f"the OpenAI-compatible server at {base_url} is not reachable ({_describe(exc)}); "
            "start it or fix ERRLEARN_LLM_BASE_URL."
        ) from exc
    if response.status_code in (401, 403):
        raise ModelUnavailable(
            f"the server at {base_url} refused the API key (HTTP {response.status_code}); set ERRLEARN_LLM_API_KEY."
        )
    if response.status_code >= 400:
        raise ModelUnavailable(f"GET {url} answered HTTP {response.status_code}: {response.text[:200]}")
    # Membership is not checked: several servers (llama.cpp, some proxies) accept names they do not list.


def _open_openai(config: LLMConfig) -> ModelRuntime:
    model_name = config.model or ""
    try:
        provider = OpenAIProvider(
            base_url=config.base_url, api_key=_secret(config), http_client=loop_safe_client(config.timeout_s)
        )
    except UserError as exc:
        raise ModelUnavailable(f"{exc} (or ERRLEARN_LLM_API_KEY)") from exc
    model = OpenAIChatModel(model_name, provider=provider, settings=model_settings(config))
    return ModelRuntime(model=model, name=f"openai:{model_name}", config=config)


# --- LiteLLM --------------------------------------------------------------------------------------------------


def import_litellm() -> ModuleType:
    """Import litellm (slow, ~3 s) only when it is used, without letting it fetch its price map online."""
    if "litellm" not in sys.modules:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True  # otherwise every provider error also prints a help banner to stdout
    return litellm


def _check_litellm(config: LLMConfig) -> None:
    litellm = import_litellm()
    try:
        verdict = litellm.validate_environment(config.model, api_key=_secret(config), api_base=config.base_url)
    except Exception as exc:  # litellm raises assorted errors for names it cannot map to a provider
        raise ModelUnavailable(f"LiteLLM cannot use the model {config.model!r}: {exc}") from exc
    missing = verdict.get("missing_keys") or []
    if missing:
        raise ModelUnavailable(
            f"LiteLLM model {config.model!r} needs {', '.join(missing)} in the environment "
            "(or ERRLEARN_LLM_API_KEY / ERRLEARN_LLM_BASE_URL)."
        )


class LiteLLMTransport(httpx2.AsyncBaseTransport):
    """Answers the OpenAI SDK's chat-completion requests by calling `litellm.acompletion` in-process.

    pydantic-ai's `LiteLLMProvider` talks to a LiteLLM *proxy* over HTTP; there is no in-process LiteLLM model in
    pydantic-ai-slim 2.68. This transport lets the same `OpenAIChatModel` (and so `NativeOutput`) reach every
    provider LiteLLM knows, without running a proxy.
    """

    def __init__(self, *, api_key: str | None, api_base: str | None, timeout_s: float) -> None:
        self._api_key = api_key
        self._api_base = api_base
        self._timeout_s = timeout_s

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return _error_response(404, f"the LiteLLM bridge serves only POST /chat/completions, not {request.url}")
        body: dict[str, Any] = json.loads(await request.aread())
        if body.get("stream"):
            return _error_response(400, "streaming is not supported through the in-process LiteLLM bridge")
        litellm = import_litellm()
        extra: dict[str, Any] = {"timeout": self._timeout_s, "drop_params": True}
        if self._api_key:
            extra["api_key"] = self._api_key
        if self._api_base:
            extra["api_base"] = self._api_base
        try:
            result = await litellm.acompletion(**body, **extra)
        except litellm.Timeout as exc:
            raise httpx2.ReadTimeout(str(exc), request=request) from exc
        except litellm.APIConnectionError as exc:
            raise httpx2.ConnectError(str(exc), request=request) from exc
        except Exception as exc:  # litellm maps provider errors onto OpenAI's; keep their status code
            status = getattr(exc, "status_code", None)
            return _error_response(status if isinstance(status, int) and status >= 400 else 500, str(exc))
        return httpx2.Response(
            200, content=result.model_dump_json().encode(), headers={"content-type": "application/json"}
        )


def _error_response(status: int, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"error": {"message": message, "type": "litellm_bridge_error"}})


def _open_litellm(config: LLMConfig) -> ModelRuntime:
    import_litellm()
    model_name = config.model or ""
    transport = LiteLLMTransport(api_key=_secret(config), api_base=config.base_url, timeout_s=config.timeout_s)
    http_client = httpx2.AsyncClient(transport=transport, timeout=config.timeout_s)
    # The provider's own key is a placeholder: the real one goes to litellm through the transport.
    provider = LiteLLMProvider(api_key="in-process", api_base=_LITELLM_BRIDGE_URL, http_client=http_client)
    model = OpenAIChatModel(model_name, provider=provider, settings=model_settings(config))
    return ModelRuntime(model=model, name=f"litellm:{model_name}", config=config)


# --- helpers --------------------------------------------------------------------------------------------------


def _secret(config: LLMConfig) -> str | None:
    return config.api_key.get_secret_value() if config.api_key else None


def _check_timeout(config: LLMConfig) -> float:
    return min(config.timeout_s, _CHECK_TIMEOUT_CAP_S)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
