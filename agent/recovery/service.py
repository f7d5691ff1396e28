"""The recovery use cases: propose, approve or deny, run (guarded), check outcomes, read the audit.

Proposals pass the guard (`guard.py`) before they are stored; runs happen in `runs.py`, the only
caller of the `CommandRunner`. Every decision is appended to the audit.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Engine

from agent.domain import Diagnosis, DiagnosisStatus
from agent.llm.agents import ActionInfo
from agent.recovery import store
from agent.recovery.config import Mode, ParamSpec, RecoveryConfig, load_recovery_config
from agent.recovery.executor import CommandRunner, SubprocessRunner
from agent.recovery.guard import MAX_PROPOSALS_PER_DIAGNOSIS, Refusal, check_proposal, recheck
from agent.recovery.models import (
    OPEN_STATUSES,
    ActionView,
    AuditEntry,
    AuditKind,
    Outcome,
    OutcomeStatus,
    Proposal,
    ProposalResult,
    ProposalStatus,
)
from agent.recovery.policy import Policy
from agent.recovery.runs import Runs
from agent.recovery.triggers import bindings, load_snapshot
from agent.recovery.values import show

__all__ = ["ProposalNotFound", "Recovery", "load_recovery_config"]

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
REFUSAL_QUIET = dt.timedelta(minutes=10)
"""A condition-driven refusal that repeats every tick is audited once per this long."""
_ACTOR = re.compile(r"[^A-Za-z0-9._:@/+-]")


class ProposalNotFound(LookupError):
    pass


def clean_actor(actor: str) -> str:
    """Who decided, reduced to a safe bounded name (it is shown in tables and logs)."""
    return _ACTOR.sub("?", actor.strip())[:100] or "unknown"


def _clean_text(text: str, limit: int = 500) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit]


def _param_hint(name: str, spec: ParamSpec, services: Sequence[str]) -> str:
    if spec.type == "integer":
        return f"{name}: a whole number {spec.minimum}-{spec.maximum}"
    values = list(services) if spec.allowed_from == "services" else spec.allowed
    if values is not None:
        shown = ", ".join(values[:20]) + (", ..." if len(values) > 20 else "")
        return f"{name}: one of {shown}"
    return f"{name}: matching {spec.regex}"


class Recovery:
    """Guarded recovery actions over one database.

    Args:
        engine: the shared database (migrated).
        config: the allow-list.
        clock: the time source (tests inject one to step through cooldowns and outcome windows).
        runner: what runs an argv; default `SubprocessRunner`.
        dry_run: record the exact argv that would run and run nothing (the default).
    """

    def __init__(
        self,
        engine: Engine,
        config: RecoveryConfig,
        *,
        clock: Clock,
        runner: CommandRunner | None = None,
        dry_run: bool = True,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.runs = Runs(engine, config, clock=clock, runner=runner or SubprocessRunner(), dry_run=dry_run)
        self._quiet: dict[str, dt.datetime] = {}
        self._tick_lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------
    def action_infos(self) -> list[ActionInfo]:
        """The actions the diagnosis model may name (ids and descriptions only; disabled ones left out)."""
        out = []
        for a in self.config.actions:
            if a.mode is Mode.disabled:
                continue
            hints = "; ".join(_param_hint(n, s, self.config.services) for n, s in a.params.items())
            out.append(ActionInfo(a.id, f"{a.description} (parameters: {hints})" if hints else a.description))
        return out

    def actions(self) -> list[ActionView]:
        views = []
        with self.engine.connect() as conn:
            for a in self.config.actions:
                failures = Policy.consecutive_failures(store.run_history(conn, a.id), store.last_reset(conn, a.id))
                views.append(
                    ActionView(
                        id=a.id,
                        description=a.description,
                        mode=a.mode.value,
                        argv=a.argv,
                        params={n: s.model_dump(exclude_none=True) for n, s in a.params.items()},
                        conditions=[c.model_dump() for c in a.conditions],
                        match=a.match,
                        cooldown_minutes=a.cooldown_minutes,
                        max_runs_per_hour=a.max_runs_per_hour,
                        breaker_threshold=a.breaker_threshold,
                        timeout_seconds=a.timeout_seconds,
                        consecutive_failures=failures,
                        breaker_open=failures >= a.breaker_threshold,
                    )
                )
        return views

    def proposals(
        self, *, status: Sequence[ProposalStatus] = (), pattern_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Proposal]:
        with self.engine.connect() as conn:
            return store.list_proposals(conn, status=status, pattern_id=pattern_id, limit=limit, offset=offset)

    def proposal(self, proposal_id: int) -> Proposal | None:
        with self.engine.connect() as conn:
            return store.get_proposal(conn, proposal_id)

    def audit(self, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """The decisions, newest first."""
        with self.engine.connect() as conn:
            return store.audit_entries(conn, limit=limit, offset=offset)

    def outcomes_for_pattern(self, pattern_id: str) -> list[Outcome]:
        """Runs triggered by a pattern and what they did to its error rate, newest first."""
        with self.engine.connect() as conn:
            rows = store.executed_for_pattern(conn, pattern_id)
        out = []
        for p in rows:
            action = self.config.action(p.action_id)
            if p.finished_at is None:
                continue
            note = p.note or ""
            if p.run_status != "succeeded":
                status: OutcomeStatus = "run_failed"
                note = note or f"{p.action_id} did not complete ({p.run_status}, exit code {p.exit_code})"
            elif p.outcome in ("pending", "improved", "not_improved", "inconclusive"):
                status = cast(OutcomeStatus, p.outcome)
            else:
                continue
            out.append(
                Outcome(
                    proposal_id=p.id,
                    action_id=p.action_id,
                    pattern_id=pattern_id,
                    params=p.params,
                    argv=p.argv,
                    executed_at=p.finished_at,
                    window_minutes=action.outcome_window_minutes if action else 0.0,
                    status=status,
                    rate_before=p.rate_before,
                    rate_after=p.rate_after,
                    escalated=p.status is ProposalStatus.escalated,
                    note=note,
                )
            )
        return out

    # -- proposing -------------------------------------------------------------------------------
    @property
    def dry_run(self) -> bool:
        """Record the argv that would run instead of running it."""
        return self.runs.dry_run

    @dry_run.setter
    def dry_run(self, value: bool) -> None:
        self.runs.dry_run = value

    def _audit(self, conn: Connection, kind: AuditKind, actor: str, **fields: Any) -> None:
        store.append_audit(conn, at=self.clock(), kind=kind, actor=actor, **fields)

    def _refuse(
        self,
        action_id: object,
        params: Mapping[str, object],
        refusal: Refusal,
        *,
        actor: str,
        pattern_id: str | None = None,
        proposal_id: int | None = None,
        quiet: bool = False,
    ) -> ProposalResult:
        known = isinstance(action_id, str) and self.config.action(action_id) is not None
        shown_id = action_id if known and isinstance(action_id, str) else show(action_id)
        shown_params = {show(k, 40): show(v, 200) for k, v in list(params.items())[:20]}
        if quiet and self._recently(f"{shown_id}|{sorted(shown_params.items())}|{refusal.reason}"):
            return ProposalResult(status="refused", action_id=shown_id, reason=refusal.reason)
        with self.engine.begin() as conn:
            self._audit(
                conn,
                AuditKind.refused,
                actor,
                action_id=shown_id,
                params=shown_params,
                pattern_id=pattern_id,
                proposal_id=proposal_id,
                reason=refusal.reason,
            )
        log.warning("recovery: refused %s: %s", shown_id, refusal.reason)
        return ProposalResult(status="refused", action_id=shown_id, proposal_id=proposal_id, reason=refusal.reason)

    def _recently(self, key: str) -> bool:
        now = self.clock()
        self._quiet = {k: t for k, t in self._quiet.items() if now - t < REFUSAL_QUIET}
        if key in self._quiet:
            return True
        self._quiet[key] = now
        return False

    def propose(
        self,
        action_id: object,
        params: Mapping[str, object],
        *,
        source: str,
        actor: str,
        pattern_id: str | None = None,
        diagnosis_id: int | None = None,
        trigger: str = "",
        quiet_refusals: bool = False,
    ) -> ProposalResult:
        """Check a proposal against the allow-list and record it (or the refusal)."""
        actor = clean_actor(actor)
        checked = check_proposal(self.config, action_id, params)
        if isinstance(checked, Refusal):
            return self._refuse(action_id, params, checked, actor=actor, pattern_id=pattern_id, quiet=quiet_refusals)
        now = self.clock()
        with self.engine.begin() as conn:
            pid = store.insert_proposal(
                conn, checked, source=source, now=now, pattern_id=pattern_id, diagnosis_id=diagnosis_id, trigger=trigger
            )
            if pid is None:
                existing = store.open_proposal_for(conn, store.dedupe_key(checked))
                return ProposalResult(
                    status="duplicate",
                    action_id=checked.action.id,
                    params=checked.params,
                    argv=checked.argv,
                    proposal_id=existing,
                    reason="an open proposal for the same action and parameters exists",
                )
            reason = "; ".join([trigger, *checked.notes]).strip("; ")
            self._audit(
                conn,
                AuditKind.proposed,
                actor,
                action_id=checked.action.id,
                proposal_id=pid,
                pattern_id=pattern_id,
                argv=checked.argv,
                params=checked.params,
                reason=reason,
            )
        status = "approval_required" if checked.action.mode is Mode.approve else "proposed"
        return ProposalResult(
            status=status,
            action_id=checked.action.id,
            params=checked.params,
            argv=checked.argv,
            proposal_id=pid,
            reason=f"mode {checked.action.mode.value}",
        )

    def propose_from_diagnosis(self, diagnosis: Diagnosis) -> list[ProposalResult]:
        """Turn the model's proposed actions into checked proposals (called after every diagnosis).

        An inconclusive diagnosis proposes nothing: its actions are refused and audited.
        """
        actor = clean_actor(f"model:{diagnosis.model}")
        results = []
        for i, proposed in enumerate(diagnosis.proposed_actions):
            try:
                if diagnosis.status is not DiagnosisStatus.diagnosed or i >= MAX_PROPOSALS_PER_DIAGNOSIS:
                    refusal = (
                        Refusal("inconclusive", "the diagnosis is inconclusive: it proposes no actions")
                        if diagnosis.status is not DiagnosisStatus.diagnosed
                        else Refusal("too_many", f"more than {MAX_PROPOSALS_PER_DIAGNOSIS} proposals")
                    )
                    refused = self._refuse(
                        proposed.action_id, proposed.params, refusal, actor=actor, pattern_id=diagnosis.pattern_id
                    )
                    results.append(refused)
                    continue
                results.append(
                    self.propose(
                        proposed.action_id,
                        proposed.params,
                        source="diagnosis",
                        actor=actor,
                        pattern_id=diagnosis.pattern_id,
                        diagnosis_id=diagnosis.id,
                        trigger=f"proposed by diagnosis {diagnosis.id} of {diagnosis.pattern_id}",
                    )
                )
            except Exception:  # a storage error must not fail the diagnosis that was already saved
                log.exception("recovery: could not record a proposal of diagnosis %s", diagnosis.id)
        return results

    # -- conditions ------------------------------------------------------------------------------
    def evaluate_conditions(self) -> list[ProposalResult]:
        """Propose every action whose conditions hold now (one open proposal per action and target)."""
        actions = [a for a in self.config.actions if a.conditions and a.mode is not Mode.disabled]
        if not actions:
            return []
        snapshot = load_snapshot(self.engine, self.config, self.clock())
        results = []
        for action in actions:
            for params, hits in bindings(action, snapshot):
                pattern = max(hits, key=lambda h: h.events).pattern_id
                trigger = "; ".join(f"{h.detail} in {h.service}" for h in hits[:5])
                results.append(
                    self.propose(
                        action.id,
                        params,
                        source="condition",
                        actor="conditions",
                        pattern_id=pattern,
                        trigger=trigger,
                        quiet_refusals=True,
                    )
                )
        return results

    def _load(self, conn: Connection, proposal_id: int) -> Proposal:
        p = store.get_proposal(conn, proposal_id)
        if p is None:
            raise ProposalNotFound(proposal_id)
        return p

    def approve(self, proposal_id: int, actor: str) -> ProposalResult:
        """An admin allows a proposal to run (at the next tick, subject to cooldown, rate cap and breaker)."""
        actor = clean_actor(actor)
        with self.engine.begin() as conn:
            p = self._load(conn, proposal_id)
            base = dict(action_id=p.action_id, params=p.params, argv=p.argv, proposal_id=p.id)
            refusal: Refusal | None = None
            if p.status is not ProposalStatus.proposed:
                refusal = Refusal("not_open", f"proposal {p.id} is {p.status.value}, not proposed")
            else:
                checked = recheck(self.config, p.action_id, p.params, p.argv)
                if isinstance(checked, Refusal):
                    return self.runs.close_refused(conn, p, checked, actor)
                if checked.action.mode is Mode.propose:
                    refusal = Refusal(
                        "propose_only",
                        f"action {p.action_id!r} is in propose mode: its proposals are "
                        "advice only; set mode: approve (or auto) to allow approvals",
                    )
            if refusal is not None:
                self._audit(
                    conn,
                    AuditKind.refused,
                    actor,
                    pattern_id=p.pattern_id,
                    reason=f"approval refused: {refusal.reason}",
                    **base,
                )
                return ProposalResult(status="refused", reason=refusal.reason, **base)
            now = self.clock()
            if not store.transition(
                conn, p.id, [ProposalStatus.proposed], ProposalStatus.approved, now, decided_by=actor, decided_at=now
            ):
                return ProposalResult(status="refused", reason="the proposal changed meanwhile; look again", **base)
            self._audit(conn, AuditKind.approved, actor, pattern_id=p.pattern_id, reason="approved", **base)
        dry = " (dry run: it will be recorded, not run)" if self.dry_run else ""
        return ProposalResult(status="approved", reason=f"runs at the next recovery tick{dry}", **base)

    def deny(self, proposal_id: int, actor: str, reason: str) -> ProposalResult:
        actor = clean_actor(actor)
        reason = _clean_text(reason) or "denied"
        with self.engine.begin() as conn:
            p = self._load(conn, proposal_id)
            base = dict(action_id=p.action_id, params=p.params, argv=p.argv, proposal_id=p.id)
            now = self.clock()
            if p.status not in OPEN_STATUSES or not store.transition(
                conn, p.id, OPEN_STATUSES, ProposalStatus.denied, now, decided_by=actor, decided_at=now, note=reason
            ):
                why = f"proposal {p.id} is {p.status.value}; only open proposals can be denied"
                self._audit(
                    conn, AuditKind.refused, actor, pattern_id=p.pattern_id, reason=f"denial refused: {why}", **base
                )
                return ProposalResult(status="refused", reason=why, **base)
            self._audit(conn, AuditKind.denied, actor, pattern_id=p.pattern_id, reason=reason, **base)
        return ProposalResult(status="denied", reason=reason, **base)

    def reset_breaker(self, action_id: str, actor: str) -> None:
        """Close an action's circuit breaker (failures before now no longer count)."""
        if self.config.action(action_id) is None:
            raise LookupError(action_id)
        with self.engine.begin() as conn:
            self._audit(
                conn, AuditKind.breaker_reset, clean_actor(actor), action_id=action_id, reason="circuit breaker reset"
            )

    def dry_run_action(self, action_id: str, params: Mapping[str, object], actor: str) -> ProposalResult:
        """Check a would-be run and record its exact argv; runs nothing and creates no proposal."""
        actor = clean_actor(actor)
        checked = check_proposal(self.config, action_id, params)
        if isinstance(checked, Refusal):
            return self._refuse(action_id, params, checked, actor=actor)
        with self.engine.begin() as conn:
            self._audit(
                conn,
                AuditKind.dry_run,
                actor,
                action_id=checked.action.id,
                argv=checked.argv,
                params=checked.params,
                reason="manual dry run: nothing was run",
            )
        return ProposalResult(
            status="dry_run",
            action_id=checked.action.id,
            params=checked.params,
            argv=checked.argv,
            reason=f"would run {checked.argv} (mode {checked.action.mode.value})",
        )

    def run_now(self, action_id: str, params: Mapping[str, object], actor: str) -> ProposalResult:
        """An operator's manual run: propose, approve and execute at once (all the usual checks apply)."""
        proposed = self.propose(action_id, params, source="manual", actor=actor, trigger=f"manual run by {actor}")
        if proposed.proposal_id is None or proposed.status == "duplicate":
            return (
                proposed
                if proposed.status != "duplicate"
                else proposed.model_copy(
                    update={
                        "status": "refused",
                        "reason": f"proposal {proposed.proposal_id} is already open: approve it",
                    }
                )
            )
        approved = self.approve(proposed.proposal_id, actor)
        if approved.status != "approved":
            return approved
        p = self.proposal(proposed.proposal_id)
        result = self.runs.execute(p, None) if p is not None else None
        return result or ProposalResult(
            status="waiting",
            action_id=proposed.action_id,
            params=proposed.params,
            argv=proposed.argv,
            proposal_id=proposed.proposal_id,
        )

    # -- execution -------------------------------------------------------------------------------
    def tick(self) -> None:
        """Periodic work: expire stale proposals, evaluate conditions, run what may run, check outcomes."""
        with self._tick_lock:
            self.runs.expire_stale()
            self.evaluate_conditions()
            self.runs.execute_due()
            self.runs.check_outcomes()

    def execute_due(self) -> list[ProposalResult]:
        """Run approved proposals, and proposals of `auto` actions whose conditions hold now."""
        return self.runs.execute_due()

    def check_outcomes(self) -> list[Outcome]:
        """Judge runs whose watch window has passed (escalating those that did not help)."""
        return self.runs.check_outcomes()
