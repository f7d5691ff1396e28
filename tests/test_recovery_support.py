"""Shared set-up for the recovery tests: a fake clock, a recording runner, seeded events, configs.

Imported by the other `test_recovery_*` modules; the tests here check the helpers themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, insert

from agent.recovery.config import RecoveryConfig, parse_recovery_config
from agent.recovery.executor import RunOutcome
from agent.store.db import make_engine, migrate
from agent.store.tables import EventRow, PatternRow

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=6)
"""Recent enough for the ingest API's timestamp check; far enough back to step forward freely."""


class FakeClock:
    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@dataclass
class Call:
    argv: list[str]
    timeout_s: float
    cwd: Path | None
    env: dict[str, str]


@dataclass
class RecordingRunner:
    """Runs nothing; records every argv it is asked to run and answers with `results` in turn (default ok)."""

    results: list[RunOutcome] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def run(self, argv: list[str], *, timeout_s: float, cwd: Path | None, env: dict[str, str]) -> RunOutcome:
        self.calls.append(Call(list(argv), timeout_s, cwd, dict(env)))
        return self.results.pop(0) if self.results else RunOutcome(0, "ok\n", "")

    @property
    def argvs(self) -> list[list[str]]:
        return [c.argv for c in self.calls]


OK = RunOutcome(0, "done\n", "")
FAIL = RunOutcome(1, "", "boom\n")


def migrated(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def config(raw: dict[str, Any]) -> RecoveryConfig:
    return parse_recovery_config(raw, source="test")


def seed_pattern(
    engine: Engine,
    pattern_id: str,
    service: str,
    error_type: str = "RuntimeError",
    template: str = "something failed",
    at: dt.datetime = T0,
) -> str:
    with engine.begin() as conn:
        conn.execute(
            insert(cast(Table, PatternRow.__table__)).values(
                id=pattern_id,
                fingerprint=f"fp-{pattern_id}",
                service=service,
                error_type=error_type,
                template=template,
                method="template",
                reason="test",
                first_seen=at,
                last_seen=at,
                count=0,
                max_severity="high",
            )
        )
    return pattern_id


_seq = iter(range(1, 10**9))


def seed_events(
    engine: Engine,
    pattern_id: str,
    times: list[dt.datetime],
    *,
    service: str = "api",
    error_type: str = "RuntimeError",
    message: str = "something failed",
    data: dict[str, Any] | None = None,
) -> None:
    """Insert events with chosen receive times (the clock the conditions and outcome checks read)."""
    rows = [
        dict(
            id=f"ev_{next(_seq):08d}",
            pattern_id=pattern_id,
            service=service,
            context="",
            error_type=error_type,
            error_message=message,
            severity="high",
            kind="runtime",
            stack_trace=None,
            stack_truncated=False,
            additional_data=data or {},
            timestamp=t,
            received_at=t,
        )
        for t in times
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(cast(Table, EventRow.__table__)), rows)


def every(start: dt.datetime, n: int, seconds: float) -> list[dt.datetime]:
    return [start + dt.timedelta(seconds=i * seconds) for i in range(n)]


RESTART = {
    "id": "restart_service",
    "description": "Restart one service",
    "argv": ["/usr/bin/docker", "compose", "restart", "{service}"],
    "params": {"service": {"allowed_from": "services"}},
    "mode": "approve",
}
SERVICES = ["api", "worker", "db"]


# -- the helpers themselves ----------------------------------------------------------------------------


def test_fake_clock_steps() -> None:
    clock = FakeClock()
    assert clock() == T0
    assert clock.advance(minutes=5) == T0 + dt.timedelta(minutes=5)


def test_recording_runner_records_and_answers_in_turn() -> None:
    runner = RecordingRunner([FAIL])
    assert runner.run(["/bin/x", "a"], timeout_s=1, cwd=None, env={}).exit_code == 1
    assert runner.run(["/bin/y"], timeout_s=1, cwd=None, env={}).ok
    assert runner.argvs == [["/bin/x", "a"], ["/bin/y"]]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    yield from migrated(database_url)


def test_seeded_events_have_the_chosen_receive_times(engine: Engine) -> None:
    from sqlalchemy import select

    seed_pattern(engine, "pat_seed", "api")
    seed_events(engine, "pat_seed", every(T0, 3, 60))
    with engine.connect() as conn:
        times = sorted(r.received_at for r in conn.execute(select(EventRow.__table__.c.received_at)))
    assert times == every(T0, 3, 60)
