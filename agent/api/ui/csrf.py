"""CSRF protection for every state-changing UI request.

Each session (and the pre-login cookie) carries a random token; pages put it in a hidden `csrf_token` field
(scripts send it as `X-CSRF-Token`). Every POST must present a token equal to one of the cookies' tokens,
which another site can neither read nor make the browser send (the cookies are HttpOnly and SameSite=Strict).
Browsers that say the request is cross-site (`Sec-Fetch-Site`) are refused outright.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from agent.api.ui.forms import read_form
from agent.api.ui.state import ui_state

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(Exception):
    """A state-changing request without a valid CSRF token (answered with 403)."""


async def csrf_protect(request: Request) -> None:
    """Router dependency: refuse unsafe requests whose token matches neither the session nor the login cookie."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise CsrfRefused("cross-site request")
    form = await read_form(request)
    presented = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD, "")
    if not presented:
        raise CsrfRefused("missing CSRF token")
    ui = ui_state(request)
    expected = [s.csrf for s in (ui.sessions.current(request, ui.keys(request)), ui.sessions.pre(request)) if s]
    if not any(hmac.compare_digest(presented.encode(), token.encode()) for token in expected):
        raise CsrfRefused("CSRF token does not match the session")
