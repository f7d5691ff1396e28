"""The web UI under `/ui`: server-rendered pages (Jinja2) with light htmx enhancement, served offline.

`install(app)` adds the routers, the static files and the UI's error pages to the app `create_app` builds.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from agent.api.ui import ask, auth, guide, pages, recovery
from agent.api.ui.csrf import CsrfRefused
from agent.api.ui.deps import AdminRequired, LoginRequired, PageNotFound
from agent.api.ui.session import Session, Sessions, Signer, load_or_create_secret
from agent.api.ui.state import UiState, ui_state
from agent.api.ui.templating import STATIC_DIR, is_htmx, render
from agent.settings import Settings

DEFAULT_SESSION_HOURS = 12.0
ROUTERS = (auth.router, pages.router, guide.router, recovery.router, ask.router)


def session_hours(settings: Settings) -> float:
    """`ui_session_hours` when the settings define it (default 12 h)."""
    value = getattr(settings, "ui_session_hours", None)
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_SESSION_HOURS


def _session_or_none(request: Request) -> Session | None:
    ui = ui_state(request)
    return ui.sessions.current(request, ui.keys(request))


async def _login_required(request: Request, _exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/ui/login?next={quote(target if request.method == 'GET' else '/ui', safe='')}"
    if is_htmx(request):  # an htmx fragment request: make the whole page go to the login form
        return Response(status_code=204, headers={"HX-Redirect": login})
    return RedirectResponse(login, status_code=303)


async def _admin_required(request: Request, _exc: Exception) -> Response:
    context = {"code": 403, "title": "Admin key needed", "message": "This page and its actions need the admin key."}
    return render(request, "error", context, session=_session_or_none(request), status=403)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    context = {
        "code": 403,
        "title": "Form refused",
        "message": f"This form did not come from this errlearn page or it has expired ({exc}). "
        "Reload the page and try again.",
    }
    return render(request, "error", context, session=_session_or_none(request), status=403)


async def _not_found(request: Request, exc: Exception) -> Response:
    context = {"code": 404, "title": "Not found", "message": str(exc) or "There is nothing here."}
    return render(request, "error", context, session=_session_or_none(request), status=404)


def install(app: FastAPI) -> None:
    """Mount the UI on `app` (call from `create_app`, after `app.state.settings` and `app.state.keys` are set)."""
    settings: Settings = app.state.settings
    secret = load_or_create_secret(settings.data_dir)
    app.state.ui = UiState(Sessions(Signer(secret), hours=session_hours(settings)))
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(AdminRequired, _admin_required)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(PageNotFound, _not_found)
