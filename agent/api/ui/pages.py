"""Read pages: overview, patterns (list, detail), events and knowledge entries; re-running a diagnosis."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from agent.api.ui import views
from agent.api.ui.csrf import csrf_protect
from agent.api.ui.deps import AdminSessionDep, PageNotFound, ServicesDep, SessionDep
from agent.api.ui.templating import is_htmx, render, render_partial, see_other
from agent.diagnose import PatternNotFound
from agent.domain import Severity

router = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(csrf_protect)])
PAGE_SIZE = 50
SORTS = ("last_seen", "count")
Ident = Annotated[str, Path(max_length=64)]


def _page_number(raw: str) -> int:
    try:
        return max(1, min(10_000, int(raw)))
    except ValueError:
        return 1


@router.get("")
def overview(request: Request, session: SessionDep, services: ServicesDep) -> HTMLResponse:
    context = {"charts": views.event_charts(services), "panel": views.status_panel(services)}
    return render(request, "overview", context, session=session, active="overview")


@router.get("/partials/status")
def status_partial(session: SessionDep, services: ServicesDep) -> HTMLResponse:
    """The overview's status panel alone; htmx polls it."""
    return render_partial("_status", {"panel": views.status_panel(services), "session": session})


@router.get("/patterns")
def patterns(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    q: str = "",
    service: str = "",
    severity: str = "",
    sort: str = "last_seen",
    page: str = "1",
) -> HTMLResponse:
    """Patterns with filters; without JavaScript the form submits as a plain GET."""
    filters: dict[str, Any] = {
        "q": q.strip()[:200],
        "service": service.strip()[:64],
        "severity": severity if severity in {s.value for s in Severity} else "",
        "sort": sort if sort in SORTS else "last_seen",
    }
    number = _page_number(page)
    rows, total = services.core.patterns(
        service=filters["service"] or None,
        severity=Severity(filters["severity"]) if filters["severity"] else None,
        q=filters["q"] or None,
        sort=filters["sort"],
        limit=PAGE_SIZE,
        offset=(number - 1) * PAGE_SIZE,
    )
    context = {
        "filters": filters,
        "rows": rows,
        "total": total,
        "page": number,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "services": views.service_names(services),
        "severities": [s.value for s in Severity],
        "query": {k: v for k, v in filters.items() if v},
    }
    if is_htmx(request) and request.headers.get("hx-target") == "pattern-results":
        return render_partial("_pattern_results", context)
    return render(request, "patterns", context, session=session, active="patterns")


@router.get("/patterns/{pattern_id}")
def pattern_detail(request: Request, session: SessionDep, services: ServicesDep, pattern_id: Ident) -> HTMLResponse:
    page = views.pattern_page(services, pattern_id)
    if page is None:
        raise PageNotFound(f"no pattern {pattern_id}")
    return render(request, "pattern", page, session=session, active="patterns")


@router.post("/patterns/{pattern_id}/diagnose")
def diagnose(request: Request, session: AdminSessionDep, services: ServicesDep, pattern_id: Ident) -> RedirectResponse:
    """Queue a fresh diagnosis (the worker runs it)."""
    try:
        queued = services.diagnoser.request(pattern_id, force=True)
    except PatternNotFound:
        raise PageNotFound(f"no pattern {pattern_id}") from None
    message = "Diagnosis queued; the worker runs it shortly." if queued else "A diagnosis is already queued."
    return see_other(request, f"/ui/patterns/{pattern_id}", message)


@router.get("/events/{event_id}")
def event_detail(request: Request, session: SessionDep, services: ServicesDep, event_id: Ident) -> HTMLResponse:
    event = services.core.event(event_id)
    if event is None:
        raise PageNotFound(f"no event {event_id}")
    return render(request, "event", {"event": event}, session=session, active="patterns")


@router.get("/knowledge/{entry_id:path}")
def knowledge(request: Request, session: SessionDep, services: ServicesDep, entry_id: str) -> HTMLResponse:
    entry = views.knowledge_row(services, entry_id[:200])
    if entry is None:
        raise PageNotFound(f"no knowledge entry {entry_id[:200]}")
    return render(request, "knowledge", {"entry": entry}, session=session, active="patterns")
