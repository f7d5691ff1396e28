"""Dependencies: the core, and key-based auth (`Authorization: Bearer <key>`)."""
# Dependencies are async on purpose: they do no I/O, and FastAPI runs sync ones in a threadpool (a thread
# handoff per dependency per request, ~20 % of single-event ingest time when profiled).

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from agent.api.errors import ApiError
from agent.keys import KeyRing, Role
from agent.service import Core


async def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


CoreDep = Annotated[Core, Depends(get_core)]


def _role(request: Request) -> Role:
    keys: KeyRing = request.app.state.keys
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    role = keys.role_of(token.strip())
    if role is None:
        raise ApiError(401, "unauthorized", "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return role


async def require_key(request: Request) -> Role:
    """Any valid key (ingest or admin)."""
    return _role(request)


async def require_admin(request: Request) -> Role:
    role = _role(request)
    if role is not Role.admin:
        raise ApiError(403, "forbidden", "this endpoint needs the admin key")
    return role


KeyDep = Depends(require_key)
AdminDep = Depends(require_admin)
