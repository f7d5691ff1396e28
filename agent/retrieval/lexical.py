"""An in-memory lexical index of patterns: BM25 over their terms and a frame-weighted trace similarity.

It is a cache, never the truth: `agent/retrieval/lexical_sync.py` fills it from the `lexical_docs`
table, so every process on one database ranks alike. Postings are kept per term as Python dicts
(cheap to update one document) and turned into numpy arrays on first use after a change (cheap to
score 100k documents).

BM25 is Okapi BM25 (k1 = 1.2, b = 0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5))), the textbook
parameters. The trace similarity is a cosine of frame vectors whose weights are the frame's base
weight (position and kind, `agent/retrieval/terms.py`) times its idf: a frame every trace shares
(a JUnit runner) adds almost nothing, a rare frame of the project near the top adds most.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from agent.retrieval.terms import FRAME_PREFIX, LexicalDoc

K1: Final = 1.2
B: Final = 0.75
DRIFT: Final = 0.01
"""Cached per-term scores are recomputed once the collection has grown or shrunk by 1 % since."""


@dataclass(frozen=True)
class FrameMatch:
    similarity: float
    """Cosine of the idf-weighted frame vectors, in [0, 1]."""
    shared: tuple[str, ...]
    """Shared frames of the project (not libraries or the harness), the ones that add most first."""


class LexicalIndex:
    """Documents by id; `bm25` ranks them for a query's terms, `frame_match` compares two traces."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._slot: dict[str, int] = {}
        self._lengths: list[float] = []
        self._terms: list[Counter[str]] = []
        self._frames: list[Mapping[str, float]] = []
        self._own: list[frozenset[str]] = []
        self._postings: dict[str, dict[int, int]] = {}
        self._arrays: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], int]] = {}
        self._length_array: npt.NDArray[np.float64] | None = None
        self._total_length = 0.0
        self._alive = 0
        self._lock = threading.RLock()
        self._idf_cache: dict[str, float] = {}
        """Frame idf, cleared on every change (a query compares its frames with up to 60 candidates)."""

    def __len__(self) -> int:
        return self._alive

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._slot

    def ids(self) -> set[str]:
        return set(self._slot)

    # -- writing ---------------------------------------------------------------------------------
    def put(self, doc_id: str, doc: LexicalDoc) -> None:
        """Add a document, or replace the one with this id."""
        with self._lock:
            self.remove(doc_id)
            counts = Counter(doc.terms)
            slot = len(self._ids)
            self._ids.append(doc_id)
            self._slot[doc_id] = slot
            self._lengths.append(float(sum(counts.values())))
            self._terms.append(counts)
            self._frames.append(dict(doc.frames))
            self._own.append(doc.own)
            for term, tf in counts.items():
                self._postings.setdefault(term, {})[slot] = tf
                self._arrays.pop(term, None)
            self._total_length += self._lengths[slot]
            self._alive += 1
            self._length_array = None
            self._idf_cache.clear()

    def remove(self, doc_id: str) -> None:
        with self._lock:
            slot = self._slot.pop(doc_id, None)
            if slot is None:
                return
            for term in self._terms[slot]:
                posting = self._postings.get(term)
                if posting is not None:
                    posting.pop(slot, None)
                    if not posting:
                        del self._postings[term]
                self._arrays.pop(term, None)
            self._total_length -= self._lengths[slot]
            self._lengths[slot] = 0.0
            self._terms[slot] = Counter()
            self._frames[slot] = {}
            self._own[slot] = frozenset()
            self._alive -= 1
            self._length_array = None
            self._idf_cache.clear()

    # -- reading ---------------------------------------------------------------------------------
    def idf(self, term: str) -> float:
        df = len(self._postings.get(term, ()))
        n = max(self._alive, 1)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def _frame_idf(self, name: str) -> float:
        cached = self._idf_cache.get(name)
        if cached is None:
            cached = self._idf_cache[name] = self.idf(FRAME_PREFIX + name)
        return cached

    def _contributions(self, term: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
        """(slots, BM25 contribution of the term to each), cached until the term's postings change or the
        collection's size drifts by more than `DRIFT` from when they were computed (idf and the average
        length move that little then)."""
        cached = self._arrays.get(term)
        if cached is not None and abs(cached[2] - self._alive) <= DRIFT * cached[2]:
            return cached[0], cached[1]
        posting = self._postings.get(term)
        if not posting:
            return None
        if self._length_array is None:
            self._length_array = np.asarray(self._lengths, dtype=np.float64)
        slots = np.fromiter(posting.keys(), dtype=np.int64, count=len(posting))
        tf = np.fromiter(posting.values(), dtype=np.float64, count=len(posting))
        average = self._total_length / max(self._alive, 1)
        norm = K1 * (1.0 - B + B * self._length_array[slots] / average)
        contribution = self.idf(term) * tf * (K1 + 1.0) / (tf + norm)
        self._arrays[term] = (slots, contribution, self._alive)
        return slots, contribution

    def bm25(self, terms: Sequence[str], k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The `k` best documents for the query terms (each distinct term once), best first; score > 0 only."""
        with self._lock:
            if not self._alive or k <= 0:
                return []
            scores = np.zeros(len(self._ids), dtype=np.float64)
            for term in dict.fromkeys(terms):
                found = self._contributions(term)
                if found is not None:
                    scores[found[0]] += found[1]
            for doc_id in exclude:
                if (slot := self._slot.get(doc_id)) is not None:
                    scores[slot] = 0.0
            want = min(k, int(np.count_nonzero(scores)))
            if want == 0:
                return []
            top = np.argpartition(-scores, want - 1)[:want]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(self._ids[int(i)], float(scores[int(i)])) for i in top]

    def frame_match(self, query: Mapping[str, float], doc_id: str, own: frozenset[str]) -> FrameMatch:
        """How alike the query's frames and the document's are.

        0 unless the two share a frame of the project's own code or tests (`own`: the query's): sharing
        only JDK and test-runner frames says nothing about the bug, however many there are.
        """
        with self._lock:
            slot = self._slot.get(doc_id)
            if slot is None or not query:
                return FrameMatch(0.0, ())
            frames = self._frames[slot]
            if not frames or not (own & self._own[slot]):
                return FrameMatch(0.0, ())
            idf = {name: self._frame_idf(name) for name in {*query, *frames}}
            q = {name: w * idf[name] for name, w in query.items()}
            d = {name: w * idf[name] for name, w in frames.items()}
            norm = math.sqrt(sum(v * v for v in q.values())) * math.sqrt(sum(v * v for v in d.values()))
            if norm == 0.0:
                return FrameMatch(0.0, ())
            shared = {name: q[name] * d[name] for name in q.keys() & d.keys()}
            telling = [name for name in shared if name in own and name in self._own[slot]]
            order = tuple(sorted(telling, key=lambda name: -shared[name]))
            return FrameMatch(min(1.0, sum(shared.values()) / norm), order)

    def shared_terms(self, terms: Sequence[str], doc_id: str, limit: int = 5) -> tuple[str, ...]:
        """The rarest query terms (words and error type, not frames) that the document has too."""
        with self._lock:
            slot = self._slot.get(doc_id)
            if slot is None:
                return ()
            have = self._terms[slot]
            common = {t for t in terms if t in have and not t.startswith(FRAME_PREFIX)}
            return tuple(sorted(common, key=lambda t: (-self.idf(t), t))[:limit])
