"""Ask "why did this fail?": a chat box with streamed answers and citations as links.

With JavaScript, `app.js` posts the form to `/ui/ask/stream` and renders the server-sent events as they
arrive; without it, the form posts to `/ui/ask` and the page comes back with the whole answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, StreamingResponse

from agent.api.ui import views
from agent.api.ui.csrf import csrf_protect
from agent.api.ui.deps import ServicesDep, SessionDep
from agent.api.ui.forms import Form, read_form
from agent.api.ui.templating import SECURITY_HEADERS, ref_kind, ref_url, render
from agent.bootstrap import Services

if TYPE_CHECKING:
    from agent.llm.agents import AskResult

router = APIRouter(prefix="/ui/ask", include_in_schema=False, dependencies=[Depends(csrf_protect)])
FormDep = Annotated[Form, Depends(read_form)]
IDS = re.compile(r"\b(pat_[0-9a-f]{6,32}|ev_[0-9a-f]{10,32}|ERROR-\d{1,9})\b")


def linkify(text: str) -> Markup:
    """Escape the answer, then turn the real ids in it into links (aliases like [P1] stay text)."""
    escaped = str(escape(text))
    return Markup(IDS.sub(lambda m: f'<a href="{ref_url(m.group(1))}">{m.group(1)}</a>', escaped))


def present(result: AskResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "answer": result.answer,
        "answer_html": str(linkify(result.answer)),
        "citations": [{"id": c, "kind": ref_kind(c), "href": ref_url(c)} for c in result.citations],
        "removed_citations": result.removed_citations,
        "model": result.model,
        "latency_ms": result.latency_ms,
    }


def _question(form: Form) -> tuple[str, str | None, str]:
    """(question, service, error): the same bounds as `POST /ask`."""
    question = form.text("question", 4000)
    service = form.text("service", 200) or None
    if len(question) < 3:
        return question, service, "Ask a question of at least 3 characters."
    if len(question) > 2000:
        return question, service, "Questions are limited to 2000 characters."
    if service is not None and len(service) > 64:
        return question, service, "Unknown service."
    return question, service, ""


def _page(services: Services, **values: Any) -> dict[str, Any]:
    base = {"services": views.service_names(services), "question": "", "service": "", "result": None, "error": ""}
    return base | values


@router.get("")
def ask_page(request: Request, session: SessionDep, services: ServicesDep) -> HTMLResponse:
    return render(request, "ask", _page(services), session=session, active="ask")


@router.post("")
async def ask_form(request: Request, session: SessionDep, services: ServicesDep, form: FormDep) -> HTMLResponse:
    """The answer without JavaScript: the whole page comes back once the model is done."""
    question, service, error = _question(form)
    values: dict[str, Any] = {"question": question, "service": service or "", "error": error}
    if not error:
        scrubbed = services.core.scrubber.text(question)
        try:
            result = await run_in_threadpool(services.diagnoser.ask, scrubbed, service=service)
            values["result"] = present(result)
        except Exception as exc:  # the model may be down: say so on the page
            values["error"] = f"The model could not answer: {type(exc).__name__}: {exc}"
    status = 422 if error else 200
    context = _page(services, **values)
    return render(request, "ask", context, session=session, status=status, active="ask")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.post("/stream")
async def ask_stream(session: SessionDep, services: ServicesDep, form: FormDep) -> StreamingResponse:
    """Server-sent events: `delta` {text} as the answer grows, then `done` (the checked answer) or `error`."""
    question, service, error = _question(form)

    async def events() -> AsyncIterator[bytes]:
        if error:
            yield _sse("error", {"message": error})
            return
        scrubbed = services.core.scrubber.text(question)
        try:
            async for piece in services.diagnoser.ask_stream(scrubbed, service=service):
                if isinstance(piece, str):
                    yield _sse("delta", {"text": piece})
                else:
                    yield _sse("done", present(piece))
        except Exception as exc:  # the stream has started: report in-band
            yield _sse("error", {"message": f"The model could not answer: {type(exc).__name__}: {exc}"})

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}  # nginx: pass events through as they come
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
