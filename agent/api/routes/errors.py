"""Ingestion: `POST /errors` and `POST /errors/batch` (the seed's contract)."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError

from agent.api.deps import CoreDep, KeyDep
from agent.api.errors import ApiError, error_body, validation_fields
from agent.api.responses import FastJSON
from agent.ingest.normalize import EventCreate

router = APIRouter(tags=["ingest"], dependencies=[KeyDep])
_EVENT = TypeAdapter(EventCreate)

_EVENT_REF = {"$ref": "#/components/schemas/EventCreate"}
_SINGLE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": _EVENT_REF}}}}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            # Each item is checked on its own: one that is no valid event is rejected in
                            # `results` by index, and the others are still stored (202).
                            "items": {"anyOf": [_EVENT_REF, {}]},
                            "description": "Events (EventCreate); invalid items are rejected one by one",
                        }
                    },
                }
            }
        },
    }
}


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes: a small gzip body must not expand into gigabytes."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = d.decompress(raw, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise ApiError(413, "too_large", f"decompressed body exceeds the limit of {limit} bytes")
    return out


async def _json_body(request: Request, core: Any) -> Any:
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        try:
            raw = _gunzip(raw, core.settings.max_body_bytes * 8)
        except zlib.error as exc:
            core.reject(1, "invalid_gzip")
            raise ApiError(400, "invalid_gzip", f"Content-Encoding is gzip but the body is not: {exc}") from exc
    elif encoding not in ("identity", ""):
        core.reject(1, "unsupported_encoding")
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    if not raw.strip():
        core.reject(1, "empty_body")
        raise ApiError(400, "empty_body", "request body is empty; send a JSON object")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        core.reject(1, "invalid_utf8")
        raise ApiError(400, "invalid_utf8", f"request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        core.reject(1, "invalid_json")
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from exc


def _idempotency_key(request: Request) -> str | None:
    """`Idempotency-Key` (the SDK sends one per batch): a retry of an acknowledged batch is not stored twice."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not (1 <= len(key) <= 100) or not key.isascii() or not key.isprintable():
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-100 printable ASCII characters")
    return key


@router.post("/errors", status_code=202, openapi_extra=_SINGLE_BODY, summary="Report one error event")
async def post_error(request: Request, core: CoreDep) -> FastJSON:
    """Validate, scrub, group and durably store one event. Answers 202 only after the commit."""
    data = await _json_body(request, core)
    if not isinstance(data, dict):
        core.reject(1, "validation")
        raise ApiError(
            422, "validation_error", "body must be a JSON object", [{"field": "body", "message": "not an object"}]
        )
    try:
        body = _EVENT.validate_python(data)
    except ValidationError as exc:
        core.reject(1, "validation")
        fields = validation_fields(exc)
        raise ApiError(
            422, "validation_error", "invalid event: " + ", ".join(f["field"] for f in fields[:5]), fields
        ) from exc
    (stored,) = await core.ingest([body], idempotency_key=_idempotency_key(request))
    return FastJSON(
        {
            "status": "accepted",
            "event_id": stored.event_id,
            "pattern_id": stored.pattern_id,
            "new_pattern": stored.new_pattern,
        },
        status_code=202,
    )


_BATCH_RESULT = {
    "type": "object",
    "required": ["accepted", "rejected", "results"],
    "properties": {
        "accepted": {"type": "integer"},
        "rejected": {"type": "integer"},
        "results": {"type": "array", "items": {"type": "object", "required": ["index", "status"]}},
    },
}
_BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "At least one event stored; `results` reports each item by index"},
    422: {  # a body that is no batch, or a batch whose every item was rejected (reported by index)
        "description": "Invalid batch, or every item rejected",
        "content": {
            "application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/ErrorBody"}, _BATCH_RESULT]}}
        },
    },
}


@router.post(
    "/errors/batch",
    status_code=202,
    openapi_extra=_BATCH_BODY,
    responses=_BATCH_RESPONSES,
    summary="Report many error events",
)
async def post_batch(request: Request, core: CoreDep) -> FastJSON:
    """Each item is validated on its own: bad items are reported by index and do not sink the good ones."""
    data = await _json_body(request, core)
    items = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(items, list):
        core.reject(1, "validation")
        raise ApiError(
            422,
            "validation_error",
            "body must be an object with an 'errors' array",
            [{"field": "errors", "message": "required array"}],
        )
    limit = core.settings.max_batch_items
    if len(items) > limit:
        core.reject(len(items), "batch_too_large")
        raise ApiError(
            413,
            "batch_too_large",
            f"batch has {len(items)} events; the limit is {limit}",
            [{"field": "errors", "message": f"at most {limit} items"}],
        )
    good: list[EventCreate] = []
    good_idx: list[int] = []
    results: list[dict[str, Any]] = [{} for _ in items]
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ApiError(
                    422, "validation_error", "not an object", [{"field": f"errors[{i}]", "message": "not an object"}]
                )
            good.append(_EVENT.validate_python(item))
            good_idx.append(i)
        except ValidationError as exc:
            fields = validation_fields(exc, prefix=f"errors[{i}]")
            results[i] = {"index": i, "status": "rejected", **error_body("validation_error", "invalid event", fields)}
        except ApiError as exc:
            results[i] = {"index": i, "status": "rejected", **error_body(exc.code, exc.message, exc.fields)}
    rejected = len(items) - len(good)
    if rejected:
        core.reject(rejected, "validation")
    if good:
        key = _idempotency_key(request)
        stored = await core.ingest(good, idempotency_key=key)
        for i, s in zip(good_idx, stored, strict=True):
            results[i] = {
                "index": i,
                "status": "accepted",
                "event_id": s.event_id,
                "pattern_id": s.pattern_id,
                "new_pattern": s.new_pattern,
            }
    status = 202 if good or not items else 422
    return FastJSON({"accepted": len(good), "rejected": rejected, "results": results}, status_code=status)
