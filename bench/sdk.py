"""Benchmark of the capture SDK: calling-thread cost, memory under a flood, sender CPU, bytes per event.

    .venv/bin/python bench/sdk.py [--calls 20000] [--flood 200000] [--seconds 5] [--json bench/results/sdk.json]

The stand-in server runs in another process, so its CPU and memory are not charged to the SDK.
Goals: p99 of capture_exception() <= 20 us in the calling thread; < 50 MB growth under a flood with the
server down; < 5 % of a core for the sender at 1k events/s; < 1 KB per event on the wire.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from errlearn_sdk import Client
from errlearn_sdk.standin import StandInServer

KEY = "bench-key-0123456789"


# -- the stand-in server, in its own process ------------------------------------------------------------------------


def _serve(conn: Connection) -> None:
    server = StandInServer(KEY)
    conn.send(server.port)
    while True:
        command = conn.recv()
        if command == "stats":
            bodies = [r.body for r in server.requests if r.status == 202]
            conn.send(
                {
                    "requests": len(bodies),
                    "events": server.event_count,
                    "body_bytes": sum(len(b) for b in bodies),
                    "gzip_bytes": sum(len(gzip.compress(b, 6)) for b in bodies),
                }
            )
        elif command == "reset":
            server.requests.clear()
            server.event_count = 0
            conn.send(True)
        else:
            server.stop()
            conn.send(True)
            return


class RemoteStandIn:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{self.conn.recv()}"

    def call(self, command: str) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def wait_events(self, count: int, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        stats: dict[str, Any] = self.call("stats")
        while stats["events"] < count and time.monotonic() < deadline:
            time.sleep(0.1)
            stats = self.call("stats")
        return stats

    def stop(self) -> None:
        self.call("stop")
        self.process.join(5)


# -- realistic errors: distinct layers, like a web request's stack ----------------------------------------------------


class PaymentDeclinedError(Exception):
    pass


def _gateway_post(order: int, amount: int) -> None:
    raise PaymentDeclinedError(f"card declined for order {order}: insufficient funds (code 51), amount={amount}")


def _charge_card(order: int) -> None:
    amount = 100 + order % 900
    _gateway_post(order, amount)


def _pool_connect(order: int) -> None:
    raise ConnectionError(f"could not connect to db-{order % 3}.internal:5432: timeout after 3000 ms")


def _load_order(order: int) -> None:
    _pool_connect(order)


def _checkout_service(order: int) -> None:
    if order % 2:
        _load_order(order)
    else:
        _charge_card(order)


def _middleware(order: int, depth: int) -> None:
    if depth:
        _middleware_next(order, depth - 1)
    else:
        _checkout_service(order)


def _middleware_next(order: int, depth: int) -> None:
    _middleware(order, depth)


def _request(order: int) -> None:
    _middleware(order, 2 + order % 3)  # 9-13 frames deep with two error sites


def _raise(i: int) -> BaseException:
    try:
        _request(i)
    except Exception as exc:
        return exc
    raise AssertionError("unreachable")


def _noop(exc: BaseException | None = None, **extra: Any) -> bool:
    return True


def _percentiles(samples: list[int]) -> dict[str, float]:
    samples.sort()
    n = len(samples)
    return {
        "p50_us": samples[n // 2] / 1000,
        "p99_us": samples[int(n * 0.99)] / 1000,
        "p999_us": samples[int(n * 0.999)] / 1000,
        "mean_us": statistics.fmean(samples) / 1000,
    }


def _time_calls(fn: Callable[..., bool], calls: int, rate: float | None = None, **extra: Any) -> dict[str, Any]:
    """Time `fn(exc, **extra)` right after each raise, on the wall clock and on this thread's CPU clock.

    The CPU clock leaves out time spent descheduled or waiting for the GIL (held by the sender or by
    other processes' load); the wall clock is what the application feels. `rate` paces the calls.
    """
    wall, cpu = [], []
    wall_clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    next_at = time.perf_counter()
    for i in range(calls):
        try:
            _request(i)
        except Exception as exc:
            w0, c0 = wall_clock(), cpu_clock()
            fn(exc, **extra)
            c1, w1 = cpu_clock(), wall_clock()
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
        if rate:
            next_at += 1 / rate
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    return {"wall": _percentiles(wall), "cpu": _percentiles(cpu)}


# -- phases -----------------------------------------------------------------------------------------------------------


def bench_latency(server: RemoteStandIn, calls: int, spool: Path) -> dict[str, Any]:
    """Calling-thread cost of capture_exception vs a bare call, while the sender really sends."""
    gc.collect()
    result: dict[str, Any] = {"baseline": _time_calls(_noop, calls, user_id=42)}
    scenarios: list[tuple[str, dict[str, Any], float | None]] = [
        ("capture_exception, tight loop", {"per_type_limit": None}, None),
        ("capture_exception, tight loop, flood ctl", {}, None),
        ("capture_exception, paced 2k/s", {"per_type_limit": None}, 2000.0),
    ]
    for label, config, rate in scenarios:
        server.call("reset")
        client = Client(server.url, KEY, "bench", spool_dir=spool, **config)
        result[label] = _time_calls(client.capture_exception, calls, rate, user_id=42)
        client.flush(30)
        result[label]["stats"] = {k: v for k, v in client.stats().items() if v}
        client.close()
    client = Client(server.url, KEY, "bench", spool_dir=spool, per_type_limit=None)
    result["capture_message, tight loop"] = _time_calls(
        lambda exc, **extra: client.capture_message("cache miss storm on shard", severity="low", **extra),
        calls,
        shard=3,
    )
    client.close()
    return result


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_flood(events: int, spool: Path, use_tracemalloc: bool) -> dict[str, Any]:
    """Memory growth over `events` captures with the server down (dead port): the queue and the spool are bounded."""
    dead = StandInServer(KEY)
    dead.stop()
    gc.collect()
    if use_tracemalloc:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    rss_before = _rss_bytes()
    client = Client(dead.url, KEY, "flood", spool_dir=spool, per_type_limit=None, max_retries=0)
    started = time.perf_counter()
    for i in range(events):
        try:
            _request(i)
        except Exception as exc:
            client.capture_exception(exc, request_id=i)
    capture_seconds = time.perf_counter() - started
    queued_peak = client.stats()["queued"]
    client.flush(120)
    gc.collect()
    out: dict[str, Any] = {"events": events, "capture_seconds": round(capture_seconds, 2), "queued_at_end": queued_peak}
    if use_tracemalloc:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["tracemalloc_growth_mb"] = round((current - before) / 2**20, 2)
        out["tracemalloc_peak_mb"] = round((peak - before) / 2**20, 2)
    else:
        out["rss_growth_mb"] = round((_rss_bytes() - rss_before) / 2**20, 2)
    out["stats"] = {k: v for k, v in client.stats().items() if v}
    out["spool_mb"] = round(sum(p.stat().st_size for p in spool.glob("*.jsonl")) / 2**20, 2)
    client.close(timeout=5)
    return out


def bench_steady(server: RemoteStandIn, seconds: float, rate: int, spool: Path) -> dict[str, Any]:
    """Sender-thread CPU while the application reports `rate` distinct events per second."""
    server.call("reset")
    client = Client(server.url, KEY, "steady", spool_dir=spool, per_type_limit=None)
    sender = client._sender.thread
    assert sender.ident is not None
    clock_id = time.pthread_getcpuclockid(sender.ident)
    errors = [_raise(i) for i in range(64)]
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    process_before = time.process_time()
    sender_before = time.clock_gettime(clock_id)
    caller_cpu = 0.0
    started = time.perf_counter()
    sent = 0
    next_tick = started
    while time.perf_counter() - started < seconds:
        t0 = time.thread_time()
        for _ in range(per_tick):
            exc = errors[sent % len(errors)]
            exc.__dict__.pop("__errlearn_captured__", None)  # reuse the exception objects: same cost as new ones
            client.capture_exception(exc, user_id=sent)
            sent += 1
        caller_cpu += time.thread_time() - t0
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.perf_counter()))
    client.flush(10)
    wall = time.perf_counter() - started
    sender_cpu = time.clock_gettime(clock_id) - sender_before
    process_cpu = time.process_time() - process_before
    stats = server.wait_events(sent)
    client.close()
    return {
        "events": sent,
        "events_per_s": round(sent / wall),
        "sender_cpu_share_pct": round(100 * sender_cpu / wall, 2),
        "caller_cpu_share_pct": round(100 * caller_cpu / wall, 2),
        "process_cpu_share_pct": round(100 * process_cpu / wall, 2),
        "sender_cpu_us_per_event": round(1e6 * sender_cpu / sent, 1),
        "wire": {
            "requests": stats["requests"],
            "events": stats["events"],
            "json_bytes_per_event": round(stats["body_bytes"] / max(1, stats["events"]), 1),
            "gzip_bytes_per_event": round(stats["gzip_bytes"] / max(1, stats["events"]), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--flood", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()

    server = RemoteStandIn()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            report["latency"] = bench_latency(server, args.calls, root / "latency")
            report["steady"] = bench_steady(server, args.seconds, args.rate, root / "steady")
        finally:
            server.stop()
        report["flood_rss"] = bench_flood(args.flood, root / "flood-rss", use_tracemalloc=False)
        report["flood_tracemalloc"] = bench_flood(args.flood, root / "flood-tm", use_tracemalloc=True)

    lat = report["latency"]
    base = lat["baseline"]
    print(f"\ncalling-thread cost over {args.calls} calls, in us (wall clock | this thread's CPU clock)")
    print(f"  {'':42} {'p50':>6} {'p99':>7} {'p99.9':>8} | {'p50':>6} {'p99':>6} {'p99.9':>7} | p50 vs baseline")
    for label, row in lat.items():
        w, c = row["wall"], row["cpu"]
        ratio = w["p50_us"] / base["wall"]["p50_us"]
        print(
            f"  {label:42} {w['p50_us']:6.2f} {w['p99_us']:7.2f} {w['p999_us']:8.1f} | "
            f"{c['p50_us']:6.2f} {c['p99_us']:6.2f} {c['p999_us']:7.1f} | {ratio:5.1f}x"
        )
    steady = report["steady"]
    print(f"\nsteady {steady['events_per_s']} events/s for {args.seconds:.0f} s (distinct events, flood control off)")
    print(
        f"  sender thread CPU {steady['sender_cpu_share_pct']} % of a core ({steady['sender_cpu_us_per_event']} us/event)"
    )
    print(
        f"  calling threads CPU {steady['caller_cpu_share_pct']} %, whole process {steady['process_cpu_share_pct']} %"
    )
    wire = steady["wire"]
    print(f"  wire: {wire['json_bytes_per_event']} B/event as JSON, {wire['gzip_bytes_per_event']} B/event gzipped")
    for key in ("flood_rss", "flood_tracemalloc"):
        flood = report[key]
        growth = flood.get("rss_growth_mb", flood.get("tracemalloc_growth_mb"))
        extra = f", peak {flood['tracemalloc_peak_mb']} MB" if "tracemalloc_peak_mb" in flood else ""
        print(
            f"\nflood of {flood['events']} captures, server down ({key.split('_')[1]}): growth {growth} MB{extra}; "
            f"captured in {flood['capture_seconds']} s; spool {flood['spool_mb']} MB\n  {flood['stats']}"
        )
    goals = {
        "p99 capture_exception <= 20 us (paced, wall)": lat["capture_exception, paced 2k/s"]["wall"]["p99_us"] <= 20,
        "flood memory < 50 MB": max(
            report["flood_rss"]["rss_growth_mb"], report["flood_tracemalloc"]["tracemalloc_peak_mb"]
        )
        < 50,
        "sender CPU < 5 %": steady["sender_cpu_share_pct"] < 5,
        "< 1 KB per event (JSON)": wire["json_bytes_per_event"] < 1024,
    }
    print("\ngoals: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items()))
    report["goals"] = goals
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
