"""The ingest fast path: `POST /errors`, `/errors/batch` and the Sentry envelope/store endpoints.

FastAPI matches a request against every route in turn and solves the endpoint's dependencies per
request; for the ingest endpoints, which are most of the traffic, that was about a quarter of the
event loop's time. This plain ASGI middleware recognises the ingest paths itself and calls the same
handlers the routes call (auth, limits, validation messages, answers: one code path), so the routes
stay registered for the OpenAPI description and for any path this matcher does not take.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.api import backpressure
from agent.api.deps import _role
from agent.api.errors import ApiError, error_body
from agent.api.responses import FastJSON
from agent.api.routes import sentry
from agent.api.routes.errors import post_batch, post_error
from agent.service import Core
from agent.store.writer import WriterBusy

Handler = Callable[[Request, Core], Awaitable[Response]]

# The Sentry routes' shapes, `/api/{project_id}/(envelope|store)/` and `/{prefix}/api/...`: one path
# segment each, as Starlette's `{name}` converter matches.
_SENTRY_PATH = re.compile(r"/(?:([^/]+)/)?api/([^/]+)/(envelope|store)/")


async def _single(request: Request, core: Core) -> Response:
    _role(request)  # the router's KeyDep: auth before the body is read
    return await post_error(request, core)


async def _batch(request: Request, core: Core) -> Response:
    _role(request)
    return await post_batch(request, core)


_PLAIN: dict[str, Handler] = {"/errors": _single, "/errors/batch": _batch}


def _handler(path: str) -> Handler | None:
    if (plain := _PLAIN.get(path)) is not None:
        return plain
    m = _SENTRY_PATH.fullmatch(path)
    if m is None:
        return None
    prefix, project_id, kind = m.group(1), m.group(2), m.group(3)

    async def _sentry(request: Request, core: Core) -> Response:
        return await sentry._receive(request, core, project_id, prefix, envelope=kind == "envelope")

    return _sentry


class FastIngestMiddleware:
    """Serves the ingest endpoints without the router; everything else passes through."""

    def __init__(self, app: ASGIApp, *, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        core: Core | None = getattr(self.state, "core", None)
        handler = _handler(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None or core is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            try:
                backpressure.check(core)
                response = await handler(request, core)
            except WriterBusy as busy:
                raise backpressure.refused(core, busy) from None
        except ApiError as exc:
            response = FastJSON(
                error_body(exc.code, exc.message, exc.fields), status_code=exc.status, headers=exc.headers
            )
        await response(scope, receive, send)
