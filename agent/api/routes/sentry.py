"""Sentry-compatible intake: any official Sentry SDK whose DSN points here reports errlearn events.

`POST /api/<project_id>/envelope/` (what current SDKs send) and `POST /api/<project_id>/store/` (the
legacy JSON event), also under one path prefix (`/<service>/api/<project_id>/...`), which is where SDKs
send when the DSN has a path: `http://<key>@host:8090/<service>/<project_id>`. The DSN's public key is
an errlearn API key. This module speaks the wire protocol (auth, compression, envelope framing);
`agent.ingest.sentry` turns each event into an `EventCreate`. Format: https://develop.sentry.dev/sdk/envelopes/
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib
import re
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Path, Request
from pydantic import ValidationError

from agent.api.deps import CoreDep
from agent.api.errors import ApiError, validation_fields
from agent.api.responses import FastJSON
from agent.ingest.normalize import EventCreate
from agent.ingest.sentry import SentryEventError, event_from_sentry, event_id_of
from agent.keys import KeyRing
from agent.service import Core

router = APIRouter(tags=["sentry"])

DECOMPRESSED_FACTOR = 8
"""A compressed body may expand to at most this many times `max_body_bytes`; beyond is a zip bomb (413)."""

_SENTRY_KEY = re.compile(r"(?:^|[\s,])sentry_key\s*=\s*([^,\s]+)")
_PROJECT = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# For the schema: requests reach `_receive` through the fast path (agent.api.fast_ingest), which answers a
# project id outside this pattern with 400 `invalid_project` (`_check_path`).
ProjectId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
_ENVELOPE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/x-sentry-envelope": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_STORE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


# --------------------------------------------------------------------------- auth


def presented_key(request: Request) -> str | None:
    """The DSN public key from `X-Sentry-Auth` / `Authorization: Sentry sentry_key=...`, a Bearer key, or `?sentry_key=`."""
    for name in ("x-sentry-auth", "authorization"):
        scheme, _, rest = request.headers.get(name, "").strip().partition(" ")
        if scheme.lower() == "sentry" and (m := _SENTRY_KEY.search(rest)):
            return m.group(1)
        if name == "authorization" and scheme.lower() == "bearer" and rest.strip():
            return rest.strip()
    key = request.query_params.get("sentry_key", "").strip()
    return key or None


def _dsn_key(headers: dict[str, Any]) -> str | None:
    """The key in the envelope header's `dsn` (SDKs put it there when they send through a tunnel)."""
    dsn = headers.get("dsn")
    if not isinstance(dsn, str):
        return None
    try:
        return urlsplit(dsn).username or None
    except ValueError:
        return None


def _authorize(request: Request, key: str | None) -> None:
    if not key:
        raise ApiError(
            401,
            "unauthorized",
            "missing key: use a DSN of the form http://<errlearn-ingest-key>@<host>:<port>/<project_id>",
        )
    keys: KeyRing = request.app.state.keys
    if keys.role_of(key) is None:
        raise ApiError(401, "unauthorized", "the DSN's key is not an errlearn API key")


# --------------------------------------------------------------------------- body decoding


@functools.cache
def _brotli() -> ModuleType | None:
    for name in ("brotli", "brotlicffi"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(raw, limit + 1)
    if len(out) > limit:
        raise ApiError(413, "too_large", f"decompressed body exceeds the limit of {limit} bytes")
    if not d.eof:
        raise zlib.error("compressed stream is truncated")
    return out


def _unbrotli(raw: bytes, limit: int) -> bytes:
    brotli = _brotli()
    if brotli is None:
        raise ApiError(
            415,
            "unsupported_encoding",
            "Content-Encoding br needs the 'brotli' package on the errlearn server (pip install brotli); "
            "or make the SDK send gzip (Python: _experiments={'transport_compression_algo': 'gzip'})",
        )
    d = brotli.Decompressor()
    try:
        out: bytes = d.process(raw, output_buffer_limit=limit + 1)
    except TypeError as exc:  # brotli < 1.2 cannot bound its output: refuse rather than risk a bomb
        raise ApiError(415, "unsupported_encoding", "Content-Encoding br needs brotli >= 1.2 on the server") from exc
    except brotli.error as exc:
        raise ApiError(400, "invalid_encoding", f"Content-Encoding is br but the body is not: {exc}") from exc
    if len(out) > limit:
        raise ApiError(413, "too_large", f"decompressed body exceeds the limit of {limit} bytes")
    if not d.is_finished():
        raise ApiError(400, "invalid_encoding", "Content-Encoding is br but the compressed stream is truncated")
    return out


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """Undo `Content-Encoding` (gzip, deflate, br or none), never producing more than `limit` bytes."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return raw
        if encoding in ("gzip", "x-gzip"):
            return _inflate(raw, 16 + zlib.MAX_WBITS, limit)
        if encoding == "deflate":  # RFC 9110 says zlib-wrapped; some clients send raw deflate
            try:
                return _inflate(raw, zlib.MAX_WBITS, limit)
            except zlib.error:
                return _inflate(raw, -zlib.MAX_WBITS, limit)
    except zlib.error as exc:
        raise ApiError(400, "invalid_encoding", f"Content-Encoding is {encoding} but the body is not: {exc}") from exc
    if encoding == "br":
        return _unbrotli(raw, limit)
    raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip, br or none")


def _json(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"{what} is not valid JSON: {exc}") from exc


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    value = _json(data, what)
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_envelope", f"{what} must be a JSON object")
    return value


# --------------------------------------------------------------------------- envelopes


@dataclass(frozen=True)
class EnvelopeItem:
    type: str
    headers: dict[str, Any]
    payload: bytes


def parse_envelope(data: bytes, *, max_items: int) -> tuple[dict[str, Any], list[EnvelopeItem]]:
    """Split an envelope into its header and items.

    The format: a JSON header line, then per item a JSON header line with `type` and optionally `length`,
    then the payload: exactly `length` bytes (then a newline or the end), else up to the next newline.

    Raises:
        ApiError: 400 naming the malformed part; 413 past `max_items` items.
    """
    if not data.strip():
        raise ApiError(400, "empty_body", "request body is empty; send a Sentry envelope")
    end = data.find(b"\n")
    end = len(data) if end < 0 else end
    headers = _json_object(data[:end], "envelope header (first line)")
    pos = end + 1
    items: list[EnvelopeItem] = []
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line, pos = data[pos:end], end + 1
        if not line.strip():
            continue  # trailing newline
        n = len(items)
        if n >= max_items:
            raise ApiError(413, "batch_too_large", f"envelope has more than {max_items} items")
        item_headers = _json_object(line, f"item {n} header")
        kind = item_headers.get("type")
        if not isinstance(kind, str) or not kind:
            raise ApiError(400, "invalid_envelope", f"item {n} header has no 'type'")
        length = item_headers.get("length")
        if length is None:
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            payload, pos = data[pos:end], end + 1
        elif isinstance(length, int) and not isinstance(length, bool) and length >= 0:
            if pos + length > len(data):
                raise ApiError(
                    400,
                    "invalid_envelope",
                    f"item {n} ({kind}) declares length {length} but only {max(len(data) - pos, 0)} bytes follow",
                )
            payload, pos = data[pos : pos + length], pos + length
            if pos < len(data) and data[pos : pos + 1] != b"\n":
                raise ApiError(
                    400, "invalid_envelope", f"item {n} ({kind}): no newline after its {length}-byte payload"
                )
            pos += 1
        else:
            raise ApiError(400, "invalid_envelope", f"item {n} header: 'length' must be a non-negative integer")
        items.append(EnvelopeItem(kind, item_headers, payload))
    return headers, items


def _legacy_json(data: bytes, limit: int) -> Any:
    """A store body: JSON, or (old raven clients) base64 of zlib-compressed JSON."""
    if data.lstrip()[:1] == b"{":
        return _json(data, "request body")
    try:
        unpacked = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return _json(data, "request body")
    try:
        return _json(_inflate(unpacked, zlib.MAX_WBITS, limit), "request body")
    except zlib.error as exc:
        raise ApiError(400, "invalid_encoding", f"request body is neither JSON nor base64 zlib JSON: {exc}") from exc


# --------------------------------------------------------------------------- routes


def _convert(
    payload: Any, where: str, *, project_id: str, dsn_service: str | None, event_id: str | None
) -> EventCreate:
    try:
        return event_from_sentry(payload, project_id=project_id, dsn_service=dsn_service, event_id=event_id)
    except SentryEventError as exc:
        raise ApiError(400, "invalid_event", f"{where}: {exc}") from exc
    except ValidationError as exc:  # the converter keeps fields valid; this guards the contract
        fields = validation_fields(exc, prefix=where)
        raise ApiError(400, "invalid_event", f"{where}: " + ", ".join(f["field"] for f in fields[:5]), fields) from exc


def _check_path(project_id: str, prefix: str | None) -> str | None:
    if not _PROJECT.fullmatch(project_id):
        raise ApiError(400, "invalid_project", "the DSN's project id must be 1-32 letters, digits, '_' or '-'")
    return prefix if prefix and _SERVICE.fullmatch(prefix) else None


async def _receive(request: Request, core: Core, project_id: str, prefix: str | None, *, envelope: bool) -> FastJSON:
    dsn_service = _check_path(project_id, prefix)
    key = presented_key(request)
    if key is not None or not envelope:  # an envelope may still carry the key in its header's dsn
        _authorize(request, key)
    authorized = key is not None
    header_id: str | None = None
    try:
        limit = core.settings.max_body_bytes * DECOMPRESSED_FACTOR
        data = decode_body(await request.body(), request.headers.get("content-encoding", ""), limit)
        payloads: list[tuple[str, Any]] = []
        if envelope:
            headers, items = parse_envelope(data, max_items=core.settings.max_batch_items)
            if not authorized:
                _authorize(request, _dsn_key(headers))
                authorized = True
            header_id = headers.get("event_id") if isinstance(headers.get("event_id"), str) else None
            # Only error events become errlearn events; transactions, sessions, client reports, attachments,
            # profiles, replays, check-ins and logs are accepted and dropped, as Relay drops what it does not want.
            for i, item in enumerate(items):
                if item.type == "event":
                    payloads.append((f"item {i} (event)", _json(item.payload, f"item {i} (event)")))
        elif not data.strip():
            raise ApiError(400, "empty_body", "request body is empty; send a Sentry event as JSON")
        else:
            payloads.append(("body", _legacy_json(data, limit)))
        bodies = [
            _convert(p, where, project_id=project_id, dsn_service=dsn_service, event_id=header_id if i == 0 else None)
            for i, (where, p) in enumerate(payloads)
        ]
    except ApiError as exc:
        if authorized and exc.status != 401:  # anonymous garbage must not move the counters
            core.reject(1, exc.code)
        raise
    answer: dict[str, Any] = {}
    if bodies:
        sentry_id = (bodies[0].additional_data or {}).get("sentry_event_id")
        # SDKs that resend from an offline cache (Java, mobile) resend the same event id: store it once.
        stored = await core.ingest(bodies, idempotency_key=f"sentry:{project_id}:{sentry_id}" if sentry_id else None)
        answer["id"] = sentry_id
        answer["errlearn_events"] = [
            {"event_id": s.event_id, "pattern_id": s.pattern_id, "new_pattern": s.new_pattern} for s in stored
        ]
    elif header_id:
        answer["id"] = event_id_of({}, header_id)
    return FastJSON(answer)


@router.post("/api/{project_id}/envelope/", openapi_extra=_ENVELOPE_BODY, summary="Sentry envelope (any Sentry SDK)")
async def post_envelope(request: Request, core: CoreDep, project_id: ProjectId) -> FastJSON:
    """Error events in the envelope become errlearn events; other item types are accepted and dropped."""
    return await _receive(request, core, project_id, None, envelope=True)


@router.post("/api/{project_id}/store/", openapi_extra=_STORE_BODY, summary="Sentry event, legacy store endpoint")
async def post_store(request: Request, core: CoreDep, project_id: ProjectId) -> FastJSON:
    """One Sentry event as JSON (older SDKs)."""
    return await _receive(request, core, project_id, None, envelope=False)


@router.post("/{prefix}/api/{project_id}/envelope/", openapi_extra=_ENVELOPE_BODY, summary="Sentry envelope, DSN path")
async def post_envelope_prefixed(request: Request, core: CoreDep, prefix: str, project_id: ProjectId) -> FastJSON:
    """As `/api/<project_id>/envelope/`, for a DSN with a path: the path names the service."""
    return await _receive(request, core, project_id, prefix, envelope=True)


@router.post("/{prefix}/api/{project_id}/store/", openapi_extra=_STORE_BODY, summary="Sentry event, DSN path")
async def post_store_prefixed(request: Request, core: CoreDep, prefix: str, project_id: ProjectId) -> FastJSON:
    """As `/api/<project_id>/store/`, for a DSN with a path: the path names the service."""
    return await _receive(request, core, project_id, prefix, envelope=False)
