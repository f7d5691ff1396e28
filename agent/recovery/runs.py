"""Running proposals: claim them under the policy, run them, record everything, judge outcomes.

`Runs._run` is the one place in errlearn where a recovery process is started. It is reached only
from `execute`, with an argv the guard rebuilt from the allow-listed template just now, for a
proposal that an admin approved or whose action is `auto` with its conditions holding now (from
stored data), after the cooldown, rate cap and circuit breaker allowed it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from agent.ingest.scrub import Scrubber
from agent.recovery import outcome as outcomes
from agent.recovery import store
from agent.recovery.conditions import Snapshot
from agent.recovery.config import ActionSpec, Mode, RecoveryConfig
from agent.recovery.executor import CommandRunner, RunOutcome, clip
from agent.recovery.guard import Checked, Refusal, recheck
from agent.recovery.models import OPEN_STATUSES, AuditKind, Outcome, Proposal, ProposalResult, ProposalStatus
from agent.recovery.policy import Policy, Verdict
from agent.recovery.triggers import holding, load_snapshot

Clock = Callable[[], dt.datetime]
INTERRUPTED_GRACE = dt.timedelta(minutes=2)
"""A run still marked running this long after its timeout was cut off (its process died)."""


class _Blocked(Exception):
    """Raised inside the claim transaction to roll it back when the policy says no."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


def _lock_key(action_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"errlearn-recovery:{action_id}".encode()).digest()[:8], "big", signed=True)


class Runs:
    """Executes due proposals and judges their outcomes; every step is audited."""

    def __init__(
        self, engine: Engine, config: RecoveryConfig, *, clock: Clock, runner: CommandRunner, dry_run: bool
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.runner = runner
        self.dry_run = dry_run
        self.policy = Policy(clock)
        self._scrubber = Scrubber()

    def audit(self, conn: Connection, kind: AuditKind, actor: str, **fields: Any) -> None:
        store.append_audit(conn, at=self.clock(), kind=kind, actor=actor, **fields)

    def audit_proposal(self, conn: Connection, kind: AuditKind, actor: str, p: Proposal, **fields: Any) -> None:
        """Audit a decision about a proposal: its action, pattern, argv and parameters go with it."""
        self.audit(
            conn,
            kind,
            actor,
            action_id=p.action_id,
            proposal_id=p.id,
            pattern_id=p.pattern_id,
            argv=p.argv,
            params=p.params,
            **fields,
        )

    def close_refused(self, conn: Connection, p: Proposal, refusal: Refusal, actor: str) -> ProposalResult:
        """Expire a proposal that no longer passes the guard, and audit why."""
        store.transition(conn, p.id, [p.status], ProposalStatus.expired, self.clock(), blocked_reason=refusal.reason)
        self.audit_proposal(
            conn,
            AuditKind.refused,
            actor,
            p,
            reason=refusal.reason,
        )
        return ProposalResult(
            status="refused", action_id=p.action_id, params=p.params, proposal_id=p.id, reason=refusal.reason
        )

    # -- housekeeping ----------------------------------------------------------------------------
    def expire_stale(self) -> None:
        """Expire open proposals past their TTL; fail runs whose process died before recording a result."""
        now = self.clock()
        ttl = dt.timedelta(minutes=self.config.proposal_ttl_minutes)
        with self.engine.begin() as conn:
            for p in store.list_proposals(conn, status=OPEN_STATUSES, limit=10_000):
                if p.created_at < now - ttl and store.transition(
                    conn, p.id, OPEN_STATUSES, ProposalStatus.expired, now
                ):
                    self.audit_proposal(
                        conn,
                        AuditKind.expired,
                        "system",
                        p,
                        reason=f"not run within {self.config.proposal_ttl_minutes:g} minutes",
                    )
            for p in store.list_proposals(conn, status=[ProposalStatus.running], limit=1000):
                action = self.config.action(p.action_id)
                limit = dt.timedelta(seconds=action.timeout_seconds if action else 3600) + INTERRUPTED_GRACE
                if p.started_at is None or p.started_at >= now - limit:
                    continue
                if store.transition(
                    conn,
                    p.id,
                    [ProposalStatus.running],
                    ProposalStatus.failed,
                    now,
                    finished_at=now,
                    run_status="error",
                    note="interrupted: the process running it stopped",
                ):
                    self.audit_proposal(
                        conn,
                        AuditKind.failed,
                        "system",
                        p,
                        reason="interrupted: the errlearn process running it stopped before recording a result",
                    )

    # -- execution -------------------------------------------------------------------------------
    def execute_due(self) -> list[ProposalResult]:
        """Run approved proposals, and proposals of `auto` actions whose conditions hold now."""
        with self.engine.connect() as conn:
            due = sorted(store.list_proposals(conn, status=OPEN_STATUSES, limit=1000), key=lambda p: p.id)
        snapshot: Snapshot | None = None
        results = []
        for p in due:
            action = self.config.action(p.action_id)
            if p.status is ProposalStatus.proposed and (action is None or action.mode is not Mode.auto):
                continue  # waits for an admin
            if p.status is ProposalStatus.proposed and snapshot is None:
                snapshot = load_snapshot(self.engine, self.config, self.clock())
            result = self.execute(p, snapshot)
            if result is not None:
                results.append(result)
        return results

    def execute(self, p: Proposal, snapshot: Snapshot | None) -> ProposalResult | None:
        """Run one open proposal if everything allows it; None when it waits for an admin or another worker."""
        checked = recheck(self.config, p.action_id, p.params, p.argv)
        if isinstance(checked, Refusal):
            with self.engine.begin() as conn:
                return self.close_refused(conn, p, checked, "system")
        action = checked.action
        if p.status is ProposalStatus.approved:
            if action.mode not in (Mode.approve, Mode.auto):
                refusal = Refusal("propose_only", f"action {action.id!r} is now in {action.mode.value} mode")
                with self.engine.begin() as conn:
                    return self.close_refused(conn, p, refusal, "system")
            actor = p.decided_by or "admin"
        else:
            if action.mode is not Mode.auto:
                return None
            if not holding(action, checked.params, snapshot or load_snapshot(self.engine, self.config, self.clock())):
                return self._block(
                    p, "conditions", f"the conditions of {action.id!r} do not hold now for {checked.target}"
                )
            actor = "auto"
        verdict = self._claim(p, action, checked)
        if verdict is None:
            return None  # another worker took it
        if not verdict.allowed:
            return self._block(p, verdict.code, verdict.reason)
        return self._run(p, action, checked, actor)

    def _block(self, p: Proposal, code: str, reason: str) -> ProposalResult:
        """Leave the proposal open but waiting; audit the reason once per change of reason."""
        text = f"{code}: {reason}"
        if (p.blocked_reason or "").split(":", 1)[0] != code:
            with self.engine.begin() as conn:
                store.set_blocked(conn, p.id, text, self.clock())
                self.audit_proposal(
                    conn,
                    AuditKind.skipped,
                    "system",
                    p,
                    reason=text,
                )
        return ProposalResult(
            status="skipped", action_id=p.action_id, params=p.params, argv=p.argv, proposal_id=p.id, reason=text
        )

    def _claim(self, p: Proposal, action: ActionSpec, checked: Checked) -> Verdict | None:
        """Mark the proposal running if the policy allows it, in one transaction (safe with several workers).

        Returns None when another worker took the proposal, else the policy's verdict (when it is a
        refusal the transaction is rolled back and the proposal stays open).
        """
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                # The UPDATE comes first: on SQLite it takes the write lock, on PostgreSQL the row lock (and the
                # advisory lock below serialises the action), so two workers cannot both pass the policy check.
                if not store.transition(
                    conn, p.id, [p.status], ProposalStatus.running, now, started_at=now, blocked_reason=None
                ):
                    return None
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_lock_key(action.id))))
                history = store.run_history(conn, action.id, exclude=p.id)
                verdict = self.policy.check(action, checked.target, history, store.last_reset(conn, action.id))
                if not verdict.allowed:
                    raise _Blocked(verdict)
                return verdict
        except _Blocked as blocked:
            return blocked.verdict

    def _output(self, result: RunOutcome, limit: int) -> str:
        out, _ = clip(result.stdout.encode("utf-8", "replace"), limit)
        err, _ = clip(result.stderr.encode("utf-8", "replace"), limit)
        return self._scrubber.text(out if not err else f"{out}\n--- stderr ---\n{err}")

    def _run(self, p: Proposal, action: ActionSpec, checked: Checked, actor: str) -> ProposalResult:
        """Start the process (or record the dry run) and record the result. Reached only via `execute`."""
        base: dict[str, Any] = dict(action_id=action.id, params=checked.params, argv=checked.argv, proposal_id=p.id)
        if self.dry_run:
            now = self.clock()
            with self.engine.begin() as conn:
                store.transition(
                    conn,
                    p.id,
                    [ProposalStatus.running],
                    ProposalStatus.dry_run,
                    now,
                    finished_at=now,
                    run_status="dry_run",
                    outcome="none",
                )
                self.audit(
                    conn,
                    AuditKind.dry_run,
                    actor,
                    pattern_id=p.pattern_id,
                    reason="dry run: recorded the argv that would run; nothing was run",
                    **base,
                )
            return ProposalResult(status="dry_run", reason="dry run: nothing was run", **base)
        env = {name: os.environ[name] for name in action.env if name in os.environ}
        try:
            result = self.runner.run(
                list(checked.argv), timeout_s=action.timeout_seconds, cwd=action.working_dir, env=env
            )
        except Exception as exc:  # a broken runner is a failed run, never an unrecorded one
            result = RunOutcome(None, "", "", error=f"runner failed: {type(exc).__name__}: {exc}")
        output = self._output(result, action.max_output_bytes)
        if result.ok:
            run_status, reason = "succeeded", "exit code 0"
        elif result.timed_out:
            run_status, reason = (
                "timeout",
                f"timed out after {action.timeout_seconds:g} s; the process group was killed",
            )
        elif result.error is not None:
            run_status, reason = "error", f"could not run: {result.error}"
        else:
            run_status, reason = "failed", f"exit code {result.exit_code}"
        watch = "pending" if result.ok and p.pattern_id else ("none" if result.ok else None)
        status = ProposalStatus.succeeded if result.ok else ProposalStatus.failed
        with self.engine.begin() as conn:
            store.transition(
                conn,
                p.id,
                [ProposalStatus.running],
                status,
                self.clock(),
                finished_at=self.clock(),
                run_status=run_status,
                exit_code=result.exit_code,
                outcome=watch,
            )
            self.audit(
                conn,
                AuditKind.executed if result.ok else AuditKind.failed,
                actor,
                pattern_id=p.pattern_id,
                exit_code=result.exit_code,
                output=output,
                reason=reason,
                **base,
            )
            if not result.ok:
                self.trip_if_open(conn, action)
        return ProposalResult(
            status="succeeded" if result.ok else "failed",
            reason=reason,
            exit_code=result.exit_code,
            output=output,
            **base,
        )

    def trip_if_open(self, conn: Connection, action: ActionSpec) -> None:
        """Audit the moment the breaker opens (exactly when the failure count reaches the threshold)."""
        history = store.run_history(conn, action.id)
        failures = self.policy.consecutive_failures(history, store.last_reset(conn, action.id))
        if failures == action.breaker_threshold:
            self.audit(
                conn,
                AuditKind.breaker_open,
                "system",
                action_id=action.id,
                reason=f"{failures} consecutive failures: action disabled until an admin resets it",
            )

    # -- outcomes --------------------------------------------------------------------------------
    def check_outcomes(self) -> list[Outcome]:
        """Judge runs whose watch window has passed: did the triggering pattern's error rate drop?"""
        now = self.clock()
        with self.engine.connect() as conn:
            pending = store.pending_outcomes(conn)
        done = []
        for p in pending:
            action = self.config.action(p.action_id)
            window = action.outcome_window_minutes if action else 10.0
            if p.pattern_id is None or p.started_at is None or p.finished_at is None:
                continue
            if now < p.finished_at + dt.timedelta(minutes=window):
                continue
            with self.engine.begin() as conn:
                before, after = outcomes.rates(conn, p.pattern_id, p.started_at, p.finished_at, window)
                status = outcomes.judge(before, after)
                note = outcomes.note(p.action_id, p.pattern_id, status, before, after, window, p.finished_at)
                escalate = status == "not_improved"
                if not store.set_outcome(conn, p.id, status, before, after, now, note, escalate=escalate):
                    continue  # another worker judged it
                base: dict[str, Any] = dict(
                    action_id=p.action_id, proposal_id=p.id, pattern_id=p.pattern_id, argv=p.argv, params=p.params
                )
                kind = AuditKind.outcome_failed if escalate else AuditKind.outcome_ok
                self.audit(conn, kind, "system", reason=note, **base)
                if escalate:
                    self.audit(conn, AuditKind.escalated, "system", reason=note, **base)
                    if action is not None:
                        self.trip_if_open(conn, action)
            done.append(
                Outcome(
                    proposal_id=p.id,
                    action_id=p.action_id,
                    pattern_id=p.pattern_id,
                    params=p.params,
                    argv=p.argv,
                    executed_at=p.finished_at,
                    window_minutes=window,
                    status=status,
                    rate_before=before,
                    rate_after=after,
                    escalated=escalate,
                    note=note,
                )
            )
        return done
