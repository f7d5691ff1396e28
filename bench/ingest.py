"""Ingest benchmark (not a test): everything is measured side by side in one run and reported as ratios.

  1. single POST /errors on errlearn vs. a bare FastAPI endpoint that only answers 202 (the ceiling),
     same uvicorn settings, same load generator (wrk, a C client, so Python load does not steal CPU);
  2. /errors/batch with 100-event batches: events/s;
  3. the same batch loads (new patterns arriving; one recurring pattern) with the background indexer off,
     in the API process and as `errlearn worker` beside it, interleaved over --index-rounds rounds;
  4. the SIGKILL crash test, 20 rounds: every acknowledged event must survive.

Usage: .venv/bin/python bench/ingest.py [--duration 10] [--index-rounds 3] [--only indexing,crash]
Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess  # noqa: TID251 - the benchmark runs servers and wrk
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support import ADMIN_KEY, INGEST_KEY, crash_once, free_port, tcp_sockets  # noqa: E402

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


def wait_healthy(url: str, path: str = "/health", timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=1).status_code in (200, 404, 405):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def wait_listening(port: int, sockets: int, timeout: float = 120) -> None:
    """Wait until `sockets` sockets listen on `port` (`serve --workers N`: one per API process; /health answers
    as soon as the first is up, and connections opened before the others listen would all go to it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(tcp_sockets(port, "0A")) >= sockets:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{sockets} listening sockets on port {port}")


def start(cmd: list[str], env: dict[str, str], port: int, probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", probe)
    except TimeoutError:
        stop(proc)
        raise
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


def wait_indexed(url: str, timeout: float = 300, *, post: bool = True) -> None:
    """Wait until every pattern is in the vector index (first posting one event, so there is one)."""
    headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    if post:
        httpx.post(url + "/errors", json=EVENT, headers=headers, timeout=10).raise_for_status()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = httpx.get(url + "/status", headers=headers, timeout=10).json()
        if st.get("patterns") and not st.get("patterns_unindexed"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not index every pattern within {timeout:.0f} s")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process on this machine."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            out[int(entry.name)] = (ppid, cmd)
    return out


def cpu_groups(server_pid: int, database: str | None) -> dict[str, float]:
    """CPU seconds so far of the errlearn process tree and, with a local PostgreSQL `database`, of the server
    processes that work for it: its backends and the shared WAL writer, checkpointer and background writer."""
    table = _process_table()
    tree, frontier = {server_pid}, [server_pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, (pp, _) in table.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    out = {"errlearn": sum(map(_cpu_s, tree))}
    if database:
        shared = ("walwriter", "checkpointer", "background writer")
        pg = [
            p
            for p, (_, cmd) in table.items()
            if cmd.startswith("postgres:") and (f" {database} " in cmd or any(x in cmd for x in shared))
        ]
        out["postgres"] = sum(map(_cpu_s, pg))
    return out


def run_wrk(url: str, script: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", fh.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(fh.name)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child waited for meanwhile
    wrk_cpu = wrk_after.ru_utime + wrk_after.ru_stime - wrk_before.ru_utime - wrk_before.ru_stime
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "wrk_cpu_s": wrk_cpu,
    }


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
        [py, "-m", "agent.cli", "serve", "--port", str(port), "--no-worker", "--workers", "1"],
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
    args: argparse.Namespace,
    tmp: Path,
    *,
    varied: bool,
    name: str,
    worker: bool = False,
    separate_worker: bool = False,
    processes: int = 1,
    database_url: str | None = None,
) -> dict[str, float]:
    """Batch load; the indexer off, in the API process (`serve --worker`) or as `errlearn worker` beside it."""
    script = LUA_BATCH % {"key": INGEST_KEY, "event": json.dumps(EVENT), "varied": "true" if varied else "false"}
    port = free_port()
    flag = "--worker" if worker and not separate_worker else "--no-worker"
    env = errlearn_env(tmp / name, ERRLEARN_WORKER_POLL_S="0.2")
    if database_url:
        env["ERRLEARN_DATABASE_URL"] = database_url
    cmd = [sys.executable, "-m", "agent.cli", "serve", "--port", str(port), flag, "--workers", str(processes)]
    server = start(cmd, env, port, "/health")
    if processes > 1:
        wait_listening(port, processes)
    side = None
    if separate_worker:
        side = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    try:
        if worker:  # steady state: the worker has loaded the embedder and Chroma and indexed a first pattern
            wait_indexed(f"http://127.0.0.1:{port}")
        run_wrk(f"http://127.0.0.1:{port}", script, 2, args.batch_connections)
        db_name = database_url.rsplit("/", 1)[-1].split("?", 1)[0] if database_url else None
        cpu_before = cpu_groups(server.pid, db_name)
        r = run_wrk(f"http://127.0.0.1:{port}", script, args.duration, args.batch_connections)
        cpu_after = cpu_groups(server.pid, db_name)
        # Where the machine's CPU went per stored event (the load generator shares the cores).
        events = max(1.0, r["rps"] * 100 * args.duration)
        r["cpu_us_per_event"] = {
            **{k: (cpu_after[k] - cpu_before[k]) / events * 1e6 for k in cpu_after},
            "wrk": r["wrk_cpu_s"] / events * 1e6,
        }
        if worker:  # how far the indexer got while ingest ran
            st = httpx.get(f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {INGEST_KEY}"}).json()
            r["patterns"] = st.get("patterns", 0)
            r["unindexed"] = st.get("patterns_unindexed", 0)
            started = time.monotonic()  # and how long it takes to catch up once the load stops
            wait_indexed(f"http://127.0.0.1:{port}", post=False)
            r["catch_up_s"] = time.monotonic() - started
    finally:
        if side is not None:
            stop(side)
        stop(server)
    r["events_per_s"] = r["rps"] * 100
    return r


def reset_postgres(url: str) -> None:
    """An empty schema for the next run (the bench's own database: everything in it goes)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def bench_workers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """`serve --workers N` for each N on SQLite (and PostgreSQL with --database-url): batch events/s and ratios."""
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.database_url:
        backends.append(("postgresql", args.database_url))
    out: dict[str, Any] = {}
    for backend, url in backends:
        eps: dict[str, list[float]] = {str(n): [] for n in args.workers}
        cpu: dict[str, list[dict[str, float]]] = {str(n): [] for n in args.workers}
        for r in range(args.worker_rounds):  # interleaved rounds: the same machine noise hits every N
            for n in args.workers:
                if url:
                    reset_postgres(url)
                res = bench_batch(args, tmp, varied=False, name=f"w-{backend}-{n}-{r}", processes=n, database_url=url)
                eps[str(n)].append(res["events_per_s"])
                cpu[str(n)].append(res["cpu_us_per_event"])
        mean = {n: statistics.mean(v) for n, v in eps.items()}
        base = mean[str(args.workers[0])]
        out[backend] = {
            "events_per_s": mean,
            "rounds": eps,
            "ratio": {n: m / base for n, m in mean.items()},
            "cpu_us_per_event": {n: {k: statistics.mean(r[k] for r in rs) for k in rs[0]} for n, rs in cpu.items()},
        }
    return out


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


def bench_indexing(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Indexing on vs off, interleaved over several rounds (one machine's noise hits every layout alike)."""
    layouts = {"off": {}, "in-process": {"worker": True}, "separate": {"worker": True, "separate_worker": True}}
    out: dict[str, Any] = {}
    loads = {"new patterns": True, "same pattern": False}
    for load, varied in ((k, v) for k, v in loads.items() if k in args.index_loads):
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in layouts}
        for rnd in range(args.index_rounds):
            for name, kw in layouts.items():
                tag = f"ix-{'v' if varied else 's'}-{name}-{rnd}"
                runs[name].append(bench_batch(args, tmp, varied=varied, name=tag, **kw))  # type: ignore[arg-type]
        mean = {name: statistics.fmean(r["events_per_s"] for r in rs) for name, rs in runs.items()}
        out[load] = {
            "events_per_s": mean,
            "runs": {name: [r["events_per_s"] for r in rs] for name, rs in runs.items()},
            "ratio": {name: mean[name] / mean["off"] for name in layouts if name != "off"},
            "round_ratios": {
                name: [r["events_per_s"] / off["events_per_s"] for r, off in zip(rs, runs["off"], strict=True)]
                for name, rs in runs.items()
                if name != "off"
            },
            "unindexed_at_end": {name: [r.get("unindexed") for r in rs] for name, rs in runs.items() if name != "off"},
            "catch_up_s": {name: [r.get("catch_up_s") for r in rs] for name, rs in runs.items() if name != "off"},
            "patterns": {name: [r.get("patterns") for r in rs] for name, rs in runs.items() if name != "off"},
        }
    return out


SECTIONS = ("single", "batch", "workers", "indexing", "grouping", "llm", "crash")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--batch-connections", type=int, default=8)
    ap.add_argument("--crash-rounds", type=int, default=20)
    ap.add_argument("--index-rounds", type=int, default=3, help="interleaved rounds of indexing off/on")
    ap.add_argument("--index-loads", type=lambda v: v.split(","), default=["new patterns", "same pattern"])
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    ap.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2])
    ap.add_argument("--worker-rounds", type=int, default=2, help="interleaved rounds of the --workers section")
    ap.add_argument("--database-url", help="PostgreSQL for the workers section (its schema is dropped each run)")
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if unknown := only - set(SECTIONS):
        sys.exit(f"--only: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if not shutil.which("wrk"):
        sys.exit("bench/ingest.py needs wrk: apt-get install wrk")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if "single" in only:
            single = bench_single(args, tmp)
            results["single"] = single
            results["single_ratio"] = single["errlearn"]["rps"] / single["ceiling"]["rps"]
        if "batch" in only:
            results["batch"] = bench_batch(args, tmp, worker=False, varied=False, name="batch")
        if "workers" in only:
            results["workers"] = bench_workers(args, tmp)
        if "indexing" in only:
            results["indexing"] = bench_indexing(args, tmp)
        if "grouping" in only:  # new vs recurring patterns at 1k and 50k stored templates (bench/grouping.py)
            from bench.grouping import bench_grouping

            results["grouping"] = bench_grouping([1000, 50_000], args.duration, args.batch_connections, tmp)
        if "llm" in only:
            results["llm_calls"] = llm_calls_per_10k(tmp)
        if "crash" in only:
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
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"  results: {args.out}")


def _core_bound(cpu: dict[str, float]) -> str:
    """What the cores allow: N=1 is bound by one core for errlearn's share, N>1 by all cores for everything."""
    total = sum(cpu.values())
    cores = len(os.sched_getaffinity(0))
    if not total or not cpu.get("errlearn"):
        return "no CPU figures"
    # One process cannot use more than about one core (the GIL); N processes share all cores with the rest.
    bound = max(1.0, cores * cpu["errlearn"] / total)
    return f"at these costs {cores} cores allow N>1 at most {bound:.2f}x one process that keeps a core busy"


def report(results: dict[str, Any]) -> None:
    print("\nerrlearn ingest benchmark (one run, same machine, same uvicorn settings)")
    if s := results.get("single"):
        c, e = s["ceiling"], s["errlearn"]
        print(
            f"  ceiling  POST /errors (bare FastAPI 202): {c['rps']:8.0f} req/s  p50 {c['p50_ms']:.2f} ms  p99 {c['p99_ms']:.2f} ms"
        )
        print(
            f"  errlearn POST /errors (validate+scrub+group+commit): {e['rps']:8.0f} req/s  p50 {e['p50_ms']:.2f} ms"
            f"  p99 {e['p99_ms']:.2f} ms  non-2xx {e['non_2xx']}"
        )
        print(f"  single / ceiling ratio: {results['single_ratio']:.2f}  (goal >= 0.70)")
    if b := results.get("batch"):
        print(
            f"  /errors/batch x100: {b['events_per_s']:8.0f} events/s  p50 {b['p50_ms']:.1f} ms  p99 {b['p99_ms']:.1f} ms"
            "  (goal >= 20000)"
        )
    for backend, w in (results.get("workers") or {}).items():
        figures = ", ".join(
            f"{n} process(es) {e:7.0f} events/s (x{w['ratio'][n]:.2f})" for n, e in w["events_per_s"].items()
        )
        print(f"  serve --workers on {backend}, /errors/batch x100: {figures}  (goal: 2 >= 1.6x 1 on PostgreSQL)")
        for n, cpu in w.get("cpu_us_per_event", {}).items():
            parts = ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
            print(f"    {n} process(es), CPU µs per event: {parts}; {_core_bound(cpu)}")
    for load, ix in (results.get("indexing") or {}).items():
        eps, ratio = ix["events_per_s"], ix["ratio"]
        print(
            f"  indexing, {load}: off {eps['off']:7.0f} events/s; in-process worker {eps['in-process']:7.0f} "
            f"(ratio {ratio['in-process']:.2f}); separate `errlearn worker` {eps['separate']:7.0f} "
            f"(ratio {ratio['separate']:.2f})  (goal >= 0.90)"
        )
        for name in ("in-process", "separate"):
            rounds = ", ".join(f"{x:.2f}" for x in ix["round_ratios"][name])
            left = ix["unindexed_at_end"][name]
            catch = ", ".join(f"{x:.1f}" for x in ix["catch_up_s"][name])
            print(f"    {name}: round ratios {rounds}; unindexed when the load stopped {left}; caught up in {catch} s")
    if g := results.get("grouping"):
        from bench.grouping import report as grouping_report

        grouping_report(g)
    if lc := results.get("llm_calls"):
        print(
            f"  LLM calls per 10k events (40 recurring errors): {lc['llm_calls']} for {lc['patterns']} patterns"
            " (one diagnosis per pattern, cached)"
        )
    if c := results.get("crash"):
        print(f"  SIGKILL crash rounds: {c['rounds']}, acknowledged {c['acknowledged']}, missing {c['missing']}")


if __name__ == "__main__":
    main()
