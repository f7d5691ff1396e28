"""Similar incidents and free-text / event search."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.api.deps import KeyDep
from agent.api.errors import ApiError
from agent.api.schemas import IsoDateTime
from agent.bootstrap import Services
from agent.domain import Severity
from agent.ingest.normalize import EventCreate
from agent.retrieval.service import SearchFilters, Similar, query_text
from agent.store import diagnoses

router = APIRouter(tags=["search"], dependencies=[KeyDep])


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class SimilarPublic(BaseModel):
    kind: str
    id: str
    score: float
    title: str
    text: str
    service: str | None = None
    diagnosis: dict[str, Any] | None = None
    """The latest diagnosis of a similar pattern, when there is one."""
    why: dict[str, Any] | None = None
    """Why a pattern matched: vector score, BM25 score, trace similarity, their ranks, shared frames and rare
    words, and a one-line `summary` (agent/retrieval/hybrid.py `Why`). None for knowledge entries."""


class SearchRequest(BaseModel):
    # Exactly one of `text` and `event`, in the schema too (a client's generator must not send `{}`).
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["event"], "properties": {"event": {"type": "object"}}},
            ]
        }
    )

    text: Annotated[str | None, Field(min_length=1, max_length=20_000)] = None
    """Free text, e.g. an error message or a question."""
    event: EventCreate | None = None
    """Or an error event body, embedded the way stored patterns are."""
    k: int = Field(default=5, ge=1, le=50)
    service: str | None = Field(default=None, max_length=64)
    severity: Severity | None = None
    since: IsoDateTime | None = None
    knowledge: bool = Field(default=True, strict=True)
    """Also return knowledge entries. A JSON boolean: `0` or `"yes"` is a 422, not a guess."""


def _public(services: Services, hits: list[Similar]) -> list[SimilarPublic]:
    with services.core.engine.connect() as conn:
        diags = diagnoses.current_for(conn, [h.id for h in hits if h.kind == "pattern"])
    out = []
    for h in hits:
        d = diags.get(h.id)
        out.append(
            SimilarPublic(
                kind=h.kind,
                id=h.id,
                score=round(h.score, 4),
                title=h.title,
                text=h.document,
                service=h.metadata.get("service"),
                diagnosis=d.model_dump(mode="json", include={"status", "summary", "root_cause", "confidence"})
                if d
                else None,
                why=(dataclasses.asdict(h.why) | {"summary": h.why.summary()}) if h.why else None,
            )
        )
    return out


@router.get("/patterns/{pattern_id}/similar", response_model=list[SimilarPublic])
def similar(
    services: ServicesDep,
    pattern_id: str = Path(max_length=64),
    k: int = Query(default=5, ge=1, le=50),
    service: str | None = Query(default=None, max_length=64),
    severity: Severity | None = None,
    since: IsoDateTime | None = None,
) -> list[SimilarPublic]:
    """Past patterns (and knowledge entries) most similar to this one, best first."""
    pattern = services.core.pattern(pattern_id)
    if pattern is None:
        raise ApiError(404, "not_found", f"no pattern {pattern_id!r}")
    filters = SearchFilters(service=service, severity=severity.value if severity else None, since=since)
    return _public(services, services.runtime.retrieval().similar_to_pattern(pattern, k=k, filters=filters))


@router.post("/search", response_model=list[SimilarPublic])
def search(services: ServicesDep, body: SearchRequest) -> list[SimilarPublic]:
    """Search patterns and knowledge by free text or by an error event."""
    if bool(body.text) == bool(body.event):
        raise ApiError(
            422,
            "validation_error",
            "give exactly one of 'text' or 'event'",
            [{"field": "text", "message": "text or event required"}],
        )
    stack: str | None = None
    if body.event is not None:
        ev = services.core.normalize(body.event, services.runtime.clock())
        stack = ev["stack_trace"]
        text = query_text(
            service=ev["service"],
            error_type=ev["error_type"],
            message=ev["error_message"],
            stack_trace=ev["stack_trace"],
        )
    else:
        text = services.core.scrubber.text(body.text or "")
    filters = SearchFilters(
        service=body.service, severity=body.severity.value if body.severity else None, since=body.since
    )
    hits = services.runtime.retrieval().search(
        text, k=body.k, filters=filters, knowledge_k=3 if body.knowledge else 0, stack_trace=stack
    )
    return _public(services, hits)


@router.get("/knowledge/{entry_id}")
def knowledge_entry(services: ServicesDep, entry_id: str = Path(max_length=200)) -> dict[str, Any]:
    entry = services.runtime.retrieval().knowledge_entry(entry_id)
    if entry is None:
        raise ApiError(404, "not_found", f"no knowledge entry {entry_id!r}")
    return entry
