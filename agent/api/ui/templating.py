"""Rendering UI pages: the Jinja2 environment, its filters, security headers, redirects with a flash."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from agent import __version__
from agent.api.ui.session import FLASH_COOKIE, Session
from agent.api.ui.state import ui_state

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Everything the page loads comes from this server; the browser refuses anything else.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def ref_url(ref: str) -> str:
    """The UI page of a cited id: event, pattern, guide entry or knowledge entry."""
    if ref.startswith("ev_"):
        return f"/ui/events/{quote(ref)}"
    if ref.startswith("pat_"):
        return f"/ui/patterns/{quote(ref)}"
    if ref.upper().startswith("ERROR-"):
        return f"/ui/guide/{quote(ref.upper())}"
    return f"/ui/knowledge/{quote(ref, safe='')}"


def ref_kind(ref: str) -> str:
    if ref.startswith("ev_"):
        return "event"
    if ref.startswith("pat_"):
        return "pattern"
    if ref.upper().startswith("ERROR-"):
        return "guide"
    return "knowledge"


def when(value: dt.datetime | str | None) -> str:
    """`2026-11-02 09:00:05 UTC` (naive datetimes are stored as UTC)."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        parsed = value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: dt.datetime | str | None) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat(timespec="seconds")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,  # a missing variable is a bug: fail loudly, never render a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ref_url=ref_url, ref_kind=ref_kind, when=when, iso=iso, pretty_json=pretty_json)
    env.globals.update(version=__version__)
    return env


ENV = _environment()
R = TypeVar("R", bound=Response)


def secure(response: R) -> R:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    session: Session | None,
    status: int = 200,
    active: str = "",
    csrf: str | None = None,
) -> HTMLResponse:
    """Render `ui/<template>.html.j2` with the session, its CSRF token and any flash message."""
    ui = ui_state(request)
    flash = ui.sessions.pop_flash(request)
    values = {
        "session": session,
        "csrf": csrf if csrf is not None else (session.csrf if session else ""),
        "flash": flash,
        "active": active,
        "path": request.url.path,
        **(context or {}),
    }
    html = ENV.get_template(f"ui/{template}.html.j2").render(values)
    response = HTMLResponse(html, status_code=status)
    if flash is not None:
        ui.sessions.clear(response, request, FLASH_COOKIE)
    return secure(response)


def render_partial(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    """A fragment for htmx (no layout, no flash)."""
    response = HTMLResponse(ENV.get_template(f"ui/{template}.html.j2").render(context), status_code=status)
    return secure(response)


def see_other(request: Request, url: str, flash: str | None = None) -> RedirectResponse:
    """Post/redirect/get: a 303 to `url`, carrying a one-time message."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        ui_state(request).sessions.flash(response, request, flash)
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
