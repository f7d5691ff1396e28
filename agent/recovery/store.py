"""Database access of the recovery layer: proposals (a state machine) and the append-only audit.

The audit has exactly one write path, `append_audit`, an INSERT. There is no UPDATE or DELETE of
`recovery_audit` anywhere in the code, and the migration's triggers refuse them in the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from agent.recovery.guard import Checked
from agent.recovery.models import OPEN_STATUSES, AuditEntry, AuditKind, Proposal, ProposalStatus
from agent.recovery.policy import RunRecord, RunResult
from agent.recovery.tables import RecoveryAuditRow, RecoveryProposalRow
from agent.store import pattern_index
from agent.store.tables import EventRow

PROPOSALS = cast(Table, RecoveryProposalRow.__table__)
AUDIT = cast(Table, RecoveryAuditRow.__table__)
EVENTS = cast(Table, EventRow.__table__)
HISTORY_LIMIT = 500
"""Newest runs read for policy decisions (more than any breaker threshold or hourly cap)."""
_OPEN = [s.value for s in OPEN_STATUSES]
_LIVE = [*_OPEN, ProposalStatus.running.value]


# -- audit (append-only) ---------------------------------------------------------------------------------


def append_audit(
    conn: Connection,
    *,
    at: dt.datetime,
    kind: AuditKind,
    actor: str,
    reason: str = "",
    action_id: str | None = None,
    proposal_id: int | None = None,
    pattern_id: str | None = None,
    argv: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    exit_code: int | None = None,
    output: str | None = None,
) -> None:
    """Record one decision. The only write to the audit table there is."""
    conn.execute(
        insert(AUDIT).values(
            at=at,
            kind=kind.value,
            actor=actor[:100],
            reason=reason[:4000],
            action_id=action_id[:100] if action_id is not None else None,
            proposal_id=proposal_id,
            pattern_id=pattern_id[:32] if pattern_id is not None else None,
            argv=list(argv) if argv is not None else None,
            params=params,
            exit_code=exit_code,
            output=output,
        )
    )


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        kind=AuditKind(row.kind),
        action_id=row.action_id,
        proposal_id=row.proposal_id,
        pattern_id=row.pattern_id,
        actor=row.actor,
        argv=row.argv,
        params=row.params,
        exit_code=row.exit_code,
        output=row.output,
        reason=row.reason,
    )


def audit_entries(
    conn: Connection,
    *,
    limit: int = 100,
    offset: int = 0,
    action_id: str | None = None,
    pattern_id: str | None = None,
    proposal_id: int | None = None,
    kind: AuditKind | None = None,
) -> list[AuditEntry]:
    """Newest first."""
    q = select(AUDIT)
    if action_id is not None:
        q = q.where(AUDIT.c.action_id == action_id)
    if pattern_id is not None:
        q = q.where(AUDIT.c.pattern_id == pattern_id)
    if proposal_id is not None:
        q = q.where(AUDIT.c.proposal_id == proposal_id)
    if kind is not None:
        q = q.where(AUDIT.c.kind == kind.value)
    rows = conn.execute(q.order_by(AUDIT.c.id.desc()).limit(limit).offset(offset))
    return [_entry(r) for r in rows]


def last_reset(conn: Connection, action_id: str) -> dt.datetime | None:
    """When an admin last reset the action's circuit breaker."""
    row = conn.execute(
        select(AUDIT.c.at)
        .where(AUDIT.c.action_id == action_id, AUDIT.c.kind == AuditKind.breaker_reset.value)
        .order_by(AUDIT.c.id.desc())
        .limit(1)
    ).first()
    return row.at if row else None


# -- proposals -------------------------------------------------------------------------------------------


def _proposal(row: Any) -> Proposal:
    return Proposal(
        id=row.id,
        action_id=row.action_id,
        params=row.params or {},
        argv=row.argv or [],
        source=row.source,
        pattern_id=row.pattern_id,
        diagnosis_id=row.diagnosis_id,
        trigger=row.trigger,
        status=ProposalStatus(row.status),
        blocked_reason=row.blocked_reason,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        run_status=row.run_status,
        exit_code=row.exit_code,
        outcome=row.outcome,
        rate_before=row.rate_before,
        rate_after=row.rate_after,
        note=row.note,
        created_at=row.created_at,
    )


def dedupe_key(checked: Checked) -> str:
    return f"{checked.action.id}|{checked.target}"[:700]


def open_proposal_for(conn: Connection, key: str) -> int | None:
    row = conn.execute(select(PROPOSALS.c.id).where(PROPOSALS.c.dedupe_key == key)).first()
    return int(row.id) if row else None


def insert_proposal(
    conn: Connection,
    checked: Checked,
    *,
    source: str,
    now: dt.datetime,
    pattern_id: str | None = None,
    diagnosis_id: int | None = None,
    trigger: str = "",
) -> int | None:
    """Insert an open proposal; None when one for the same action and target is already open."""
    key = dedupe_key(checked)
    if open_proposal_for(conn, key) is not None:
        return None
    values = dict(
        action_id=checked.action.id,
        params=checked.params,
        argv=checked.argv,
        target=checked.target[:600],
        dedupe_key=key,
        source=source,
        pattern_id=pattern_id,
        diagnosis_id=diagnosis_id,
        trigger=trigger[:4000],
        status=ProposalStatus.proposed.value,
        created_at=now,
        updated_at=now,
    )
    try:
        with conn.begin_nested():
            res = conn.execute(insert(PROPOSALS).values(**values))
    except IntegrityError:  # another worker opened the same proposal a moment ago
        return None
    pk = res.inserted_primary_key
    return int(pk[0]) if pk else None


def get_proposal(conn: Connection, proposal_id: int) -> Proposal | None:
    row = conn.execute(select(PROPOSALS).where(PROPOSALS.c.id == proposal_id)).first()
    return _proposal(row) if row else None


def list_proposals(
    conn: Connection,
    *,
    status: Sequence[ProposalStatus] = (),
    pattern_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Proposal]:
    """Newest first."""
    q = select(PROPOSALS)
    if status:
        q = q.where(PROPOSALS.c.status.in_([s.value for s in status]))
    if pattern_id is not None:
        q = q.where(PROPOSALS.c.pattern_id == pattern_id)
    return [_proposal(r) for r in conn.execute(q.order_by(PROPOSALS.c.id.desc()).limit(limit).offset(offset))]


def transition(
    conn: Connection,
    proposal_id: int,
    from_status: Sequence[ProposalStatus],
    to_status: ProposalStatus,
    now: dt.datetime,
    **values: Any,
) -> bool:
    """Move a proposal between states atomically; False when it was not in `from_status` (someone else won)."""
    if to_status.value not in _LIVE:
        values["dedupe_key"] = None  # closed: a new proposal for the same target may open
    res = conn.execute(
        update(PROPOSALS)
        .where(PROPOSALS.c.id == proposal_id, PROPOSALS.c.status.in_([s.value for s in from_status]))
        .values(status=to_status.value, updated_at=now, **values)
    )
    return res.rowcount == 1


def set_blocked(conn: Connection, proposal_id: int, reason: str | None, now: dt.datetime) -> None:
    conn.execute(update(PROPOSALS).where(PROPOSALS.c.id == proposal_id).values(blocked_reason=reason, updated_at=now))


def set_outcome(
    conn: Connection,
    proposal_id: int,
    outcome: str,
    before: float,
    after: float,
    now: dt.datetime,
    note: str,
    *,
    escalate: bool,
) -> bool:
    values: dict[str, Any] = dict(
        outcome=outcome, rate_before=before, rate_after=after, outcome_checked_at=now, note=note, updated_at=now
    )
    if escalate:
        values["status"] = ProposalStatus.escalated.value
    res = conn.execute(
        update(PROPOSALS).where(PROPOSALS.c.id == proposal_id, PROPOSALS.c.outcome == "pending").values(**values)
    )
    return res.rowcount == 1


def _result(row: Any) -> RunResult:
    if row.run_status is None:
        return RunResult.pending
    if row.run_status == "dry_run":
        return RunResult.dry_run
    if row.run_status != "succeeded" or row.outcome == "not_improved":
        return RunResult.failed
    return RunResult.pending if row.outcome == "pending" else RunResult.ok


def run_history(conn: Connection, action_id: str, *, exclude: int | None = None) -> list[RunRecord]:
    """Runs (and dry runs) of an action, newest first, for the policy."""
    q = (
        select(PROPOSALS.c.id, PROPOSALS.c.target, PROPOSALS.c.started_at, PROPOSALS.c.run_status, PROPOSALS.c.outcome)
        .where(PROPOSALS.c.action_id == action_id, PROPOSALS.c.started_at.is_not(None))
        .order_by(PROPOSALS.c.started_at.desc(), PROPOSALS.c.id.desc())
        .limit(HISTORY_LIMIT)
    )
    return [RunRecord(action_id, r.target, r.started_at, _result(r)) for r in conn.execute(q) if r.id != exclude]


def pending_outcomes(conn: Connection) -> list[Proposal]:
    rows = conn.execute(select(PROPOSALS).where(PROPOSALS.c.outcome == "pending").order_by(PROPOSALS.c.id))
    return [_proposal(r) for r in rows]


def executed_for_pattern(conn: Connection, pattern_id: str, limit: int = 100) -> list[Proposal]:
    rows = conn.execute(
        select(PROPOSALS)
        .where(
            PROPOSALS.c.pattern_id == pattern_id,
            PROPOSALS.c.run_status.in_(["succeeded", "failed", "timeout", "error"]),
        )
        .order_by(PROPOSALS.c.id.desc())
        .limit(limit)
    )
    return [_proposal(r) for r in rows]


def count_events(conn: Connection, pattern_id: str, start: dt.datetime, end: dt.datetime) -> int:
    """Events of a pattern received in [start, end)."""
    n = conn.execute(
        select(func.count())
        .select_from(EVENTS)
        .where(pattern_index.of_pattern(conn, pattern_id, since=start, until=end))
    ).scalar()
    return int(n or 0)
