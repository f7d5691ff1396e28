"""Cooldown, hourly rate cap and circuit breaker, stepped with an injected clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from agent.recovery.models import AuditKind, ProposalStatus
from agent.recovery.policy import Policy, RunRecord, RunResult
from agent.recovery.service import Recovery
from tests.test_recovery_support import FAIL, OK, RESTART, SERVICES, T0, FakeClock, RecordingRunner, config, migrated

ACTION = config(
    {
        "services": SERVICES,
        "actions": [{**RESTART, "cooldown_minutes": 10, "max_runs_per_hour": 3, "breaker_threshold": 2}],
    }
).actions[0]


def run(minutes_ago: float, result: RunResult = RunResult.ok, target: str = "service=api") -> RunRecord:
    return RunRecord("restart_service", target, T0 - dt.timedelta(minutes=minutes_ago), result)


# -- the pure policy -------------------------------------------------------------------------------------


def test_no_history_allows() -> None:
    assert Policy(FakeClock()).check(ACTION, "service=api", []).allowed


def test_cooldown_is_per_target_and_ends() -> None:
    clock = FakeClock()
    history = [run(4)]
    verdict = Policy(clock).check(ACTION, "service=api", history)
    assert not verdict.allowed and verdict.code == "cooldown"
    assert verdict.retry_at == T0 + dt.timedelta(minutes=6)
    assert Policy(clock).check(ACTION, "service=db", history).allowed  # another target
    clock.advance(minutes=6)
    assert Policy(clock).check(ACTION, "service=api", history).allowed


def test_dry_runs_count_for_cooldown_and_rate() -> None:
    clock = FakeClock()
    assert Policy(clock).check(ACTION, "service=api", [run(1, RunResult.dry_run)]).code == "cooldown"
    dry = [run(m, RunResult.dry_run, f"service=s{m}") for m in (10, 20, 30)]
    assert Policy(clock).check(ACTION, "service=api", dry).code == "rate_limited"


def test_rate_cap_counts_every_target_in_a_sliding_hour() -> None:
    clock = FakeClock()
    history = [run(15, target="service=db"), run(30, target="service=worker"), run(50, target="service=x")]
    verdict = Policy(clock).check(ACTION, "service=api", history)
    assert not verdict.allowed and verdict.code == "rate_limited"
    assert verdict.retry_at == T0 + dt.timedelta(minutes=10)  # when the oldest of the three leaves the hour
    clock.advance(minutes=10, seconds=1)
    assert Policy(clock).check(ACTION, "service=api", history).allowed


def test_breaker_opens_after_consecutive_failures_and_a_reset_closes_it() -> None:
    clock = FakeClock()
    history = [run(70, RunResult.failed), run(80, RunResult.failed)]
    verdict = Policy(clock).check(ACTION, "service=api", history)
    assert not verdict.allowed and verdict.code == "breaker_open"
    assert Policy(clock).check(ACTION, "service=api", history, reset_at=T0 - dt.timedelta(minutes=75)).allowed
    assert Policy(clock).check(ACTION, "service=api", history, reset_at=T0 - dt.timedelta(minutes=1)).allowed


@pytest.mark.parametrize(
    ("results", "failures"),
    [
        ([RunResult.failed, RunResult.ok, RunResult.failed], 1),  # a good run ends the streak
        ([RunResult.failed, RunResult.pending, RunResult.failed], 2),  # pending is neutral
        ([RunResult.dry_run, RunResult.failed, RunResult.failed], 2),  # dry runs are neutral
        ([RunResult.ok, RunResult.failed, RunResult.failed], 0),
    ],
)
def test_consecutive_failures(results: list[RunResult], failures: int) -> None:
    history = [run(70 + i, r) for i, r in enumerate(results)]
    assert Policy.consecutive_failures(history) == failures


# -- through the service, on the database ----------------------------------------------------------------


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    yield from migrated(database_url)


def approve_new(recovery: Recovery, service: str) -> int:
    result = recovery.propose("restart_service", {"service": service}, source="manual", actor="test")
    assert result.status == "approval_required" and result.proposal_id is not None
    assert recovery.approve(result.proposal_id, "admin").status == "approved"
    return result.proposal_id


def kinds(recovery: Recovery) -> list[str]:
    return [e.kind.value for e in reversed(recovery.audit(limit=1000))]


def test_cooldown_and_rate_cap_with_the_service(engine: Engine) -> None:
    clock = FakeClock()
    runner = RecordingRunner()
    recovery = Recovery(
        engine,
        config({"services": SERVICES, "actions": [{**RESTART, "cooldown_minutes": 10, "max_runs_per_hour": 2}]}),
        clock=clock,
        runner=runner,
        dry_run=False,
    )
    approve_new(recovery, "api")
    recovery.tick()
    assert len(runner.calls) == 1

    second = approve_new(recovery, "api")
    clock.advance(minutes=1)
    recovery.tick()
    recovery.tick()  # still cooling down: audited once, not once per tick
    assert len(runner.calls) == 1
    skipped = [e for e in recovery.audit() if e.kind is AuditKind.skipped]
    assert len(skipped) == 1 and skipped[0].reason.startswith("cooldown") and skipped[0].proposal_id == second
    p = recovery.proposal(second)
    assert p is not None and p.status is ProposalStatus.approved

    clock.advance(minutes=9, seconds=1)
    recovery.tick()
    assert len(runner.calls) == 2  # the cooldown ended: the approved proposal ran

    approve_new(recovery, "worker")  # another target: no cooldown, but the hourly cap (2) is reached
    clock.advance(minutes=1)
    recovery.tick()
    assert len(runner.calls) == 2
    assert next(e for e in recovery.audit() if e.kind is AuditKind.skipped).reason.startswith("rate_limited")
    clock.advance(minutes=50)  # the first run (at T0) leaves the hour
    recovery.tick()
    assert [c.argv[-1] for c in runner.calls] == ["api", "api", "worker"]


def test_breaker_disables_the_action_until_reset(engine: Engine) -> None:
    clock = FakeClock()
    runner = RecordingRunner([FAIL, FAIL, OK])
    recovery = Recovery(
        engine,
        config(
            {
                "services": SERVICES,
                "actions": [{**RESTART, "cooldown_minutes": 0, "breaker_threshold": 2, "max_runs_per_hour": 50}],
            }
        ),
        clock=clock,
        runner=runner,
        dry_run=False,
    )
    for service in ("api", "worker"):
        approve_new(recovery, service)
        clock.advance(minutes=1)
        recovery.tick()
    assert len(runner.calls) == 2
    assert kinds(recovery).count("breaker_open") == 1
    (view,) = recovery.actions()
    assert view.breaker_open and view.consecutive_failures == 2

    third = approve_new(recovery, "db")
    clock.advance(minutes=1)
    recovery.tick()
    assert len(runner.calls) == 2
    assert recovery.audit()[0].kind is AuditKind.skipped and "circuit breaker open" in recovery.audit()[0].reason

    recovery.reset_breaker("restart_service", "admin:ops")
    clock.advance(minutes=1)
    recovery.tick()
    assert [c.argv[-1] for c in runner.calls] == ["api", "worker", "db"]
    p = recovery.proposal(third)
    assert p is not None and p.status is ProposalStatus.succeeded
    assert not recovery.actions()[0].breaker_open


def test_a_failed_outcome_counts_towards_the_breaker(engine: Engine) -> None:
    from tests.test_recovery_support import every, seed_events, seed_pattern

    clock = FakeClock()
    runner = RecordingRunner()
    recovery = Recovery(
        engine,
        config(
            {
                "services": SERVICES,
                "actions": [{**RESTART, "cooldown_minutes": 0, "breaker_threshold": 1, "outcome_window_minutes": 10}],
            }
        ),
        clock=clock,
        runner=runner,
        dry_run=False,
    )
    seed_pattern(engine, "pat_busy", "api")
    seed_events(engine, "pat_busy", every(T0 - dt.timedelta(minutes=10), 60, 20))  # 3/min before and after
    pid = recovery.propose("restart_service", {"service": "api"}, source="manual", actor="t", pattern_id="pat_busy")
    assert pid.proposal_id is not None
    recovery.approve(pid.proposal_id, "admin")
    recovery.tick()
    assert len(runner.calls) == 1 and not recovery.actions()[0].breaker_open  # exit 0; outcome still pending
    clock.advance(minutes=10, seconds=1)
    recovery.tick()
    assert recovery.actions()[0].breaker_open
    assert "breaker_open" in kinds(recovery)


def test_concurrent_workers_never_exceed_the_rate_cap_together(engine: Engine) -> None:
    """Claim and policy check are one serialised transaction per action, so racing workers cannot both pass."""
    import threading
    import time

    from agent.recovery.executor import RunOutcome

    class SlowRunner(RecordingRunner):
        def run(self, argv: list[str], **kw: object) -> RunOutcome:  # type: ignore[override]
            time.sleep(0.2)
            return super().run(argv, **kw)  # type: ignore[arg-type]

    runner = SlowRunner()
    cfg = config({"services": [f"s{i}" for i in range(4)], "actions": [
        {**RESTART, "cooldown_minutes": 0, "max_runs_per_hour": 2}]})  # fmt: skip
    clock = FakeClock()
    workers = [Recovery(engine, cfg, clock=clock, runner=runner, dry_run=False) for _ in range(4)]
    ids = [approve_new(workers[0], f"s{i}") for i in range(4)]
    proposals = [workers[0].proposal(i) for i in ids]
    start = threading.Barrier(len(workers))

    def race(worker: Recovery, index: int) -> None:
        p = proposals[index]
        assert p is not None
        start.wait()
        worker.runs.execute(p, None)  # each worker a different proposal of the same action, at once

    threads = [threading.Thread(target=race, args=(w, i)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(runner.calls) == 2
    for w in workers:  # and whole ticks afterwards add nothing, nor run anything twice
        w.tick()
    assert len(runner.calls) == 2
