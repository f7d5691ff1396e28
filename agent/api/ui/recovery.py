"""Recovery: proposals with approve/deny, outcomes, the audit log and the allow-list (admin only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from agent.api.ui.csrf import csrf_protect
from agent.api.ui.deps import AdminSessionDep, PageNotFound, ServicesDep, recovery_of
from agent.api.ui.forms import Form, read_form
from agent.api.ui.session import Session
from agent.api.ui.templating import render, see_other
from agent.bootstrap import Services

if TYPE_CHECKING:
    from agent.recovery.models import ProposalResult
    from agent.recovery.service import Recovery

router = APIRouter(prefix="/ui/recovery", include_in_schema=False, dependencies=[Depends(csrf_protect)])
ProposalId = Annotated[int, Path(ge=1, le=2**62)]
FormDep = Annotated[Form, Depends(read_form)]


def _actor(session: Session) -> str:
    """Recorded in the audit like the API's approvals (`admin:<name>`)."""
    return f"admin:{session.name}" if session.name else "admin"


def _outcomes(recovery: Recovery, proposals: list[Any]) -> list[Any]:
    patterns = list(dict.fromkeys(p.pattern_id for p in proposals if p.pattern_id and p.finished_at))
    found = [o for pid in patterns[:20] for o in recovery.outcomes_for_pattern(pid)]
    return sorted(found, key=lambda o: o.executed_at, reverse=True)[:50]


@router.get("")
def recovery_page(request: Request, session: AdminSessionDep, services: ServicesDep) -> HTMLResponse:
    recovery = recovery_of(services)
    if recovery is None:
        return render(request, "unavailable", {"what": "Recovery"}, session=session, status=503, active="recovery")
    from agent.recovery.models import OPEN_STATUSES

    recent = recovery.proposals(limit=100)
    actions = recovery.actions()
    context = {
        "dry_run": recovery.dry_run,
        "open": [p for p in recent if p.status in OPEN_STATUSES],
        "history": [p for p in recent if p.status not in OPEN_STATUSES],
        "outcomes": _outcomes(recovery, recent),
        "audit": recovery.audit(limit=100),
        "actions": actions,
        "modes": {a.id: a.mode for a in actions},
    }
    return render(request, "recovery", context, session=session, active="recovery")


def _recovery(services: Services) -> Recovery:
    recovery = recovery_of(services)
    if recovery is None:
        raise PageNotFound("recovery is not available on this server")
    return recovery


def _decided(request: Request, result: ProposalResult, verb: str) -> Response:
    if result.status == "refused":
        return see_other(request, "/ui/recovery", f"Proposal {result.proposal_id} not {verb}: {result.reason}")
    return see_other(request, "/ui/recovery", f"Proposal {result.proposal_id} {verb}: {result.reason}")


@router.post("/proposals/{proposal_id}/approve")
def approve(request: Request, session: AdminSessionDep, services: ServicesDep, proposal_id: ProposalId) -> Response:
    from agent.recovery.service import ProposalNotFound

    recovery = _recovery(services)
    try:
        result = recovery.approve(proposal_id, _actor(session))
    except ProposalNotFound:
        raise PageNotFound(f"no proposal {proposal_id}") from None
    return _decided(request, result, "approved")


@router.post("/proposals/{proposal_id}/deny")
def deny(
    request: Request, session: AdminSessionDep, services: ServicesDep, form: FormDep, proposal_id: ProposalId
) -> Response:
    from agent.recovery.service import ProposalNotFound

    recovery = _recovery(services)
    reason = form.text("reason", 500)
    if not reason:
        return see_other(request, "/ui/recovery", f"Proposal {proposal_id} not denied: give a reason.")
    try:
        result = recovery.deny(proposal_id, _actor(session), reason)
    except ProposalNotFound:
        raise PageNotFound(f"no proposal {proposal_id}") from None
    return _decided(request, result, "denied")
