"""One JSON error shape for every 4xx/5xx: {"error": {"code", "message", "fields"?}}."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.api.responses import FastJSON

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers


def error_body(code: str, message: str, fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if fields:
        err["fields"] = fields
    return {"error": err}


def _loc(loc: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    out = prefix
    for p in parts:
        out = f"{out}[{p}]" if p.isdigit() else (f"{out}.{p}" if out else p)
    return out or "body"


def validation_fields(exc: ValidationError | RequestValidationError, prefix: str = "") -> list[dict[str, str]]:
    return [
        {"field": _loc(tuple(e.get("loc", ())), prefix), "message": str(e.get("msg", "invalid"))} for e in exc.errors()
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> FastJSON:
        return FastJSON(error_body(exc.code, exc.message, exc.fields), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> FastJSON:
        fields = validation_fields(exc)
        names = ", ".join(f["field"] for f in fields[:5])
        return FastJSON(error_body("validation_error", f"invalid request: {names}", fields), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FastJSON:
        # Runs outside the request-id middleware (Starlette's outermost layer): read the id from the scope.
        rid = request.scope.get("state", {}).get("request_id", "-")
        log.error("unexpected error on %s %s [request %s]", request.method, request.url.path, rid, exc_info=exc)
        body = error_body("internal_error", f"unexpected server error; quote request id {rid} when reporting it")
        return FastJSON(body, status_code=500, headers={"X-Request-ID": rid})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> FastJSON:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app, request.url.path) or headers.get("Allow", "")
        return FastJSON(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers or None)


def allowed_methods(app: FastAPI, path: str) -> str:
    """The `Allow` header of a 405: the methods the OpenAPI schema gives the path `path` resolves to.

    Starlette names only the first route whose path matches (`GET /guide/{entry_id}` before
    `POST /guide/render`); here, as in OpenAPI, a literal path wins over templated ones. "" for paths
    outside the schema (the UI), which keep Starlette's answer.
    """
    literal: set[str] = set()
    templated: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in _TEMPLATE.split(template))
        if re.fullmatch(pattern, path):
            methods = {m.upper() for m in operations if m.upper() in _METHODS}
            (templated if "{" in template else literal).update(methods)
    return ", ".join(sorted(literal or templated))


_TEMPLATE = re.compile(r"(\{[^}]+\})")
_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"})
