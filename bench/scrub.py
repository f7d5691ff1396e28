"""Benchmark the secret scrubber on the ingest hot path.

Run: ``.venv/bin/python bench/scrub.py`` (add ``--quick`` for fewer rounds).

Prints CPU time per call (``time.process_time``, the minimum of several rounds, so other processes on a
shared machine inflate it less than wall time) and the ratio to a baseline measured in the same run: one
``re`` literal search over the same text, i.e. the cost of reading it once. Targets: a 300-character
message without secrets in <= ~10 us, a 20 KB stack trace well under 1 ms.
"""

from __future__ import annotations

import argparse
import functools
import re
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

from agent.ingest.scrub import Scrubber

MESSAGE = (
    'psycopg2.OperationalError: connection to server at "db.internal" (10.0.3.17), port 5432 failed: '
    "Connection refused. Is the server running on that host and accepting TCP/IP connections? "
    "request_id=4f1c2d7e-9b1a-4c55-a0c2-7d1e6b9f3a10 user=42 path=/api/v1/orders/1234 elapsed_ms=1532 "
    "at 2024-05-01T12:00:03Z"
)
SECRETS = (
    "password=hunter2",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "postgres://app:s3cr3t@db.internal:5432/app",
    "token ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "AKIAIOSFODNN7EXAMPLE",
    "card 4111 1111 1111 1111",
    "mail ops@example.com",
)


def java_trace(size: int) -> str:
    """A realistic Java trace of about ``size`` characters (frames, causes, an object id, line numbers)."""
    head = (
        "org.springframework.dao.DataAccessResourceFailureException: Unable to acquire JDBC Connection; "
        "nested exception is java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not "
        "available, request timed out after 30000ms. pool=com.zaxxer.hikari.HikariDataSource@5f2108b5\n"
    )
    frames: list[str] = []
    i = 0
    while len(head) + sum(len(f) for f in frames) < size:
        cls = f"OrderService{i % 7}"
        frames.append(f"\tat com.example.orders.service.{cls}.placeOrder{i % 3}({cls}.java:{100 + i})\n")
        if i % 25 == 24:
            frames.append(f"Caused by: java.net.SocketTimeoutException: connect timed out after {i}ms\n")
        i += 1
    return (head + "".join(frames))[:size]


def python_trace(size: int) -> str:
    """A realistic Python traceback of about ``size`` characters, with source lines."""
    parts = ["Traceback (most recent call last):\n"]
    i = 0
    while sum(len(p) for p in parts) < size:
        parts.append(
            f'  File "/srv/app/handlers/orders_{i % 9}.py", line {40 + i}, in create_order_{i % 4}\n'
            f"    customer = payload['customer']['id']  # token_count={i % 5}\n"
        )
        i += 1
    parts.append("KeyError: 'customer'\n")
    return "".join(parts)[:size]


def cpu_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.Timer(fn, timer=time.process_time).repeat(number=number, repeat=repeat)) / number * 1e6


def peak_kib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    repeat = 3 if args.quick else 7

    scrubber = Scrubber()
    baseline = re.compile("-----BEGIN")
    java, py = java_trace(20_000), python_trace(20_000)
    dirty = java[:10_000] + "\n".join(SECRETS) + java[10_000:]
    event = {
        "service": "orders",
        "error_type": "OperationalError",
        "error_message": MESSAGE,
        "stack_trace": py[:3_000],
        "additional_data": {"headers": {"X-Api-Key": "abc123", "Accept": "application/json"}, "retries": 3},
    }
    cases: list[tuple[str, str, int]] = [
        ("message 300 chars, clean", MESSAGE[:300], 20_000),
        ("java trace 20 KB, clean", java, 300),
        ("python trace 20 KB, clean", py, 300),
        ("java trace 20 KB, 7 secrets", dirty, 300),
    ]
    print(f"{'input':32s} {'scrub us':>9s} {'1 scan us':>9s} {'ratio':>6s} {'peak KiB':>9s}")
    for name, text, number in cases:
        scrub = cpu_us(functools.partial(scrubber.text, text), number, repeat)
        scan = cpu_us(functools.partial(baseline.search, text), number, repeat)
        peak = peak_kib(functools.partial(scrubber.text, text))
        print(f"{name:32s} {scrub:9.1f} {scan:9.2f} {scrub / scan:6.1f} {peak:9.1f}")
    data_us = cpu_us(lambda: scrubber.data(event), 5_000, repeat)
    print(f"{'data(): event dict, 3 KB trace':32s} {data_us:9.1f}")


if __name__ == "__main__":
    main()
