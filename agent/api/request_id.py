"""A request id per HTTP request: taken from a safe incoming `X-Request-ID`, else generated.

The id is put in the `agent.logs.request_id` context variable (so every log record of the request
carries it) and returned in the response's `X-Request-ID` header. A plain ASGI middleware, not
`BaseHTTPMiddleware`, so streaming responses (SSE) pass through untouched.
"""

from __future__ import annotations

import random
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.logs import request_id

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
"""What an incoming id may look like: it ends up in logs and headers, so no spaces, quotes or control bytes."""
_random = random.Random(random.SystemRandom().getrandbits(128))  # seeded once from the OS; ids need uniqueness


def accept_or_generate(incoming: bytes | None) -> str:
    """The incoming id when it is a safe token of at most 64 characters, else a new random one."""
    if incoming is not None:
        try:
            text = incoming.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if SAFE_ID.fullmatch(text):
            return text
    # 32 hex digits, as many as a uuid4's. Not os.urandom: it releases the GIL for its syscall, and taking it back
    # from the writer thread cost ~6 % of single-event ingest.
    return f"{_random.getrandbits(128):032x}"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == _HEADER_KEY:
                incoming = value
                break
        rid = accept_or_generate(incoming)
        scope.setdefault("state", {})["request_id"] = rid
        ours = (_HEADER_KEY, rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER_KEY]
                headers.append(ours)
                message = {**message, "headers": headers}
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
