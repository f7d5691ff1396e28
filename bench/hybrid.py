"""Hybrid retrieval at scale, through errlearn's real pipeline: ingest, index, query (`bench/retrieval.py hybrid`).

One run, one fresh data dir (SQLite + embedded Chroma, the default layout):

1. ingest N synthetic error events with Python stack traces (each a new pattern: the indexer's worst
   case) through `POST /errors/batch`: ingest events/s;
2. index them the way the worker does (`Retrieval.index_pending`: vectors + lexical docs): patterns/s,
   and its ratio to the ingest rate (>= 1 means the indexer keeps up with a flood of new patterns);
3. query new occurrences of stored patterns (same innermost frame, other callers) with the hybrid
   search (`Retrieval.search` with the stack) and, side by side, the vector search alone
   (`VectorStore.query`): p50/p99 ms, their ratio, and how often the stored pattern is in the top 5.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from agent.retrieval.service import query_text
from agent.settings import get_settings
from bench.retrieval import SynthPattern, new_occurrence, percentile, print_table, synth_pattern
from evals.suites.pipeline import open_pipeline


def traceback_of(pattern: SynthPattern) -> str:
    """A Python traceback whose frames are the pattern's (innermost last, as Python prints them)."""
    lines = ["Traceback (most recent call last):"]
    for frame in reversed(pattern.frames):
        *path, function = frame.split(".")
        lines.append(f'  File "/srv/app/{"/".join(path)}.py", line {10 + len(function)}, in {function}')
        lines.append(f"    {function}(payload)")
    lines.append(f"{pattern.error_type}: {pattern.template}")
    return "\n".join(lines)


def body_of(pattern: SynthPattern) -> dict[str, Any]:
    return {
        "service": pattern.service,
        "error_type": pattern.error_type,
        "error_message": pattern.template,
        "severity": "high",
        "stack_trace": traceback_of(pattern),
    }


def run_hybrid(size: int, queries: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    patterns = [synth_pattern(rng) for _ in range(size)]
    with open_pipeline(get_settings()) as pipe:
        retrieval = pipe.retrieval()
        started = time.perf_counter()
        stored = pipe.ingest([body_of(p) for p in patterns])
        ingest_s = time.perf_counter() - started
        known = [s.pattern_id for s in stored]
        started = time.perf_counter()
        indexed = 0
        while n := retrieval.index_pending(512):
            indexed += n
        index_s = time.perf_counter() - started

        probes = [rng.randrange(size) for _ in range(queries)]
        asked = [body_of(new_occurrence(rng, patterns[i])) for i in probes]
        texts = [
            query_text(
                service=b["service"],
                error_type=b["error_type"],
                message=b["error_message"],
                stack_trace=b["stack_trace"],
            )
            for b in asked
        ]
        retrieval.search(texts[0], k=5, knowledge_k=0, stack_trace=asked[0]["stack_trace"])  # warm-up
        hybrid_ms: list[float] = []
        vector_ms: list[float] = []
        hybrid_hit = vector_hit = 0
        for probe, body, text in zip(probes, asked, texts, strict=True):
            t0 = time.perf_counter()
            hits = retrieval.search(text, k=5, knowledge_k=0, stack_trace=body["stack_trace"])
            t1 = time.perf_counter()
            plain = retrieval.store.query("patterns", text + " ", k=5)  # another text: no cached embedding
            t2 = time.perf_counter()
            hybrid_ms.append((t1 - t0) * 1e3)
            vector_ms.append((t2 - t1) * 1e3)
            hybrid_hit += known[probe] in {h.id for h in hits}
            vector_hit += known[probe] in {h.id for h in plain}
    return {
        "size": size,
        "ingest_per_s": size / ingest_s,
        "index_per_s": indexed / index_s,
        "index_to_ingest": (indexed / index_s) / (size / ingest_s),
        "hybrid_p50_ms": percentile(hybrid_ms, 50),
        "hybrid_p99_ms": percentile(hybrid_ms, 99),
        "vector_p50_ms": percentile(vector_ms, 50),
        "vector_p99_ms": percentile(vector_ms, 99),
        "hybrid_to_vector_p50": percentile(hybrid_ms, 50) / max(percentile(vector_ms, 50), 1e-9),
        "hybrid_known_at5": hybrid_hit / queries,
        "vector_known_at5": vector_hit / queries,
    }


def report(rows: Sequence[dict[str, float]]) -> None:
    print_table(
        [
            "patterns",
            "ingest ev/s",
            "index pat/s",
            "index/ingest",
            "hybrid p50 ms",
            "hybrid p99 ms",
            "vector p50 ms",
            "vector p99 ms",
            "hybrid/vector p50",
            "hybrid known@5",
            "vector known@5",
        ],
        [
            [
                int(r["size"]),
                f"{r['ingest_per_s']:,.0f}",
                f"{r['index_per_s']:,.0f}",
                f"{r['index_to_ingest']:.2f}",
                f"{r['hybrid_p50_ms']:.1f}",
                f"{r['hybrid_p99_ms']:.1f}",
                f"{r['vector_p50_ms']:.1f}",
                f"{r['vector_p99_ms']:.1f}",
                f"{r['hybrid_to_vector_p50']:.2f}",
                f"{r['hybrid_known_at5']:.3f}",
                f"{r['vector_known_at5']:.3f}",
            ]
            for r in rows
        ],
    )
