"""The recovery service on the database: conditions, proposal life cycle, outcomes, the seed config, audit."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from agent.recovery.conditions import Snapshot
from agent.recovery.config import Mode, load_recovery_config
from agent.recovery.models import AuditKind, ProposalStatus
from agent.recovery.service import ProposalNotFound, Recovery
from tests.conftest import REPO
from tests.test_recovery_support import (
    RESTART,
    SERVICES,
    T0,
    FakeClock,
    RecordingRunner,
    config,
    every,
    migrated,
    seed_events,
    seed_pattern,
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    yield from migrated(database_url)


def hits(engine: Engine, condition: dict[str, Any], now: dt.datetime = T0) -> dict[str, tuple[str | None, int]]:
    cfg = config({"services": SERVICES, "actions": [{**RESTART, "conditions": [condition]}]})
    cond = cfg.actions[0].conditions[0]
    with engine.connect() as conn:
        snapshot = Snapshot.load(conn, now, cond.window_minutes)
    return {h.service: (h.pattern_id, h.events) for h in snapshot.hits(cond)}


# -- conditions ------------------------------------------------------------------------------------------


def test_conditions_are_decided_from_stored_events(engine: Engine) -> None:
    recent = every(T0 - dt.timedelta(minutes=2), 3, 10)
    old = every(T0 - dt.timedelta(minutes=30), 3, 10)
    seed_pattern(engine, "pat_refused", "api", "ConnectionRefusedError", "connect to <*> refused")
    seed_events(
        engine,
        "pat_refused",
        recent,
        service="api",
        error_type="ConnectionRefusedError",
        message="[Errno 111] Connection refused",
    )
    seed_pattern(engine, "pat_health", "monitor", "HealthPing", "ping")
    seed_events(
        engine,
        "pat_health",
        recent[:1],
        service="monitor",
        error_type="HealthPing",
        message="ping",
        data={"health": "down", "target_service": "worker"},
    )
    seed_pattern(engine, "pat_oom", "worker", "ProcessExit", "worker exited")
    seed_events(
        engine,
        "pat_oom",
        recent[:2],
        service="worker",
        error_type="ProcessExit",
        message="worker exited",
        data={"exit_code": 137},
    )
    seed_pattern(engine, "pat_heap", "web", "Error", "heap")
    seed_events(
        engine,
        "pat_heap",
        recent[:1],
        service="web",
        error_type="Error",
        message="FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    )
    seed_pattern(engine, "pat_mem", "db", "Warning", "mem")
    seed_events(
        engine,
        "pat_mem",
        recent[:1],
        service="db",
        error_type="Warning",
        message="memory high",
        data={"memory_percent": "97%"},
    )
    seed_pattern(engine, "pat_pg", "ledger", "OperationalError", "pg")
    seed_events(
        engine,
        "pat_pg",
        recent,
        service="ledger",
        error_type="psycopg.OperationalError",
        message='connection to server at "db" (10.0.0.3), port 5432 failed: Connection refused',
    )
    seed_pattern(engine, "pat_disk", "builder", "OSError", "disk")
    seed_events(
        engine,
        "pat_disk",
        recent[:1],
        service="builder",
        error_type="OSError",
        message="[Errno 28] No space left on device",
    )
    seed_pattern(engine, "pat_old", "old", "ConnectionRefusedError", "old")
    seed_events(engine, "pat_old", old, service="old", error_type="ConnectionRefusedError", message="refused")

    down = hits(engine, {"type": "service_down"})
    assert down == {"api": ("pat_refused", 3), "worker": ("pat_health", 1), "ledger": ("pat_pg", 3)}
    assert hits(engine, {"type": "service_down", "min_events": 2, "services": ["api", "worker"]}) == {
        "api": ("pat_refused", 3)
    }
    assert set(hits(engine, {"type": "high_memory"})) == {"worker", "web", "db"}
    assert set(hits(engine, {"type": "high_memory", "memory_percent": 99})) == {"worker", "web"}
    assert hits(engine, {"type": "database_connection_failed"}) == {"ledger": ("pat_pg", 3)}
    assert hits(engine, {"type": "disk_full"}) == {"builder": ("pat_disk", 1)}
    assert "old" in hits(engine, {"type": "service_down", "window_minutes": 60})
    assert hits(engine, {"type": "pattern", "pattern_id": "pat_oom"}) == {"worker": ("pat_oom", 2)}
    assert hits(engine, {"type": "pattern", "error_type": "^Connection", "template": "refused"}) == {
        "api": ("pat_refused", 3)
    }
    assert hits(engine, {"type": "error_rate", "threshold_per_minute": 0.5}) == {
        "api": ("pat_refused", 3),
        "ledger": ("pat_pg", 3),
    }  # 3 events / 5 min = 0.6/min
    assert hits(engine, {"type": "error_rate", "threshold_per_minute": 0.6}) == {}
    assert hits(engine, {"type": "service_down"}, now=T0 - dt.timedelta(minutes=10)) == {}  # no future events


def test_conditions_propose_once_per_target_and_auto_runs_only_while_they_hold(engine: Engine) -> None:
    clock = FakeClock()
    runner = RecordingRunner()
    cfg = config(
        {
            "services": SERVICES,
            "actions": [
                {
                    **RESTART,
                    "mode": "auto",
                    "conditions": [{"type": "service_down", "window_minutes": 5}],
                    "cooldown_minutes": 30,
                }
            ],
        }
    )
    recovery = Recovery(engine, cfg, clock=clock, runner=runner, dry_run=False)
    seed_pattern(engine, "pat_down", "api", "ConnectionRefusedError", "refused")
    seed_events(
        engine,
        "pat_down",
        [T0 - dt.timedelta(minutes=1)],
        service="api",
        error_type="ConnectionRefusedError",
        message="Connection refused",
    )
    seed_events(
        engine,
        "pat_down",
        [T0 - dt.timedelta(minutes=1)],
        service="payments",
        error_type="ConnectionRefusedError",
        message="Connection refused",
    )  # not an allowed service
    results = recovery.evaluate_conditions()
    assert sorted(r.status for r in results) == ["proposed", "refused"]
    assert [r.status for r in recovery.evaluate_conditions()] == ["duplicate", "refused"]
    refused = [e for e in recovery.audit() if e.kind is AuditKind.refused]
    assert len(refused) == 1 and "payments" in refused[0].reason  # repeated refusals are audited once

    recovery.tick()
    assert runner.argvs == [["/usr/bin/docker", "compose", "restart", "api"]]
    clock.advance(minutes=40)  # cooldown over, but the condition no longer holds: nothing new
    recovery.tick()
    assert len(runner.calls) == 1


def test_all_conditions_must_hold_for_the_same_service(engine: Engine) -> None:
    clock = FakeClock()
    cfg = config(
        {
            "services": SERVICES,
            "actions": [{**RESTART, "match": "all", "conditions": [{"type": "service_down"}, {"type": "high_memory"}]}],
        }
    )
    recovery = Recovery(engine, cfg, clock=clock, runner=RecordingRunner())
    seed_pattern(engine, "pat_a", "api", "ConnectionRefusedError", "x")
    seed_events(
        engine,
        "pat_a",
        [T0 - dt.timedelta(minutes=1)],
        service="api",
        error_type="ConnectionRefusedError",
        message="Connection refused",
    )
    seed_events(
        engine,
        "pat_a",
        [T0 - dt.timedelta(minutes=1)],
        service="worker",
        error_type="MemoryError",
        message="MemoryError",
    )
    assert recovery.evaluate_conditions() == []
    seed_events(
        engine, "pat_a", [T0 - dt.timedelta(minutes=1)], service="api", error_type="MemoryError", message="MemoryError"
    )
    (result,) = recovery.evaluate_conditions()
    assert result.params == {"service": "api"}


# -- the proposal life cycle -----------------------------------------------------------------------------


def test_approve_and_deny_rules(engine: Engine) -> None:
    clock = FakeClock()
    runner = RecordingRunner()
    cfg = config({"services": SERVICES, "actions": [RESTART, {**RESTART, "id": "advice_only", "mode": "propose"}]})
    recovery = Recovery(engine, cfg, clock=clock, runner=runner, dry_run=False)
    advice = recovery.propose("advice_only", {"service": "api"}, source="manual", actor="t")
    assert advice.status == "proposed" and advice.proposal_id is not None
    refused = recovery.approve(advice.proposal_id, "admin")
    assert refused.status == "refused" and "propose mode" in refused.reason
    recovery.tick()
    assert runner.calls == []

    p = recovery.propose("restart_service", {"service": "db"}, source="manual", actor="t")
    assert p.proposal_id is not None
    assert recovery.deny(p.proposal_id, "admin:ops", "not now\nplease").status == "denied"
    assert recovery.approve(p.proposal_id, "admin").status == "refused"  # denied stays denied
    assert recovery.deny(p.proposal_id, "admin", "again").status == "refused"
    with pytest.raises(ProposalNotFound):
        recovery.approve(9999, "admin")
    recovery.tick()
    assert runner.calls == []
    audit = {e.kind for e in recovery.audit()}
    assert {AuditKind.proposed, AuditKind.refused, AuditKind.denied} <= audit
    denied = next(e for e in recovery.audit() if e.kind is AuditKind.denied)
    assert denied.reason == "not now please" and denied.actor == "admin:ops"


def test_open_proposals_expire_and_interrupted_runs_fail(engine: Engine) -> None:
    clock = FakeClock()
    recovery = Recovery(
        engine,
        config({"services": SERVICES, "proposal_ttl_minutes": 30, "actions": [RESTART]}),
        clock=clock,
        runner=RecordingRunner(),
    )
    p = recovery.propose("restart_service", {"service": "api"}, source="manual", actor="t")
    assert p.proposal_id is not None
    clock.advance(minutes=31)
    recovery.tick()
    proposal = recovery.proposal(p.proposal_id)
    assert proposal is not None and proposal.status is ProposalStatus.expired
    again = recovery.propose("restart_service", {"service": "api"}, source="manual", actor="t")
    assert again.status == "approval_required"  # the expired one no longer blocks a new one

    assert again.proposal_id is not None
    with engine.begin() as conn:  # as if a worker died mid-run
        conn.execute(
            text("UPDATE recovery_proposals SET status = 'running', started_at = :t WHERE id = :i"),
            {"t": clock().replace(tzinfo=None) if engine.dialect.name == "sqlite" else clock(), "i": again.proposal_id},
        )
    clock.advance(minutes=10)
    recovery.tick()
    proposal = recovery.proposal(again.proposal_id)
    assert proposal is not None and proposal.status is ProposalStatus.failed
    assert any("interrupted" in e.reason for e in recovery.audit() if e.kind is AuditKind.failed)


def test_a_changed_allow_list_invalidates_open_proposals(engine: Engine) -> None:
    clock = FakeClock()
    runner = RecordingRunner()
    before = Recovery(
        engine, config({"services": SERVICES, "actions": [RESTART]}), clock=clock, runner=runner, dry_run=False
    )
    first = before.propose("restart_service", {"service": "api"}, source="manual", actor="t")
    second = before.propose("restart_service", {"service": "worker"}, source="manual", actor="t")
    assert first.proposal_id is not None and second.proposal_id is not None
    before.approve(first.proposal_id, "admin")
    # restart: the template changed, and `worker` is no longer a service
    after = Recovery(
        engine,
        config(
            {
                "services": ["api", "db"],
                "actions": [
                    {**RESTART, "argv": ["/usr/bin/docker", "compose", "--ansi", "never", "restart", "{service}"]}
                ],
            }
        ),
        clock=clock,
        runner=runner,
        dry_run=False,
    )
    after.tick()
    assert runner.calls == []
    reasons = [e.reason for e in after.audit() if e.kind is AuditKind.refused]
    assert any("template changed" in r for r in reasons)
    assert after.approve(second.proposal_id, "admin").status == "refused"


# -- outcomes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "status", "escalated"),
    [
        (30, 30, "not_improved", True),
        (30, 2, "improved", False),
        (0, 0, "inconclusive", False),
        (2, 5, "not_improved", True),
    ],
)
def test_outcome_compares_the_error_rate_before_and_after(
    engine: Engine, before: int, after: int, status: str, escalated: bool
) -> None:
    clock = FakeClock()
    runner = RecordingRunner()
    recovery = Recovery(
        engine,
        config({"services": SERVICES, "actions": [{**RESTART, "outcome_window_minutes": 10}]}),
        clock=clock,
        runner=runner,
        dry_run=False,
    )
    seed_pattern(engine, "pat_x", "api")
    if before:
        seed_events(engine, "pat_x", every(T0 - dt.timedelta(minutes=10), before, 600 / before))
    if after:
        seed_events(engine, "pat_x", every(T0 + dt.timedelta(seconds=1), after, 590 / after))
    seed_events(engine, "pat_x", [T0 + dt.timedelta(minutes=11)] * 50)  # after the window: not counted
    p = recovery.propose("restart_service", {"service": "api"}, source="manual", actor="t", pattern_id="pat_x")
    assert p.proposal_id is not None
    recovery.approve(p.proposal_id, "admin")
    recovery.tick()
    assert len(runner.calls) == 1
    (pending,) = recovery.outcomes_for_pattern("pat_x")
    assert pending.status == "pending"

    clock.advance(minutes=9)
    recovery.tick()
    assert recovery.outcomes_for_pattern("pat_x")[0].status == "pending"  # the window is not over yet
    clock.advance(minutes=1, seconds=1)
    recovery.tick()
    (outcome,) = recovery.outcomes_for_pattern("pat_x")
    assert outcome.status == status and outcome.escalated is escalated
    assert outcome.rate_before == pytest.approx(before / 10) and outcome.rate_after == pytest.approx(after / 10)
    proposal = recovery.proposal(p.proposal_id)
    assert proposal is not None
    assert proposal.status is (ProposalStatus.escalated if escalated else ProposalStatus.succeeded)
    kinds = [e.kind for e in recovery.audit()]
    assert (AuditKind.escalated in kinds) is escalated
    assert (AuditKind.outcome_failed if escalated else AuditKind.outcome_ok) in kinds
    if escalated:
        assert "did not reduce pat_x" in outcome.note and "escalated" in outcome.note
    recovery.tick()
    assert len(recovery.audit(limit=1000)) == len(kinds)  # judged once


def test_a_run_that_failed_is_an_outcome_too(engine: Engine) -> None:
    from tests.test_recovery_support import FAIL

    recovery = Recovery(
        engine,
        config({"services": SERVICES, "actions": [RESTART]}),
        clock=FakeClock(),
        runner=RecordingRunner([FAIL]),
        dry_run=False,
    )
    seed_pattern(engine, "pat_y", "api")
    p = recovery.propose("restart_service", {"service": "api"}, source="manual", actor="t", pattern_id="pat_y")
    assert p.proposal_id is not None
    recovery.approve(p.proposal_id, "admin")
    recovery.tick()
    (outcome,) = recovery.outcomes_for_pattern("pat_y")
    assert outcome.status == "run_failed" and "exit code 1" in outcome.note
    assert recovery.outcomes_for_pattern("pat_other") == []


# -- the seed's config -----------------------------------------------------------------------------------


def test_the_seed_example_behaves_as_documented(engine: Engine) -> None:
    """Propose mode: conditions produce proposals with the exact argv; nothing runs; approvals are refused."""
    clock = FakeClock()
    runner = RecordingRunner()
    cfg = load_recovery_config(REPO / "knowledge" / "error_monitor_config.example.json")
    recovery = Recovery(engine, cfg, clock=clock, runner=runner, dry_run=False)
    seed_pattern(engine, "pat_orch", "ai-orchestrator", "ConnectionRefusedError", "x")
    seed_events(
        engine,
        "pat_orch",
        [T0 - dt.timedelta(minutes=1)],
        service="ai-orchestrator",
        error_type="ConnectionRefusedError",
        message="[Errno 111] Connection refused",
    )
    seed_pattern(engine, "pat_db", "event-store", "OperationalError", "y")
    seed_events(
        engine,
        "pat_db",
        [T0 - dt.timedelta(minutes=1)],
        service="event-store",
        error_type="sqlx::Error",
        message="error communicating with database: could not connect to server: Connection refused",
    )
    recovery.tick()
    proposals = {p.action_id: p for p in recovery.proposals()}
    assert proposals["restart_service"].argv == ["docker", "compose", "restart", "ai-orchestrator"]
    assert proposals["restart_service"].pattern_id == "pat_orch"
    assert proposals["restart_database"].argv == ["docker", "compose", "restart", "postgres"]
    assert all(p.status is ProposalStatus.proposed for p in proposals.values())
    assert runner.calls == []
    refused = recovery.approve(proposals["restart_service"].id, "admin")
    assert refused.status == "refused" and "propose mode" in refused.reason
    infos = {i.id: i.description for i in recovery.action_infos()}
    assert "ai-orchestrator" in infos["restart_service"] and "docker compose restart" in infos["restart_service"]


def test_seed_entries_in_approve_mode_run_after_approval_as_a_dry_run_by_default(engine: Engine) -> None:
    clock = FakeClock()
    runner = RecordingRunner()
    cfg = load_recovery_config(REPO / "knowledge" / "error_monitor_config.example.json")
    cfg = cfg.model_copy(update={"actions": [a.model_copy(update={"mode": Mode.approve}) for a in cfg.actions]})
    recovery = Recovery(engine, cfg, clock=clock, runner=runner)  # dry_run defaults to True
    p = recovery.propose("restart_service", {"service": "event-store"}, source="manual", actor="t")
    assert p.proposal_id is not None and recovery.approve(p.proposal_id, "admin").status == "approved"
    recovery.tick()
    assert runner.calls == []
    (row,) = [e for e in recovery.audit() if e.kind is AuditKind.dry_run]
    assert row.argv == ["docker", "compose", "restart", "event-store"]


# -- the audit is append-only, processes start in one module -----------------------------------------------


def test_the_database_refuses_to_change_or_delete_audit_rows(engine: Engine) -> None:
    recovery = Recovery(engine, config({"services": SERVICES, "actions": [RESTART]}), clock=FakeClock())
    recovery.propose("nope", {}, source="manual", actor="t")
    assert len(recovery.audit()) == 1
    for statement in ("UPDATE recovery_audit SET reason = 'forged'", "DELETE FROM recovery_audit"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert recovery.audit()[0].reason.startswith("unknown action id")


RECOVERY = REPO / "agent" / "recovery"


def _code(path: Path) -> str:
    return path.read_text()


def test_no_code_path_updates_or_deletes_the_audit() -> None:
    sources = {
        p: _code(p)
        for p in [
            *RECOVERY.glob("*.py"),
            REPO / "agent" / "api" / "routes" / "recovery.py",
            REPO / "agent" / "cli" / "recovery.py",
        ]
    }
    for path, code in sources.items():
        assert not re.search(
            r"(update|delete)\(\s*AUDIT|AUDIT\.(update|delete)|RecoveryAuditRow\)\.(update|delete)", code
        ), path
        assert not re.search(r"(UPDATE|DELETE FROM)\s+recovery_audit", code, re.I), path
    store = _code(RECOVERY / "store.py")
    assert store.count("insert(AUDIT)") == 1


def test_only_the_executor_starts_processes() -> None:
    for path in RECOVERY.glob("*.py"):
        code = _code(path)
        imports_subprocess = re.search(r"^\s*(import subprocess|from subprocess )", code, re.M)
        assert bool(imports_subprocess) == (path.name == "executor.py"), path
        assert not re.search(r"os\.(system|popen|exec\w*|spawn\w*|posix_spawn\w*)\(|import pty|shell=True", code), path
    pyproject = _code(REPO / "pyproject.toml")
    assert '"subprocess".msg' in pyproject  # ruff TID251 keeps subprocess out of everything else
