"""Hybrid ranking of patterns: vector search, BM25 and the trace similarity, fused by reciprocal rank.

Each of the three lists ranks the candidates (the union of the vector and BM25 top `CANDIDATES`);
a candidate's fused score is the sum of 1 / (`RRF_K` + rank) over the lists it is in (Cormack et al.
2009, k = 60: the published constant, not tuned here). Nothing is learnt and nothing is set per data set.
Every result keeps why it matched: its vector score, BM25 score, trace similarity, the shared
frames and the rare shared words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from agent.retrieval.lexical import LexicalIndex

RRF_K: Final = 60
CANDIDATES: Final = 30
"""Candidates taken from each of the vector and BM25 lists."""


@dataclass(frozen=True)
class Why:
    """Why a result matched the query."""

    fused: float
    """Reciprocal-rank fusion score (higher is better); results are ordered by it."""
    vector_score: float | None
    """Cosine similarity of the embeddings (None when the vector store has no vector for it)."""
    vector_rank: int | None
    bm25: float
    bm25_rank: int | None
    frame_similarity: float
    frame_rank: int | None
    shared_frames: tuple[str, ...] = ()
    """Frames both traces have, the ones that count most (rare, near the top) first."""
    shared_terms: tuple[str, ...] = ()
    """The rarest words both have."""

    def summary(self) -> str:
        parts: list[str] = []
        if self.shared_frames:
            parts.append("shared frames: " + ", ".join(self.shared_frames[:3]))
        if self.shared_terms:
            parts.append("shared rare words: " + ", ".join(t.removeprefix("t:") for t in self.shared_terms[:5]))
        if self.vector_score is not None:
            parts.append(f"vector {self.vector_score:.2f}")
        return "; ".join(parts) or "no shared frames or words"


@dataclass(frozen=True)
class Ranked:
    id: str
    why: Why


@dataclass
class Lists:
    """The three rankings of one query, before fusion."""

    vector: Sequence[tuple[str, float]]
    """(id, cosine) best first."""
    bm25: Sequence[tuple[str, float]]


def fuse(
    lists: Lists,
    index: LexicalIndex,
    *,
    terms: Sequence[str],
    frames: Mapping[str, float],
    own: frozenset[str] = frozenset(),
    k: int,
) -> list[Ranked]:
    """The `k` best candidates by reciprocal-rank fusion, with their explanations."""
    vector_rank = {doc_id: r for r, (doc_id, _) in enumerate(lists.vector, start=1)}
    vector_score = dict(lists.vector)
    bm25_rank = {doc_id: r for r, (doc_id, _) in enumerate(lists.bm25, start=1)}
    bm25_score = dict(lists.bm25)
    candidates = list(dict.fromkeys([*vector_rank, *bm25_rank]))
    matches = {doc_id: index.frame_match(frames, doc_id, own) for doc_id in candidates}
    by_frames = sorted((d for d in candidates if matches[d].similarity > 0), key=lambda d: -matches[d].similarity)
    frame_rank = {doc_id: r for r, doc_id in enumerate(by_frames, start=1)}

    def rrf(doc_id: str) -> float:
        return sum(1.0 / (RRF_K + ranks[doc_id]) for ranks in (vector_rank, bm25_rank, frame_rank) if doc_id in ranks)

    fused = {doc_id: rrf(doc_id) for doc_id in candidates}
    order = sorted(candidates, key=lambda d: (-fused[d], d))[:k]
    return [
        Ranked(
            doc_id,
            Why(
                fused=round(fused[doc_id], 6),
                vector_score=vector_score.get(doc_id),
                vector_rank=vector_rank.get(doc_id),
                bm25=round(bm25_score.get(doc_id, 0.0), 4),
                bm25_rank=bm25_rank.get(doc_id),
                frame_similarity=round(matches[doc_id].similarity, 4),
                frame_rank=frame_rank.get(doc_id),
                shared_frames=matches[doc_id].shared[:5],
                shared_terms=index.shared_terms(terms, doc_id),
            ),
        )
        for doc_id in order
    ]
