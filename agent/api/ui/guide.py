"""The guide review queue: drafts next to their evidence; approve, edit, reject, merge (admin only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from agent.api.ui.csrf import csrf_protect
from agent.api.ui.deps import AdminSessionDep, PageNotFound, ServicesDep, SessionDep, guide_of
from agent.api.ui.forms import Form, read_form
from agent.api.ui.session import Session
from agent.api.ui.templating import render, see_other
from agent.bootstrap import Services

if TYPE_CHECKING:
    from agent.guide.service import Guide, ReviewOutcome

router = APIRouter(prefix="/ui/guide", include_in_schema=False, dependencies=[Depends(csrf_protect)])
EntryId = Annotated[str, Path(max_length=20, pattern=r"^[Ee][Rr][Rr][Oo][Rr]-\d{1,9}$")]
FormDep = Annotated[Form, Depends(read_form)]
TABS = {
    "review": "To review",
    "approved": "Approved",
    "rejected": "Rejected",
    "superseded": "Superseded",
    "all": "All",
}
LIST_FIELDS = ("symptoms", "solution_steps", "prevention_tips", "commands")


def _unavailable(request: Request, session: Session) -> HTMLResponse:
    return render(request, "unavailable", {"what": "The guide"}, session=session, status=503, active="guide")


def _entries(guide: Guide, tab: str) -> list[Any]:
    from agent.guide.models import GuideStatus

    if tab == "review":
        return [e for e in guide.entries(None, 1000) if e.status is GuideStatus.draft or e.proposal is not None]
    if tab == "all":
        return guide.entries(None, 1000)
    return guide.entries(GuideStatus(tab), 1000)


@router.get("")
def queue(request: Request, session: SessionDep, services: ServicesDep, status: str = "review") -> HTMLResponse:
    guide = guide_of(services)
    if guide is None:
        return _unavailable(request, session)
    tab = status if status in TABS else "review"
    context = {"tab": tab, "tabs": TABS, "entries": _entries(guide, tab)}
    return render(request, "guide_list", context, session=session, active="guide")


def _detail_page(
    request: Request, session: Session, guide: Guide, ident: str, *, errors: list[str] | None = None, form: Any = None
) -> HTMLResponse:
    from agent.guide.models import LIVE_STATUSES

    detail = guide.detail(ident)
    if detail is None:
        raise PageNotFound(f"no guide entry {ident.upper()}")
    entry = detail.entry
    reviewed = entry.proposal.content if entry.proposal else entry.content()
    others = [e for e in guide.entries(None, 1000) if e.id != entry.id and e.status in LIVE_STATUSES]
    if form is None:  # the form starts from the text under review
        form = {f: getattr(reviewed, f) for f in ("title", "description", "root_cause")}
        form |= {f: "\n".join(getattr(reviewed, f)) for f in LIST_FIELDS}
    context = {
        "entry": entry,
        "reviewed": reviewed,
        "detail": detail,
        "merge_targets": others,
        "errors": errors or [],
        "form": form,
        "reviewable": entry.status.value == "draft" or entry.proposal is not None,
        "editable": entry.status in LIVE_STATUSES,
    }
    status = 422 if errors else 200
    return render(request, "guide_entry", context, session=session, status=status, active="guide")


@router.get("/{entry_id}")
def entry_page(request: Request, session: SessionDep, services: ServicesDep, entry_id: EntryId) -> HTMLResponse:
    guide = guide_of(services)
    if guide is None:
        return _unavailable(request, session)
    return _detail_page(request, session, guide, entry_id)


def _act(request: Request, ident: str, action: Callable[[], ReviewOutcome], done: str) -> Response:
    """Run a review action; answer with a redirect and a message (errors included)."""
    from agent.guide.repo import ConcurrentChange, EntryNotFound
    from agent.guide.review import InvalidTransition

    target = f"/ui/guide/{ident.upper()}"
    try:
        outcome = action()
    except EntryNotFound:
        raise PageNotFound(f"no guide entry {ident.upper()}") from None
    except (InvalidTransition, ConcurrentChange) as exc:
        return see_other(request, target, f"Not done: {exc}")
    notes = [done] + (["the guide file was updated"] if outcome.rendered else []) + outcome.warnings
    return see_other(request, target, "; ".join(notes) + ".")


def _guide(services: Services) -> Guide:
    guide = guide_of(services)
    if guide is None:
        raise PageNotFound("the guide is not available on this server")
    return guide


@router.post("/{entry_id}/approve")
def approve(request: Request, session: AdminSessionDep, services: ServicesDep, entry_id: EntryId) -> Response:
    guide = _guide(services)
    return _act(request, entry_id, lambda: guide.approve(entry_id, by=session.actor), f"{entry_id.upper()} approved")


@router.post("/{entry_id}/reject")
def reject(
    request: Request, session: AdminSessionDep, services: ServicesDep, form: FormDep, entry_id: EntryId
) -> Response:
    guide = _guide(services)
    reason = form.text("reason", 2000)
    if not reason:
        return _detail_page(request, session, guide, entry_id, errors=["Give a reason to reject."])
    return _act(
        request,
        entry_id,
        lambda: guide.reject(entry_id, by=session.actor, reason=reason),
        f"{entry_id.upper()} rejected",
    )


@router.post("/{entry_id}/edit")
def edit(
    request: Request, session: AdminSessionDep, services: ServicesDep, form: FormDep, entry_id: EntryId
) -> Response:
    from agent.guide.review import EntryEdit

    guide = _guide(services)
    entry = guide.entry(entry_id)
    if entry is None:
        raise PageNotFound(f"no guide entry {entry_id.upper()}")
    reviewed = entry.proposal.content if entry.proposal else entry.content()
    values: dict[str, Any] = {f: form.text(f, 4000) for f in ("title", "description", "root_cause")}
    values |= {f: form.lines(f) for f in LIST_FIELDS}
    changed = {k: v for k, v in values.items() if v != getattr(reviewed, k)}  # no revision for untouched fields
    try:
        changes = EntryEdit.model_validate(changed)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        shown = {k: form.get(k, "") for k in values}
        return _detail_page(request, session, guide, entry_id, errors=errors, form=shown)
    approve_too = form.get("then") == "approve"
    done = f"{entry_id.upper()} saved" + (" and approved" if approve_too else "")
    return _act(request, entry_id, lambda: guide.edit(entry_id, changes, by=session.actor, approve=approve_too), done)


@router.post("/{entry_id}/merge")
def merge(
    request: Request, session: AdminSessionDep, services: ServicesDep, form: FormDep, entry_id: EntryId
) -> Response:
    from agent.guide.models import entry_number

    guide = _guide(services)
    into = form.text("into", 20).upper()
    if entry_number(into) is None:
        return _detail_page(request, session, guide, entry_id, errors=["Choose the entry to merge into."])
    done = f"{entry_id.upper()} merged into {into}"
    return _act(request, entry_id, lambda: guide.merge(entry_id, into, by=session.actor), done)
