"""Burst benchmark of the Redis Streams ingest buffer (not a test), side by side in one run, as ratios.

The same `/errors/batch` burst (wrk, 100-event batches, one recurring pattern, scrubbing and grouping on) is
sent to `errlearn serve` in three set-ups, interleaved over --rounds rounds:

  off      no buffer: each request is answered after its group commit;
  api      the buffer on, the API process's own consumer thread stores from the stream;
  worker   the buffer on, the API only adds (ERRLEARN_INGEST_BUFFER_CONSUME=false), `errlearn worker` stores.

For each: events acknowledged per second during the burst, the p99 answer time, how long the stream
took to drain after the burst, and events stored per second over burst + drain. Redis is a private
`redis-server` with `appendonly yes` + `appendfsync always` (what the buffer's durability check asks).

Then --crash-rounds rounds of the SIGKILL test with the buffer on (`tests.redis_support.buffered_crash_once`:
SIGKILL `serve` under load, start another on the same database, wait for the stream to drain): every
acknowledged event must be stored, none twice.

Usage: .venv/bin/python bench/stream_buffer.py [--duration 10] [--rounds 2] [--crash-rounds 20]
       [--database-url postgresql+psycopg://...]
Needs `wrk` and `redis-server` (Debian: apt-get install wrk redis-server).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess  # noqa: TID251 - the benchmark runs servers, Redis and wrk
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.ingest import EVENT, LUA_BATCH, errlearn_env, reset_postgres, run_wrk, start, stop  # noqa: E402
from tests.redis_support import RedisServer, buffered_crash_once  # noqa: E402
from tests.support import INGEST_KEY, free_port  # noqa: E402

MODES = ("off", "api", "worker")
HEADERS = {"Authorization": f"Bearer {INGEST_KEY}"}


def _stored(url: str) -> int:
    return int(httpx.get(url + "/status", headers=HEADERS, timeout=30).json()["events"])


def one(args: argparse.Namespace, tmp: Path, mode: str, redis_url: str, n: int) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = errlearn_env(tmp / f"{mode}-{n}", ERRLEARN_WORKER_POLL_S="0.5")
    if args.database_url:
        reset_postgres(args.database_url)
        env["ERRLEARN_DATABASE_URL"] = args.database_url
    if mode != "off":
        env.update(
            ERRLEARN_INGEST_BUFFER_URL=redis_url,
            ERRLEARN_INGEST_BUFFER_STREAM=f"bench:{mode}:{n}",
            ERRLEARN_INGEST_BUFFER_MAX_ENTRIES=str(args.max_entries),
            ERRLEARN_INGEST_BUFFER_CONSUME="true" if mode == "api" else "false",
        )
    server = start(
        [sys.executable, "-m", "agent.cli", "serve", "--port", str(port), "--no-worker"], env, port, "/health"
    )
    side = None
    if mode == "worker":
        side = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "worker"],
            env={**env, "ERRLEARN_INGEST_BUFFER_CONSUME": "true"},  # the same database as the API
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    script = LUA_BATCH % {"key": INGEST_KEY, "event": json.dumps(EVENT), "varied": "false"}
    try:
        run_wrk(url, script, 2, args.connections)  # warm-up
        _drain(url, mode)
        before = _stored(url)
        started = time.monotonic()
        r = run_wrk(url, script, args.duration, args.connections)
        burst_s = time.monotonic() - started
        drain_s = _drain(url, mode)
        stored = _stored(url) - before
    finally:
        if side is not None:
            stop(side)
        stop(server)
    acked_requests = r["rps"] * args.duration - r["non_2xx"]
    return {
        "acked_events_per_s": acked_requests * 100 / args.duration,
        "refused_503": r["non_2xx"],
        "p99_ms": r["p99_ms"],
        "drain_s": drain_s,
        "stored_events_per_s": stored / (burst_s + drain_s),
    }


def _drain(url: str, mode: str, timeout: float = 600) -> float:
    """Seconds until the stream holds nothing not yet stored (0 without the buffer)."""
    if mode == "off":
        return 0.0
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        st = httpx.get(url + "/status", headers=HEADERS, timeout=30).json()["ingest_buffer"]
        if st.get("length") == 0 and st.get("pending") == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"the stream did not drain within {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-entries", type=int, default=1_000_000, help="the stream's bound (a burst must fit)")
    ap.add_argument("--modes", type=lambda v: v.split(","), default=list(MODES))
    ap.add_argument("--crash-rounds", type=int, default=20, help="SIGKILL rounds with the buffer on (0: none)")
    ap.add_argument("--database-url", help="PostgreSQL (its schema is dropped each run); default SQLite")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stream_buffer.json")
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "redis").mkdir()
        port = free_port()
        rs = RedisServer(f"redis://127.0.0.1:{port}/0", True, tmp / "redis", port).start()
        try:
            for n in range(args.rounds):
                for mode in args.modes:
                    results[mode].append(one(args, tmp, mode, rs.url, n))
                    print(mode, n, {k: round(v, 1) for k, v in results[mode][-1].items()}, flush=True)
            crashes = []
            for i in range(args.crash_rounds):
                if args.database_url:
                    reset_postgres(args.database_url)
                url = args.database_url or f"sqlite:///{tmp / f'crash{i}' / 'errlearn.db'}"
                crashes.append(vars(buffered_crash_once(tmp / f"crash{i}", rs, url)))
                print("crash", i, crashes[-1], flush=True)
        finally:
            rs.stop()
    summary = {m: {k: statistics.median(r[k] for r in rs_) for k in rs_[0]} for m, rs_ in results.items() if rs_}
    base = summary.get("off")
    print(f"\n{'mode':8} {'acked ev/s':>11} {'ratio':>6} {'p99 ms':>8} {'drain s':>8} {'stored ev/s':>12} {'ratio':>6}")
    for mode, s in summary.items():
        r1 = s["acked_events_per_s"] / base["acked_events_per_s"] if base else float("nan")
        r2 = s["stored_events_per_s"] / base["stored_events_per_s"] if base else float("nan")
        print(
            f"{mode:8} {s['acked_events_per_s']:11.0f} {r1:6.2f} {s['p99_ms']:8.1f} {s['drain_s']:8.1f}"
            f" {s['stored_events_per_s']:12.0f} {r2:6.2f}"
        )
    if crashes:
        total = {k: sum(c[k] for c in crashes) for k in crashes[0]}
        print(
            f"\nSIGKILL rounds with the buffer: {len(crashes)}, acknowledged {total['acked']}, missing "
            f"{total['missing']}, stored twice {total['doubled']}, changed {total['changed']}; entries held by the "
            f"killed process {total['held']}, claimed by the next {total['claimed']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": results,
        "median": summary,
        "crash": crashes,
    }
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
