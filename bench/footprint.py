"""Server memory (RSS) before and after learning + diagnosing with the embedded model (issue 15, item 11).

Starts `errlearn serve` (its API processes and worker, the embedded SmolLM2) on a fresh data dir, stores
events making `--patterns` distinct patterns, then triggers a learning run and queues diagnoses, and samples
the RSS of the whole process tree (every API process, the worker, llama.cpp threads live inside them) until
`--budget` seconds pass or the work is done. Reports RSS after start, after ingest and the peak/final after
learning, each process's share, and the ratio final/start. Goal: the tree stays <= 1 GB.

    .venv/bin/python bench/footprint.py [--patterns 1000] [--diagnose 40] [--budget 600] [--env KEY=VALUE ...]

With each sample it records where the largest process's memory is (`bench/smaps.py`: the GGUF mmap, libraries,
malloc heap and arenas, large anonymous buffers such as llama.cpp's KV and prompt caches) and its thread count.
`--env ERRLEARN_...=...` starts the server with other settings (e.g. to see what one bound is worth).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.smaps import breakdown, rollup, threads
from tests.support import ADMIN_KEY, INGEST_KEY, LiveServer

WORDS = [
    "Alpha", "Bravo", "Cobalt", "Delta", "Ember", "Falcon", "Garnet", "Harbor",
    "Indigo", "Jasper", "Kestrel", "Lumen", "Marble", "Nimbus", "Onyx", "Pylon",
    "Quartz", "Raven", "Sierra", "Tundra", "Umber", "Vortex", "Willow", "Xenon",
    "Yonder", "Zephyr", "Acorn", "Basalt", "Cedar", "Dune", "Echo", "Fjord",
]  # fmt: skip


def tree_rss_mb(pid: int) -> dict[int, float]:
    """RSS in MB of `pid` and all its descendants, from /proc."""
    out: dict[int, float] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        out[p] = rss_kb / 1024
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            todo.extend(int(c) for c in task.read_text().split())
    return out


def where(rss: dict[int, float]) -> dict[str, object]:
    """The breakdown of the largest process in the tree (the one holding the worker and the model)."""
    pid = max(rss, key=lambda p: rss[p])
    try:
        return {"groups_mb": breakdown(pid), "rollup_mb": rollup(pid), "threads": threads(pid)}
    except OSError:
        return {}


def events(n: int) -> list[dict[str, object]]:
    return [
        {
            "service": f"svc-{WORDS[i % 8].lower()}",
            "error_type": f"{WORDS[i % 32]}{WORDS[(i // 32) % 32]}Error",
            "error_message": f"{WORDS[(i * 7) % 32].lower()} failed while {WORDS[(i * 3) % 32].lower()} ran",
            "severity": "high",
        }
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patterns", type=int, default=1000)
    ap.add_argument("--diagnose", type=int, default=40)
    ap.add_argument("--budget", type=float, default=600.0, help="seconds of learning/diagnosing to watch")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server, e.g. ERRLEARN_LLM_...")
    ap.add_argument("--out", default="footprint.json", help="file name under bench/results/")
    args = ap.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    ingest = {"Authorization": f"Bearer {INGEST_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        server = LiveServer(data, env=env).start()
        assert server.proc is not None
        try:
            time.sleep(3)
            start = tree_rss_mb(server.proc.pid)
            start_where = where(start)
            batch = events(args.patterns)
            for i in range(0, len(batch), 500):
                r = httpx.post(server.url + "/errors/batch", json={"errors": batch[i : i + 500]}, headers=ingest)
                r.raise_for_status()
            time.sleep(5)
            after_ingest = tree_rss_mb(server.proc.pid)
            ingest_where = where(after_ingest)
            httpx.post(server.url + "/trigger-learning", headers=admin).raise_for_status()
            pats = httpx.get(server.url + "/patterns", params={"limit": args.diagnose}, headers=admin).json()
            ids = [p["id"] for p in (pats["data"] if isinstance(pats, dict) else pats)][: args.diagnose]
            for pid in ids:
                httpx.post(server.url + f"/patterns/{pid}/diagnose", headers=admin)
            peak = sum(after_ingest.values())
            peak_where = ingest_where
            deadline = time.monotonic() + args.budget
            diagnosed = 0
            while time.monotonic() < deadline:
                time.sleep(10)
                now = tree_rss_mb(server.proc.pid)
                if sum(now.values()) > peak:
                    peak, peak_where = sum(now.values()), where(now)
                diagnosed = sum(
                    httpx.get(server.url + f"/patterns/{pid}/diagnosis", headers=admin).status_code == 200
                    for pid in ids
                )
                if diagnosed == len(ids):
                    break
            final = tree_rss_mb(server.proc.pid)
            final_where = where(final)
        finally:
            server.stop()
    report = {
        "env": env,
        "patterns": args.patterns,
        "diagnoses_requested": len(ids),
        "diagnosed": diagnosed,
        "rss_mb_start": round(sum(start.values()), 1),
        "rss_mb_after_ingest": round(sum(after_ingest.values()), 1),
        "rss_mb_peak": round(peak, 1),
        "rss_mb_final": round(sum(final.values()), 1),
        "per_process_mb_final": sorted((round(v, 1) for v in final.values()), reverse=True),
        "ratio_final_to_start": round(sum(final.values()) / max(sum(start.values()), 1e-9), 2),
        "goal_mb": 1024,
        "within_goal": peak <= 1024,
        "where_start": start_where,
        "where_after_ingest": ingest_where,
        "where_peak": peak_where,
        "where_final": final_where,
    }
    out = Path(__file__).parent / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
