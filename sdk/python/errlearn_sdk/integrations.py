"""Hooks that feed a client without code at every call site: logging, ASGI apps, uncaught exceptions.

Each takes an explicit `Client` or, when given none, uses the one from `errlearn_sdk.init()` at the time
of the error (so they can be installed before `init`).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

from errlearn_sdk import api
from errlearn_sdk.client import Client, is_sender_thread
from errlearn_sdk.options import SeverityName

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SDK_LOGGER = "errlearn.sdk"


def _resolve(client: Client | None) -> Client | None:
    return client if client is not None else api.get_client()


class ErrlearnHandler(logging.Handler):
    """Report log records at ERROR and above; a record with `exc_info` is reported as that exception.

    The SDK's own records (logger `errlearn.sdk`) and records logged on the sender thread are ignored,
    so a failing server can never feed errors back into the queue.
    """

    def __init__(self, client: Client | None = None, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name.startswith(_SDK_LOGGER) or is_sender_thread():
                return
            client = _resolve(self.client)
            if client is None:
                return
            severity: SeverityName = "critical" if record.levelno >= logging.CRITICAL else "high"
            context = f"{record.name}:{record.funcName}"
            message = record.getMessage()
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                client.capture_exception(
                    exc, severity=severity, context=context, logger=record.name, log_message=message
                )
            else:
                client.capture_message(
                    message,
                    severity,
                    error_type=f"log.{record.levelname}",
                    context=context,
                    logger=record.name,
                    location=f"{record.pathname}:{record.lineno}",
                )
        except Exception:
            # logging.Handler's own policy (prints to stderr only when logging.raiseExceptions).
            self.handleError(record)


class ErrlearnMiddleware:
    """Pure ASGI middleware: report unhandled exceptions of HTTP and WebSocket requests, then re-raise.

    The app's error handling is untouched: the exception still reaches the server's (or Starlette's)
    500 handling. Only the method and the path (the route template when the router set one) are
    attached: never the query string, headers or body, which is where secrets travel.

    Usage: `app.add_middleware(ErrlearnMiddleware)` or `ErrlearnMiddleware(app, client=client)`.
    """

    def __init__(self, app: ASGIApp, client: Client | None = None) -> None:
        self.app = app
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self._report(scope, exc)
            raise

    def _report(self, scope: Scope, exc: Exception) -> None:
        try:
            client = _resolve(self.client)
            if client is None:
                return
            method = str(scope.get("method", "WS" if scope.get("type") == "websocket" else "?"))
            path = str(scope.get("path", ""))
            route = getattr(scope.get("route"), "path", None)  # FastAPI sets scope["route"] when it matched
            where = route if isinstance(route, str) else path
            client.capture_exception(
                exc, context=f"{method} {where}", request={"method": method, "path": path, "route": route}
            )
        except Exception:  # reporting must never change what the application raises
            pass


def install_excepthooks(client: Client | None = None) -> None:
    """Report uncaught exceptions of the main thread (`sys.excepthook`) and other threads
    (`threading.excepthook`), then call the hooks that were installed before. Idempotent.

    KeyboardInterrupt and SystemExit are passed on without a report.
    """
    if not getattr(sys.excepthook, "_errlearn", False):
        previous = sys.excepthook

        def sys_hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
            if not issubclass(exc_type, KeyboardInterrupt | SystemExit):
                target = _resolve(client)
                if target is not None:
                    target.capture_exception(exc, severity="critical", context=None, uncaught=True)
            previous(exc_type, exc, tb)

        sys_hook._errlearn = True  # type: ignore[attr-defined]
        sys.excepthook = sys_hook

    if not getattr(threading.excepthook, "_errlearn", False):
        previous_thread = threading.excepthook

        def thread_hook(args: threading.ExceptHookArgs) -> None:
            exc = args.exc_value
            if exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit) and not is_sender_thread():
                target = _resolve(client)
                if target is not None:
                    thread = args.thread.name if args.thread is not None else None
                    target.capture_exception(exc, severity="high", uncaught=True, thread=thread)
            previous_thread(args)

        thread_hook._errlearn = True  # type: ignore[attr-defined]
        threading.excepthook = thread_hook
