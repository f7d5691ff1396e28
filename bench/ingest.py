"""Ingest benchmark (not a test): everything is measured side by side in one run and reported as ratios.

  1. single POST /errors on errlearn vs. a bare FastAPI endpoint that only answers 202 (the ceiling),
     same uvicorn settings, same load generator (wrk, a C client, so Python load does not steal CPU);
  2. /errors/batch with 100-event batches: events/s;
  3. the same batch load with the background indexer running (new patterns keep arriving) vs. without;
  4. the SIGKILL crash test, 20 rounds: every acknowledged event must survive.

Usage: .venv/bin/python bench/ingest.py [--duration 10] [--connections 32] [--crash-rounds 20]
Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess  # noqa: TID251 - the benchmark runs servers and wrk
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support import ADMIN_KEY, INGEST_KEY, crash_once, free_port  # noqa: E402

EVENT = {
    "service": "ai-orchestrator",
    "context": "POST /generate",
    "error_type": "ConnectError",
    "error_message": "httpx.ConnectError: [Errno 111] Connection refused calling http://127.0.0.1:11434/api/generate",
    "severity": "high",
    "stack_trace": (
        "Traceback (most recent call last):\n"
        '  File "/app/orchestrator/ollama.py", line 88, in generate\n    r = await client.post(url, json=body)\n'
        '  File "/app/orchestrator/routes.py", line 41, in generate_route\n    return await ollama.generate(p)\n'
        "httpx.ConnectError: [Errno 111] Connection refused\n"
    ),
    "additional_data": {"model": "qwen2.5:7b", "attempt": 3},
}

LUA_SINGLE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.body = [[%(body)s]]
"""

# Each batch: 100 events; with --varied, error types spread over 3000 values so new patterns keep
# arriving and the indexer has real work.
LUA_BATCH = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local varied = %(varied)s
local base = [[%(event)s]]
request = function()
  local parts = {}
  for i = 1, 100 do
    local t = varied and ("Error" .. math.random(1, 3000)) or "ConnectError"
    parts[i] = string.gsub(base, "ConnectError", t)  -- every occurrence: the stack trace too
  end
  return wrk.format(nil, "/errors/batch", nil, '{"errors":[' .. table.concat(parts, ",") .. ']}')
end
"""


def wait_healthy(url: str, path: str = "/health", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=1).status_code in (200, 404, 405):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def start(cmd: list[str], env: dict[str, str], port: int, probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(f"http://127.0.0.1:{port}", probe)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def errlearn_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRLEARN_")}
    env.update(
        ERRLEARN_DATA_DIR=str(data_dir),
        ERRLEARN_API_KEYS=INGEST_KEY,
        ERRLEARN_ADMIN_KEY=ADMIN_KEY,
        ERRLEARN_LOG_LEVEL="WARNING",
        ERRLEARN_DIAGNOSE_NEW_PATTERNS="false",
        **extra,
    )
    return env


def run_wrk(url: str, script: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", fh.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(fh.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def bench_single(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, float]]:
    body = json.dumps(EVENT)
    script = LUA_SINGLE % {"key": INGEST_KEY, "body": body}
    py = sys.executable
    port = free_port()
    ceiling = start(
        [
            py,
            "-m",
            "uvicorn",
            "bench._ceiling_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        dict(os.environ, PYTHONPATH=str(ROOT)),
        port,
        "/docs",
    )
    try:
        run_wrk(f"http://127.0.0.1:{port}/errors", script, 2, args.connections)  # warm-up
        c = run_wrk(f"http://127.0.0.1:{port}/errors", script, args.duration, args.connections)
    finally:
        stop(ceiling)
    port = free_port()
    server = start(
        [py, "-m", "agent.cli", "serve", "--port", str(port), "--no-worker"],
        errlearn_env(tmp / "single"),
        port,
        "/health",
    )
    try:
        run_wrk(f"http://127.0.0.1:{port}/errors", script, 2, args.connections)
        e = run_wrk(f"http://127.0.0.1:{port}/errors", script, args.duration, args.connections)
    finally:
        stop(server)
    return {"ceiling": c, "errlearn": e}


def bench_batch(
    args: argparse.Namespace, tmp: Path, *, worker: bool, varied: bool, name: str, separate_worker: bool = False
) -> dict[str, float]:
    """Batch load; the indexer off, in the API process (`serve --worker`) or as `errlearn worker` beside it."""
    script = LUA_BATCH % {"key": INGEST_KEY, "event": json.dumps(EVENT), "varied": "true" if varied else "false"}
    port = free_port()
    flag = "--worker" if worker and not separate_worker else "--no-worker"
    env = errlearn_env(tmp / name, ERRLEARN_WORKER_POLL_S="0.2")
    server = start([sys.executable, "-m", "agent.cli", "serve", "--port", str(port), flag], env, port, "/health")
    side = None
    if separate_worker:
        side = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(3)  # let it load the embedder before the load starts
    try:
        run_wrk(f"http://127.0.0.1:{port}", script, 2, args.batch_connections)
        r = run_wrk(f"http://127.0.0.1:{port}", script, args.duration, args.batch_connections)
        if worker:  # how far the indexer got while ingest ran
            st = httpx.get(f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {INGEST_KEY}"}).json()
            r["patterns"] = st.get("patterns", 0)
    finally:
        if side is not None:
            stop(side)
        stop(server)
    r["events_per_s"] = r["rps"] * 100
    return r


def llm_calls_per_10k(tmp: Path) -> dict[str, int]:
    """10k events drawn from 40 recurring errors (ids, ports, times varying): diagnosis jobs = model calls."""
    import random

    from sqlalchemy import func, select

    from agent.bootstrap import build_services
    from agent.ingest.normalize import EventCreate
    from agent.settings import Settings
    from agent.store.tables import JobRow

    rng = random.Random(1)
    services = build_services(Settings(data_dir=tmp / "calls", worker=False)).start(worker=False)
    try:
        for _ in range(20):
            batch = []
            for _ in range(500):
                k = rng.randrange(40)
                batch.append(
                    EventCreate(
                        service=f"svc-{k % 5}",
                        error_type=f"Error{k}",
                        severity="high",
                        error_message=f"operation {k} failed for request {rng.randrange(10**9)} on 10.0.0.{rng.randrange(255)}:{rng.randrange(1, 65535)}",
                    )
                )
            services.core.ingest_sync(batch)
        with services.core.engine.connect() as conn:
            jobs = conn.execute(
                select(func.count()).select_from(JobRow.__table__).where(JobRow.kind == "diagnose")
            ).scalar_one()
            patterns = services.core.status()["patterns"]
    finally:
        services.close()
    return {"events": 10_000, "patterns": int(patterns), "llm_calls": int(jobs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--batch-connections", type=int, default=8)
    ap.add_argument("--crash-rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/ingest.py needs wrk: apt-get install wrk")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        single = bench_single(args, tmp)
        results["single"] = single
        results["single_ratio"] = single["errlearn"]["rps"] / single["ceiling"]["rps"]
        results["batch"] = bench_batch(args, tmp, worker=False, varied=False, name="batch")
        plain = bench_batch(args, tmp, worker=False, varied=True, name="varied-plain")
        indexed = bench_batch(args, tmp, worker=True, varied=True, name="varied-indexed")
        separate = bench_batch(args, tmp, worker=True, varied=True, name="varied-separate", separate_worker=True)
        results["indexing"] = {
            "without": plain,
            "with": indexed,
            "ratio": indexed["rps"] / plain["rps"],
            "separate_worker": separate,
            "separate_ratio": separate["rps"] / plain["rps"],
        }
        results["llm_calls"] = llm_calls_per_10k(tmp)
        crash = []
        for i in range(args.crash_rounds):
            d = tmp / f"crash{i}"
            d.mkdir()
            crash.append(crash_once(d, run_s=1.0))
        results["crash"] = {
            "rounds": len(crash),
            "acknowledged": sum(a for a, _ in crash),
            "missing": sum(m for _, m in crash),
        }
    s = results["single"]
    print("\nerrlearn ingest benchmark (one run, same machine, same uvicorn settings)")
    print(
        f"  ceiling  POST /errors (bare FastAPI 202): {s['ceiling']['rps']:8.0f} req/s  p50 {s['ceiling']['p50_ms']:.2f} ms  p99 {s['ceiling']['p99_ms']:.2f} ms"
    )  # type: ignore[index]
    print(
        f"  errlearn POST /errors (validate+scrub+group+commit): {s['errlearn']['rps']:8.0f} req/s  p50 {s['errlearn']['p50_ms']:.2f} ms  p99 {s['errlearn']['p99_ms']:.2f} ms  non-2xx {s['errlearn']['non_2xx']}"
    )  # type: ignore[index]
    print(f"  single / ceiling ratio: {results['single_ratio']:.2f}  (goal >= 0.70)")
    b = results["batch"]
    print(
        f"  /errors/batch x100: {b['events_per_s']:8.0f} events/s  p50 {b['p50_ms']:.1f} ms  p99 {b['p99_ms']:.1f} ms  (goal >= 20000)"
    )  # type: ignore[index]
    ix = results["indexing"]
    print(
        f"  new patterns arriving, indexer off: {ix['without']['events_per_s']:8.0f} events/s; "  # type: ignore[index]
        f"in-process: {ix['with']['events_per_s']:8.0f} events/s, ratio {ix['ratio']:.2f}; "  # type: ignore[index]
        f"separate `errlearn worker`: {ix['separate_worker']['events_per_s']:8.0f} events/s, "  # type: ignore[index]
        f"ratio {ix['separate_ratio']:.2f} (goal >= 0.90)"
    )
    lc = results["llm_calls"]
    print(
        f"  LLM calls per 10k events (40 recurring errors): {lc['llm_calls']} for {lc['patterns']} patterns (one diagnosis per pattern, cached)"
    )  # type: ignore[index]
    c = results["crash"]
    print(f"  SIGKILL crash rounds: {c['rounds']}, acknowledged {c['acknowledged']}, missing {c['missing']}")  # type: ignore[index]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"  results: {args.out}")


if __name__ == "__main__":
    main()
