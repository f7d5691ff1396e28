"""Two real `errlearn serve` processes on one PostgreSQL give the pattern assignment of one process."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _reset_postgres
from tests.support import ADMIN_KEY, INGEST_KEY, LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

USERS = ["root", "admin", "test", "guest", "oracle", "git", "news", "cyrus"]


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    """The issue's errors (hex ids, hosts, IPs varying), two unrelated errors of one service and type, and
    a family that only the merge pass joins (a user name in one place)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randrange(5)
        x = rng.randrange(2**32)
        msg = [
            f"request {x:08x} to http://10.0.0.{x % 200}/api timed out after 30s",
            f"cache miss for key user:{x % 1000} in shard {x % 8}",
            f"lock timeout on table orders after {x % 5} s",
            f"Invalid user {USERS[x % len(USERS)]} from 10.{x % 250}.0.{x % 7}",
            f"Connection to db-{x % 5}.internal:5432 refused (req {uuid.UUID(int=x)})",
        ][k]
        out.append(
            {
                "service": "api",
                "error_type": "RuntimeError",
                "error_message": msg,
                "severity": "high",
                "context": f"case-{i}",
            }
        )
    return out


def _send(url: str, events: Sequence[dict[str, Any]], seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {INGEST_KEY}"}, timeout=60) as c:
        i = 0
        while i < len(events):
            size = rng.choice([1, 3, 10, 40])
            chunk = list(events[i : i + size])
            r = c.post("/errors/batch", json={"errors": chunk})
            assert r.status_code == 202, r.text
            i += size


def _merge(url: str) -> None:
    r = httpx.post(url + "/patterns/merge-pass", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)
    assert r.status_code == 200, r.text


def _groups(url: str) -> set[frozenset[str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT context, pattern_id FROM events")).all()
    engine.dispose()
    by: dict[str, set[str]] = {}
    for ctx, pid in rows:
        by.setdefault(pid, set()).add(ctx)
    return {frozenset(v) for v in by.values()}


def _servers(tmp: Path, db: str, n: int) -> list[LiveServer]:
    servers = [
        LiveServer(tmp / f"r{i}", env={"ERRLEARN_DATABASE_URL": db, "ERRLEARN_WORKER": "false"}) for i in range(n)
    ]
    for s in servers:
        s.data_dir.mkdir(parents=True)
    with ThreadPoolExecutor(n) as pool:  # start together on the empty database: all must come up
        list(pool.map(lambda s: s.start(timeout=120), servers))
    return servers


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_replicas_in_random_interleavings_group_like_one_process(database_url: str, tmp_path: Path) -> None:
    events = _events(600, seed=13)

    (one,) = _servers(tmp_path / "single", database_url, 1)
    try:
        _send(one.url, events, seed=0)
        _merge(one.url)
    finally:
        one.stop()
    reference = _groups(database_url)
    assert len(reference) == 5, sorted(len(g) for g in reference)  # one group per error, users merged

    for round_no in range(2):
        _reset_postgres(database_url)
        replicas = _servers(tmp_path / f"pair{round_no}", database_url, 2)
        try:
            rng = random.Random(100 + round_no)
            halves: list[list[dict[str, Any]]] = [[], []]
            for ev in events:
                halves[rng.randrange(2)].append(ev)
            threads = [
                threading.Thread(target=_send, args=(r.url, half, round_no * 10 + k))
                for k, (r, half) in enumerate(zip(replicas, halves, strict=True))
            ]
            for t in threads:
                t.start()
            _merge(replicas[1].url)  # a merge pass while both replicas ingest
            for t in threads:
                t.join(120)
            with ThreadPoolExecutor(2) as pool:  # both replicas run the pass at once: the lock makes it one
                list(pool.map(lambda r: _merge(r.url), replicas))
        finally:
            for r in replicas:
                r.stop()
        assert _groups(database_url) == reference, f"round {round_no}"
