"""Diagnoses of patterns and the "why did this fail?" chat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from agent.api.deps import AdminDep, KeyDep
from agent.api.errors import ApiError
from agent.api.model_errors import context_overflow, model_down
from agent.api.routes.search import ServicesDep
from agent.api.schemas import IsoDateTime
from agent.diagnose import PatternNotFound
from agent.domain import Diagnosis
from agent.logs import request_id
from agent.settings import Settings
from agent.store import jobs

if TYPE_CHECKING:
    from agent.llm.agents import AskResult

router = APIRouter(tags=["diagnosis"])
_SSE_EVENT = {  # one server-sent event, as a client parses it; `data` is a JSON document
    "type": "object",
    "required": ["event", "data"],
    "properties": {"event": {"enum": ["delta", "done", "error"]}, "data": {"type": "string"}},
}
log = logging.getLogger(__name__)


class AskRequest(BaseModel):
    question: Annotated[str, Field(min_length=3, max_length=2000)]
    service: str | None = Field(default=None, max_length=64)
    since: IsoDateTime | None = None


class Citation(BaseModel):
    id: str
    kind: str
    link: str


class AskPublic(BaseModel):
    status: str
    answer: str
    citations: list[Citation]
    removed_citations: list[str]
    model: str
    prompt: str
    input_tokens: int
    output_tokens: int
    latency_ms: int


def _link(cid: str) -> Citation:
    if cid.startswith("ev_"):
        return Citation(id=cid, kind="event", link=f"/events/{cid}")
    if cid.startswith("pat_"):
        return Citation(id=cid, kind="pattern", link=f"/patterns/{cid}")
    if cid.startswith("ERROR-"):
        return Citation(id=cid, kind="guide", link=f"/guide/{cid}")
    return Citation(id=cid, kind="knowledge", link=f"/knowledge/{cid}")


def _ask_public(r: AskResult) -> AskPublic:
    return AskPublic(
        status=r.status,
        answer=r.answer,
        citations=[_link(c) for c in r.citations],
        removed_citations=r.removed_citations,
        model=r.model,
        prompt=f"{r.prompt.name}@v{r.prompt.version}:{r.prompt.sha256[:12]}",
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        latency_ms=r.latency_ms,
    )


@router.get("/patterns/{pattern_id}/diagnosis", response_model=Diagnosis, dependencies=[KeyDep])
def get_diagnosis(services: ServicesDep, pattern_id: str = Path(max_length=64)) -> Diagnosis:
    """The current diagnosis of a pattern (404 while none has been made)."""
    if services.core.pattern(pattern_id) is None:
        raise ApiError(404, "not_found", f"no pattern {pattern_id!r}")
    d = services.diagnoser.current(pattern_id)
    if d is None:
        with services.core.engine.connect() as conn:
            job = jobs.latest(conn, "diagnose", pattern_id)
        raise _no_diagnosis(pattern_id, job)
    return d


def _no_diagnosis(pattern_id: str, job: jobs.JobState | None) -> ApiError:
    """404 that says why: a job queued or running (and its last error), a job that gave up, or none."""
    if job is None or job.status == "done":
        return ApiError(
            404, "not_diagnosed", f"pattern {pattern_id} has no diagnosis yet; POST .../diagnose to queue one"
        )
    tried = f"after {job.attempts} attempt{'s' if job.attempts != 1 else ''}" if job.attempts else "not tried yet"
    error = f"; last error: {job.last_error}" if job.last_error else ""
    if job.status == "failed":
        return ApiError(404, "diagnosis_failed", f"the diagnosis of {pattern_id} failed {tried}{error}")
    when = f", next try {job.run_after.isoformat()}" if job.status == "queued" and job.run_after else ""
    return ApiError(
        404, f"diagnosis_{job.status}", f"the diagnosis of {pattern_id} is {job.status} ({tried}{when}){error}"
    )


@router.post("/patterns/{pattern_id}/diagnose", status_code=202, dependencies=[AdminDep])
def diagnose(services: ServicesDep, pattern_id: str = Path(max_length=64)) -> dict[str, Any]:
    """Queue a fresh diagnosis of the pattern (the worker runs it)."""
    try:
        queued = services.diagnoser.request(pattern_id, force=True)
    except PatternNotFound:
        raise ApiError(404, "not_found", f"no pattern {pattern_id!r}") from None
    return {"status": "queued" if queued else "already_queued", "pattern_id": pattern_id}


@router.post("/ask", response_model=AskPublic, dependencies=[KeyDep])
def ask(services: ServicesDep, body: AskRequest) -> AskPublic:
    """Answer a question about the stored errors, citing the events and patterns it relies on."""
    question = services.core.scrubber.text(body.question)
    try:
        result = services.diagnoser.ask(question, service=body.service, since=body.since)
    except Exception as exc:
        _raise_if_model_down(exc, services.runtime.settings)
        raise
    return _ask_public(result)


def _raise_if_model_down(exc: Exception, settings: Settings) -> None:
    """A 503 for a model outage; a 422 on `question` when the question and its evidence overflow the model."""
    if (refusal := context_overflow(exc)) is not None:
        raise ApiError(
            422,
            "question_too_long",
            "the question and the evidence it needs do not fit the model's context window; ask a shorter question",
            [{"field": "question", "message": refusal[:300]}],
        ) from exc
    reason = model_down(exc, settings)
    if reason is not None:
        raise ApiError(503, "model_unavailable", reason, headers={"Retry-After": "30"}) from exc


@router.post(
    "/ask/stream",
    dependencies=[KeyDep],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`delta` events with answer text, then one `done` event (or an `error` event)",
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        }
    },
)
async def ask_stream(services: ServicesDep, body: AskRequest) -> StreamingResponse:
    """Server-sent events: `delta` events with answer text as it is generated, then one `done` event."""
    question = services.core.scrubber.text(body.question)
    try:  # a model that cannot start is a 503 before the stream, as for POST /ask
        await asyncio.to_thread(services.runtime.model)
    except Exception as exc:
        _raise_if_model_down(exc, services.runtime.settings)
        raise

    async def events() -> AsyncIterator[bytes]:
        try:
            async for piece in services.diagnoser.ask_stream(question, service=body.service, since=body.since):
                if isinstance(piece, str):
                    yield b"event: delta\ndata: " + orjson.dumps({"text": piece}) + b"\n\n"
                else:
                    yield b"event: done\ndata: " + orjson.dumps(_ask_public(piece).model_dump()) + b"\n\n"
        except Exception as exc:  # the stream has started: report in-band, and log it with the request id
            log.exception("POST /ask/stream failed after the stream started")
            error = {"message": f"{type(exc).__name__}: {exc}", "request_id": request_id.get()}
            yield b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
