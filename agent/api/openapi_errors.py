"""The error answers every operation may give, declared once for the OpenAPI schema.

Every 4xx/503 the API sends has the body `{"error": {"code", "message", "fields"?}}` (agent.api.errors), from
the routes, the key check, the body limit, the fast ingest path and the validation handler alike. Routers
are included with `ERROR_RESPONSES`, so the schema declares what a client can get back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[ErrorField] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


_WHEN = {
    400: "Malformed body (empty, not JSON, a broken envelope)",
    401: "Missing or unknown API key",
    403: "The key may not do this (an admin key is needed)",
    404: "No such resource",
    409: "Conflicts with the resource's current state",
    413: "Body larger than the configured limit",
    415: "Unsupported content type or encoding",
    422: "Invalid request; `fields` names what is wrong",
    429: "Too many requests or connections",
    503: "A dependency (model, database) is down or the server is overloaded; see `Retry-After`",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description} for status, description in _WHEN.items()
}
