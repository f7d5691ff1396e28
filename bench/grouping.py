"""Grouping cost vs history (not a test): new-pattern batches against recurring-pattern batches, side by side.

For each count of stored templates (default 1k and 50k), one fresh `errlearn serve` (indexer off) is
preloaded with that many distinct patterns, then loaded with /errors/batch x100 in two interleaved
halves: ~3,000 error types (new patterns arriving) and one recurring error. The ratio new / recurring
is the figure: grouping cost that grows with history or with new patterns pulls it down.

Usage: .venv/bin/python bench/grouping.py [--stored 1000,50000] [--duration 8]
(also run by `bench/ingest.py --only grouping`). Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.ingest import EVENT, LUA_BATCH, errlearn_env, run_wrk, start, stop  # noqa: E402
from tests.support import INGEST_KEY, free_port  # noqa: E402


def preload(url: str, count: int) -> None:
    """`count` distinct patterns (distinct error types: types are never masked)."""
    headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for start_at in range(0, count, 500):
            errors = [
                {**EVENT, "error_type": f"Stored{i}Error", "stack_trace": None}
                for i in range(start_at, min(count, start_at + 500))
            ]
            client.post("/errors/batch", json={"errors": errors}).raise_for_status()


def bench_stored(stored: int, duration: int, connections: int, tmp: Path) -> dict[str, Any]:
    port = free_port()
    env = errlearn_env(tmp / f"stored-{stored}")
    server = start(
        [sys.executable, "-m", "agent.cli", "serve", "--port", str(port), "--no-worker"], env, port, "/health"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        preload(url, stored)
        scripts = {
            load: LUA_BATCH % {"key": INGEST_KEY, "event": json.dumps(EVENT), "varied": varied}
            for load, varied in (("new patterns", "true"), ("same pattern", "false"))
        }
        run_wrk(url, scripts["same pattern"], 2, connections)  # warm-up
        half = max(1, duration // 2)
        eps: dict[str, float] = {"new patterns": 0.0, "same pattern": 0.0}
        for _ in range(2):  # interleaved: noise on a shared machine hits both loads alike
            for load, script in scripts.items():
                eps[load] += run_wrk(url, script, half, connections)["rps"] * 100 / 2
    finally:
        stop(server)
    return {"events_per_s": eps, "ratio": eps["new patterns"] / eps["same pattern"]}


def bench_grouping(stored_counts: list[int], duration: int, connections: int, tmp: Path) -> dict[str, Any]:
    return {str(n): bench_stored(n, duration, connections, tmp) for n in stored_counts}


def report(results: dict[str, Any]) -> None:
    for stored, r in results.items():
        eps = r["events_per_s"]
        print(
            f"  grouping, {int(stored):6d} stored templates: new patterns {eps['new patterns']:7.0f} events/s; "
            f"recurring {eps['same pattern']:7.0f} events/s; ratio {r['ratio']:.2f}  (goal >= 0.80)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stored", type=lambda v: [int(x) for x in v.split(",")], default=[1000, 50_000])
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "grouping.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        results = bench_grouping(args.stored, args.duration, args.connections, Path(t))
    print("\nerrlearn grouping cost vs stored templates (one run, side by side)")
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"  results: {args.out}")


if __name__ == "__main__":
    main()
