"""A request id per HTTP request: taken from a safe incoming `X-Request-ID`, else generated.

The id is put in the `agent.logs.request_id` context variable (so every log record of the request
carries it) and returned in the response's `X-Request-ID` header. A plain ASGI middleware, not
`BaseHTTPMiddleware`, so streaming responses (SSE) pass through untouched.
"""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.logs import request_id

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
"""What an incoming id may look like: it ends up in logs and headers, so no spaces, quotes or control bytes."""


def accept_or_generate(incoming: bytes | None) -> str:
    """The incoming id when it is a safe token of at most 64 characters, else a new random one."""
    if incoming is not None:
        try:
            text = incoming.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if SAFE_ID.fullmatch(text):
            return text
    return os.urandom(16).hex()  # a uuid4's 32 hex digits without building a UUID (~7 % of single ingest)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope.get("headers", []) if name == _HEADER_KEY), None)
        rid = accept_or_generate(incoming)
        scope.setdefault("state", {})["request_id"] = rid
        raw = rid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_KEY]
                headers.append((_HEADER_KEY, raw))
                message = {**message, "headers": headers}
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
