"""Dependencies of the UI pages: the signed-in session, the admin check, the services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends
from starlette.requests import Request

from agent.api.ui.session import Session
from agent.api.ui.state import ui_state
from agent.bootstrap import Services

if TYPE_CHECKING:
    from agent.guide.service import Guide
    from agent.recovery.service import Recovery


class LoginRequired(Exception):
    """No valid session: pages redirect to /ui/login."""


class AdminRequired(Exception):
    """A signed-in session without the admin role asked for an admin page or action (403)."""


class PageNotFound(Exception):
    """Rendered as the UI's 404 page."""


async def page_session(request: Request) -> Session:
    ui = ui_state(request)
    session = ui.sessions.current(request, ui.keys(request))
    if session is None:
        raise LoginRequired
    return session


async def admin_session(request: Request) -> Session:
    session = await page_session(request)
    if not session.admin:
        raise AdminRequired
    return session


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


SessionDep = Annotated[Session, Depends(page_session)]
AdminSessionDep = Annotated[Session, Depends(admin_session)]
ServicesDep = Annotated[Services, Depends(get_services)]


def guide_of(services: Services) -> Guide | None:
    """The guide layer when this server wires it (`services.guide`), else None (the page says so)."""
    guide: Any = getattr(services, "guide", None)
    if guide is None:
        return None
    from agent.guide.service import Guide

    return guide if isinstance(guide, Guide) else None


def recovery_of(services: Services) -> Recovery | None:
    """The recovery layer when this server wires it (`services.recovery`), else None."""
    recovery: Any = getattr(services, "recovery", None)
    if recovery is None:
        return None
    from agent.recovery.service import Recovery

    return recovery if isinstance(recovery, Recovery) else None
