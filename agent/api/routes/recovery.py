"""Guarded recovery: allow-listed actions, proposals, admin approval, audit and outcomes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from agent.api.deps import AdminDep, KeyDep
from agent.api.errors import ApiError
from agent.api.schemas import MAX_INT
from agent.recovery.models import ActionView, AuditEntry, Outcome, Proposal, ProposalResult, ProposalStatus
from agent.recovery.service import ProposalNotFound, Recovery

router = APIRouter(prefix="/recovery", tags=["recovery"], dependencies=[KeyDep])

ACTOR_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"


def get_recovery(request: Request) -> Recovery:
    recovery = getattr(request.app.state.services, "recovery", None)
    if not isinstance(recovery, Recovery):
        raise ApiError(503, "recovery_unavailable", "the recovery layer is not configured in this server")
    return recovery


RecoveryDep = Annotated[Recovery, Depends(get_recovery)]


class ApproveRequest(BaseModel):
    actor: Annotated[str | None, Field(pattern=ACTOR_PATTERN)] = None
    """Who approves, for the audit (recorded as `admin:<actor>`)."""


class DenyRequest(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    actor: Annotated[str | None, Field(pattern=ACTOR_PATTERN)] = None


def _actor(actor: str | None) -> str:
    return f"admin:{actor}" if actor else "admin"


def _decided(result: ProposalResult) -> ProposalResult:
    if result.status == "refused":
        raise ApiError(409, "refused", result.reason)
    return result


@router.get("/actions", response_model=list[ActionView])
def list_actions(recovery: RecoveryDep) -> list[ActionView]:
    """The allow-listed actions with their mode, argv template, parameter rules and breaker state."""
    return recovery.actions()


@router.get("/proposals", response_model=list[Proposal])
def list_proposals(
    recovery: RecoveryDep,
    status: Annotated[list[ProposalStatus] | None, Query()] = None,
    pattern_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> list[Proposal]:
    """Proposals, newest first (filter with `status=proposed&status=approved`, `pattern_id`)."""
    return recovery.proposals(status=status or (), pattern_id=pattern_id, limit=limit, offset=offset)


@router.get("/proposals/{proposal_id}", response_model=Proposal)
def get_proposal(recovery: RecoveryDep, proposal_id: Annotated[int, Path(ge=1, le=MAX_INT)]) -> Proposal:
    proposal = recovery.proposal(proposal_id)
    if proposal is None:
        raise ApiError(404, "not_found", f"no proposal {proposal_id}")
    return proposal


@router.post("/proposals/{proposal_id}/approve", response_model=ProposalResult, dependencies=[AdminDep])
def approve(
    recovery: RecoveryDep, proposal_id: Annotated[int, Path(ge=1, le=MAX_INT)], body: ApproveRequest | None = None
) -> ProposalResult:
    """Allow a proposal to run (at the next recovery tick; cooldown, rate cap and breaker still apply)."""
    try:
        return _decided(recovery.approve(proposal_id, _actor(body.actor if body else None)))
    except ProposalNotFound as exc:
        raise ApiError(404, "not_found", f"no proposal {proposal_id}") from exc


@router.post("/proposals/{proposal_id}/deny", response_model=ProposalResult, dependencies=[AdminDep])
def deny(
    recovery: RecoveryDep, proposal_id: Annotated[int, Path(ge=1, le=MAX_INT)], body: DenyRequest
) -> ProposalResult:
    try:
        return _decided(recovery.deny(proposal_id, _actor(body.actor), body.reason))
    except ProposalNotFound as exc:
        raise ApiError(404, "not_found", f"no proposal {proposal_id}") from exc


@router.post("/actions/{action_id}/reset", dependencies=[AdminDep])
def reset_breaker(
    recovery: RecoveryDep, action_id: Annotated[str, Path(max_length=64)], body: ApproveRequest | None = None
) -> dict[str, str]:
    """Close the action's circuit breaker: earlier failures stop counting."""
    try:
        recovery.reset_breaker(action_id, _actor(body.actor if body else None))
    except LookupError as exc:
        raise ApiError(404, "not_found", f"no action {action_id!r}") from exc
    return {"status": "reset", "action_id": action_id}


@router.get("/audit", response_model=list[AuditEntry], dependencies=[AdminDep])
def audit(
    recovery: RecoveryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> list[AuditEntry]:
    """Every decision, newest first: proposed, refused (and why), approved, denied, run, output, outcome."""
    return recovery.audit(limit=limit, offset=offset)


@router.get("/outcomes", response_model=list[Outcome])
def outcomes(recovery: RecoveryDep, pattern_id: Annotated[str, Query(min_length=1, max_length=64)]) -> list[Outcome]:
    """What runs triggered by a pattern did to its error rate (escalated when it did not drop)."""
    return recovery.outcomes_for_pattern(pattern_id)
