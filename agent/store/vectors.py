"""The vector store: Chroma collections of error patterns and knowledge entries.

The only module that imports chromadb. Two things matter beyond plain CRUD:

- Every collection is created *and reopened* with our embedder wrapped as a Chroma embedding function.
  Chroma's default one downloads an ONNX model on first use, which fails offline, so it must never be
  reached, not even by a reopened collection.
- Each collection records which embedder filled it. Vectors of two embedders are not comparable, so
  opening a collection with another embedder raises `EmbedderMismatch` instead of returning nonsense.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.config import Settings
from chromadb.errors import InternalError, NotFoundError
from chromadb.utils.embedding_functions import register_embedding_function

from agent.retrieval.embedders import Embedder, EmbedderUnavailable

log = logging.getLogger(__name__)

CollectionName = Literal["patterns", "knowledge"]
COLLECTIONS: Final[tuple[CollectionName, ...]] = ("patterns", "knowledge")
MAX_BATCH: Final = 5000
"""Chroma refuses batches above ~5,400 records; stay below."""

_EF_NAME: Final = "errlearn"
_META_EMBEDDER: Final = "errlearn_embedder"
_META_DIMENSION: Final = "errlearn_dimension"

MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    """Cosine similarity in [-1, 1]; higher is closer."""
    document: str
    metadata: dict[str, Any]


class EmbedderMismatch(RuntimeError):
    """A collection was filled by another embedder than the one it is opened with."""


class VectorStoreUnavailable(RuntimeError):
    """The Chroma server cannot be reached. The message names the URL."""


@register_embedding_function
class ErrlearnEmbeddingFunction(EmbeddingFunction[Documents]):
    """Our `Embedder` as a Chroma embedding function.

    Registered under the name ``errlearn`` so that Chroma, when it rebuilds a collection's configuration
    in a process that did not pass one, finds this class (an unbound instance that refuses to embed)
    rather than failing over to its downloading default.
    """

    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:
        if self._embedder is None:
            raise EmbedderUnavailable(
                "this Chroma collection belongs to errlearn: open it through agent.store.vectors.VectorStore "
                "with an embedder, never with Chroma's default embedding function"
            )
        return cast(Embeddings, self._embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return _EF_NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        if self._embedder is None:
            return {}
        return {"embedder": self._embedder.name, "dimension": self._embedder.dimension}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ErrlearnEmbeddingFunction:
        return ErrlearnEmbeddingFunction(None)

    def is_legacy(self) -> bool:
        return False


def _scalar(value: Any) -> MetadataValue | None:
    """A Chroma-legal metadata value, or None to drop the key."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        # Epoch seconds so that `where` can compare times ($gt/$lt work on numbers only).
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp())
    if isinstance(value, dt.date):
        return value.isoformat()
    return json.dumps(value, default=str, sort_keys=True)


def sanitise_metadata(metadata: Mapping[str, Any] | None) -> dict[str, MetadataValue]:
    """Keep str/int/float/bool values; datetimes -> epoch seconds; enums -> value; others -> JSON text.

    None and non-finite floats are dropped (Chroma rejects None in stored metadata).
    """
    clean: dict[str, MetadataValue] = {}
    for key, value in (metadata or {}).items():
        scalar = _scalar(value)
        if scalar is not None:
            clean[str(key)] = scalar
    return clean


def _normalise_where(where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Accept ``{"service": "a", "resolved": False}``: Chroma wants several conditions wrapped in ``$and``."""
    if not where:
        return None
    fields = {k: v for k, v in where.items() if not k.startswith("$")}
    if len(where) <= 1 or len(fields) != len(where):
        return dict(where)
    return {"$and": [{k: v} for k, v in fields.items()]}


def _client_for_url(url: str, settings: Settings) -> ClientAPI:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Chroma URL must look like http://127.0.0.1:8000, got {url!r}")
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)
    try:
        return chromadb.HttpClient(host=parts.hostname, port=port, ssl=ssl, settings=settings)
    except Exception as exc:  # chromadb raises plain ValueError/httpx errors when the server is down
        raise VectorStoreUnavailable(
            f"cannot reach the Chroma server at {url} ({exc}); start it with "
            f"`chroma run --path <dir> --host {parts.hostname} --port {port}`, or use the embedded store"
        ) from exc


class VectorStore:
    """Patterns and knowledge entries in Chroma, embedded by one `Embedder`."""

    def __init__(self, client: ClientAPI, embedder: Embedder) -> None:
        self._client = client
        self._embedder = embedder
        # Chroma types its parameter as EmbeddingFunction[Embeddable] (texts or images); ours takes texts only.
        self._function = cast("EmbeddingFunction[Embeddable]", ErrlearnEmbeddingFunction(embedder))
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()
        self._query_cache: dict[str, list[float]] = {}

    @classmethod
    def open(cls, embedder: Embedder, *, path: Path | None = None, url: str | None = None) -> VectorStore:
        """Open the embedded store under `path`, or a Chroma server at `url` (e.g. ``http://127.0.0.1:8000``).

        Collections are opened lazily, on first use, so that `reset` can still rebuild a collection
        that another embedder filled (that is what `errlearn reindex` does).
        """
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path (embedded Chroma) or url (Chroma server)")
        settings = Settings(anonymized_telemetry=False)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=settings)
        else:
            client = _client_for_url(cast(str, url), settings)
        return cls(client, embedder)

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _create(self, name: CollectionName) -> Collection:
        return self._client.get_or_create_collection(
            name=name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={_META_EMBEDDER: self._embedder.name, _META_DIMENSION: self._embedder.dimension},
            embedding_function=self._function,
        )

    def _collection(self, name: CollectionName) -> Collection:
        if name not in COLLECTIONS:
            raise ValueError(f"unknown collection {name!r}; expected one of {COLLECTIONS}")
        with self._lock:
            if name in self._collections:
                return self._collections[name]
            try:
                collection = self._client.get_collection(name=name, embedding_function=self._function)
            except NotFoundError:
                collection = self._create(name)
            except ValueError as exc:
                # Chroma compares the persisted embedding-function name with ours and refuses another one.
                raise EmbedderMismatch(
                    f"collection {name!r} was built with another embedding function ({exc}); "
                    f"run `errlearn reindex` to rebuild it with {self._embedder.name}"
                ) from exc
            self._check_embedder(name, collection)
            self._collections[name] = collection
            return collection

    def _check_embedder(self, name: str, collection: Collection) -> None:
        metadata = collection.metadata or {}
        stored = metadata.get(_META_EMBEDDER)
        dimension = metadata.get(_META_DIMENSION)
        if stored != self._embedder.name or dimension != self._embedder.dimension:
            raise EmbedderMismatch(
                f"collection {name!r} holds vectors of embedder {stored!r} (dimension {dimension}), "
                f"but it was opened with {self._embedder.name!r} (dimension {self._embedder.dimension}); "
                "run `errlearn reindex` to rebuild it with the new embedder, or configure the old one again"
            )

    def upsert(
        self,
        collection: CollectionName,
        ids: Sequence[str],
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """Insert or replace records, embedding `documents`. Metadata is sanitised (see `sanitise_metadata`).

        A key whose value is None is dropped, so on replace the record keeps its previous value for it.
        """
        if not len(ids) == len(documents) == len(metadatas):
            raise ValueError(
                f"ids, documents and metadatas differ in length: {len(ids)}, {len(documents)}, {len(metadatas)}"
            )
        # Chroma rejects a batch that repeats an id; the last record of an id wins, as upsert semantics say.
        latest: dict[str, int] = {record_id: i for i, record_id in enumerate(ids)}
        order = sorted(latest.values())
        target = self._collection(collection)
        for start in range(0, len(order), MAX_BATCH):
            chunk = order[start : start + MAX_BATCH]
            target.upsert(
                ids=[ids[i] for i in chunk],
                documents=[documents[i] for i in chunk],
                # An empty dict is refused by Chroma; None means "no metadata".
                metadatas=[sanitise_metadata(metadatas[i]) or None for i in chunk],  # type: ignore[misc]
            )

    def query(
        self,
        collection: CollectionName,
        text: str,
        *,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        """The `k` records closest to `text`, best first, optionally filtered by metadata.

        Args:
            where: Chroma metadata filter, e.g. ``{"service": "billing", "last_seen": {"$gte": 1700000000}}``;
                several plain fields are combined with ``$and``.
            exclude_ids: Records never returned (e.g. the pattern that the query text came from).
        """
        if k <= 0:
            return []
        target = self._collection(collection)
        excluded = set(exclude_ids)
        # Fetch extra results to make up for the excluded ids (Chroma has no "id not in" filter). Chroma
        # returns fewer when the collection (or the filtered part of it) is smaller, and [] when empty.
        try:
            result = target.query(
                query_embeddings=[self._query_vector(text)],  # type: ignore[arg-type]  # a list of floats is a Sequence[float]
                n_results=k + len(excluded),
                where=_normalise_where(where),
                include=["documents", "metadatas", "distances"],
            )
        except InternalError as exc:
            if where is None:
                raise
            # Chroma's filtered HNSW search fails with "Error finding id" while its metadata and vector
            # segments disagree (chroma-core/chroma#7032, e.g. another process just wrote). The filter alone
            # still works: rank what it selects exactly, by the same cosine similarity.
            log.warning(
                "filtered vector query on %s failed (%s); ranking the filtered records directly", collection, exc
            )
            chosen = target.get(where=_normalise_where(where), include=[])["ids"]
            scored = self.score_ids(collection, text, [i for i in chosen if i not in excluded])
            return sorted(scored, key=lambda hit: -hit.score)[:k]
        ids = result["ids"][0]
        documents = (result.get("documents") or [[]])[0]
        metadatas = (result.get("metadatas") or [[]])[0]
        distances = (result.get("distances") or [[]])[0]
        hits: list[Hit] = []
        for i, record_id in enumerate(ids):
            if record_id in excluded:
                continue
            # Chroma's cosine distance is 1 - cosine similarity.
            score = max(-1.0, min(1.0, 1.0 - float(distances[i])))
            hits.append(
                Hit(
                    id=record_id,
                    score=score,
                    document=documents[i] or "",
                    metadata=dict(metadatas[i] or {}),
                )
            )
            if len(hits) == k:
                break
        return hits

    def _query_vector(self, text: str) -> list[float]:
        """The query's embedding; the last few are kept, since a hybrid search asks twice for one text."""
        with self._lock:
            cached = self._query_cache.get(text)
        if cached is None:
            (cached,) = self._embedder.embed([text])
            with self._lock:
                if len(self._query_cache) >= 64:
                    self._query_cache.pop(next(iter(self._query_cache)))
                self._query_cache[text] = cached
        return cached

    def score_ids(self, collection: CollectionName, text: str, ids: Sequence[str]) -> list[Hit]:
        """The records with these ids (those that exist), each scored by cosine similarity to `text`."""
        if not ids:
            return []
        target = self._collection(collection)
        result = target.get(ids=list(ids), include=["documents", "metadatas", "embeddings"])
        found = result["ids"]
        if not found:
            return []
        query = np.asarray(self._query_vector(text), dtype=np.float32)
        vectors = np.asarray(result["embeddings"], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
        scores = (vectors @ query) / np.maximum(norms, 1e-12)
        documents = result.get("documents") or [""] * len(found)
        metadatas = result.get("metadatas") or [{}] * len(found)
        return [
            Hit(
                id=record_id,
                score=max(-1.0, min(1.0, float(scores[i]))),
                document=documents[i] or "",
                metadata=dict(metadatas[i] or {}),
            )
            for i, record_id in enumerate(found)
        ]

    def delete(self, collection: CollectionName, ids: Sequence[str]) -> None:
        if ids:  # an empty id list must not be read as "no filter"
            target = self._collection(collection)
            for start in range(0, len(ids), MAX_BATCH):
                target.delete(ids=list(ids[start : start + MAX_BATCH]))

    def count(self, collection: CollectionName) -> int:
        return self._collection(collection).count()

    def reset(self, collection: CollectionName) -> None:
        """Drop the collection and create it empty for the current embedder (used by `errlearn reindex`)."""
        if collection not in COLLECTIONS:
            raise ValueError(f"unknown collection {collection!r}; expected one of {COLLECTIONS}")
        with self._lock:
            self._collections.pop(collection, None)
            with contextlib.suppress(NotFoundError):  # nothing to drop yet
                self._client.delete_collection(name=collection)
            self._collections[collection] = self._create(collection)
