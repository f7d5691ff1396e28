"""Signing in with an API or admin key, and signing out."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agent.api.ui.csrf import csrf_protect
from agent.api.ui.forms import read_form
from agent.api.ui.session import PRE_COOKIE, SESSION_COOKIE
from agent.api.ui.state import ui_state
from agent.api.ui.templating import render

router = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(csrf_protect)])
NAME = re.compile(r"^[\w .@+-]{0,64}$")
"""What the API accepts as a reviewer name (`by`)."""


def safe_next(target: str | None) -> str:
    """Only paths inside the UI: never another host (`//evil`, `https://…`, `/\\evil`)."""
    if not target or "\\" in target or target.startswith("//"):
        return "/ui"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == "/ui" or parts.path.startswith("/ui/")):
        return "/ui"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request, *, next_url: str, error: str = "", notice: str = "", status: int = 200, name: str = ""
) -> Response:
    ui = ui_state(request)
    pre = ui.sessions.pre(request) or ui.sessions.new_pre()
    signed_in = ui.sessions.current(request, ui.keys(request))
    context = {"next": next_url, "error": error, "notice": notice, "name": name, "signed_in": signed_in}
    response = render(request, "login", context, session=None, status=status, csrf=pre.csrf)
    ui.sessions.save(response, request, pre)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/ui", signed_out: str = "") -> Response:
    notice = "You have signed out." if signed_out else ""
    return _login_page(request, next_url=safe_next(next), notice=notice)


@router.post("/login")
async def login(request: Request) -> Response:
    ui = ui_state(request)
    form = await read_form(request)
    next_url = safe_next(form.get("next"))
    name = form.text("name", 64)
    client = _client(request)
    if ui.throttle.blocked(client):
        return _login_page(
            request, next_url=next_url, error="Too many failed attempts; wait a few minutes.", status=429
        )
    if not NAME.match(name):
        return _login_page(
            request, next_url=next_url, status=422, error="Names may use letters, digits, spaces and . @ + - only."
        )
    session = ui.sessions.login(ui.keys(request), form.get("key", "").strip(), name)
    if session is None:
        ui.throttle.failed(client)
        return _login_page(request, next_url=next_url, error="That key is not valid.", status=401, name=name)
    ui.throttle.succeeded(client)
    response = RedirectResponse(next_url, status_code=303)
    ui.sessions.save(response, request, session)
    ui.sessions.clear(response, request, PRE_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    response = RedirectResponse("/ui/login?signed_out=1", status_code=303)
    ui_state(request).sessions.clear(response, request, SESSION_COOKIE)
    return response
