"""What the recovery layer returns: structured results that always carry the exact argv."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.recovery.status import ProposalStatus as ProposalStatus  # re-exported: callers import it from here

OPEN_STATUSES = (ProposalStatus.proposed, ProposalStatus.approved)


class AuditKind(StrEnum):
    proposed = "proposed"
    refused = "refused"
    approved = "approved"
    denied = "denied"
    skipped = "skipped"
    """Not run now: cooldown, rate cap, circuit breaker, or conditions that no longer hold."""
    expired = "expired"
    dry_run = "dry_run"
    executed = "executed"
    """Ran and exited 0 (output and exit code attached)."""
    failed = "failed"
    """Ran and failed: non-zero exit, timeout, or could not start."""
    outcome_ok = "outcome_ok"
    outcome_failed = "outcome_failed"
    escalated = "escalated"
    breaker_open = "breaker_open"
    breaker_reset = "breaker_reset"


ResultStatus = Literal[
    "proposed",
    "approval_required",
    "duplicate",
    "refused",
    "approved",
    "denied",
    "dry_run",
    "succeeded",
    "failed",
    "skipped",
    "waiting",
]


class ProposalResult(BaseModel):
    """The answer to a proposal, an approval, a denial or a run."""

    status: ResultStatus
    action_id: str
    """As given (ASCII-escaped when refused, since it may be hostile text)."""
    params: dict[str, str] = Field(default_factory=dict)
    argv: list[str] = Field(default_factory=list)
    """The exact argv that would run or ran; empty when refused."""
    proposal_id: int | None = None
    reason: str = ""
    exit_code: int | None = None
    output: str | None = None


class Proposal(BaseModel):
    id: int
    action_id: str
    params: dict[str, Any]
    argv: list[str]
    source: str
    pattern_id: str | None
    diagnosis_id: int | None
    trigger: str
    status: ProposalStatus
    blocked_reason: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    run_status: str | None
    exit_code: int | None
    outcome: str | None
    rate_before: float | None
    rate_after: float | None
    note: str | None
    created_at: dt.datetime


class AuditEntry(BaseModel):
    id: int
    at: dt.datetime
    kind: AuditKind
    action_id: str | None
    proposal_id: int | None
    pattern_id: str | None
    actor: str
    argv: list[str] | None
    params: dict[str, Any] | None
    exit_code: int | None
    output: str | None
    reason: str


OutcomeStatus = Literal["pending", "improved", "not_improved", "inconclusive", "run_failed"]


class Outcome(BaseModel):
    """What a run did to the error rate of the pattern that triggered it (for the guide and the UI)."""

    proposal_id: int
    action_id: str
    pattern_id: str
    params: dict[str, Any]
    argv: list[str]
    executed_at: dt.datetime
    window_minutes: float
    status: OutcomeStatus
    """pending (still watching), improved, not_improved (escalated), inconclusive (no events either side),
    run_failed (non-zero exit, timeout or could not start)."""
    rate_before: float | None = None
    """Events per minute of the pattern in the window before the run."""
    rate_after: float | None = None
    """Events per minute in the window after the run."""
    escalated: bool = False
    note: str = ""


class ActionView(BaseModel):
    """An allow-listed action as shown to people (API, CLI)."""

    id: str
    description: str
    mode: str
    argv: list[str]
    params: dict[str, dict[str, Any]]
    conditions: list[dict[str, Any]]
    match: str
    cooldown_minutes: float
    max_runs_per_hour: int
    breaker_threshold: int
    timeout_seconds: float
    consecutive_failures: int
    breaker_open: bool
