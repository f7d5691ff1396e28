"""Patterns: groups of events that are the same error."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path, Query

from agent.api.deps import CoreDep, KeyDep
from agent.api.errors import ApiError
from agent.api.schemas import MAX_INT, EventPublic, IsoDateTime, PatternDetailPublic, PatternPublic, PatternsPublic
from agent.domain import Severity

router = APIRouter(prefix="/patterns", tags=["patterns"], dependencies=[KeyDep])


@router.get("", response_model=PatternsPublic)
def list_patterns(
    core: CoreDep,
    service: str | None = Query(default=None, max_length=64),
    severity: Severity | None = None,
    q: str | None = Query(default=None, max_length=200, description="substring of template, type or service"),
    since: IsoDateTime | None = Query(default=None, description="only patterns seen since (ISO 8601)"),
    sort: Literal["last_seen", "count"] = "last_seen",
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_INT),
) -> PatternsPublic:
    data, total = core.patterns(
        service=service, severity=severity, q=q, since=since, sort=sort, limit=limit, offset=offset
    )
    return PatternsPublic(data=[PatternPublic.model_validate(p.model_dump()) for p in data], count=total)


@router.get("/{pattern_id}", response_model=PatternDetailPublic)
def get_pattern(
    core: CoreDep,
    pattern_id: str = Path(max_length=64),
    samples: int = Query(default=10, ge=0, le=100),
) -> PatternDetailPublic:
    found = core.pattern_detail(pattern_id, samples)
    if found is None:
        raise ApiError(404, "not_found", f"no pattern {pattern_id!r}")
    pattern, events = found
    return PatternDetailPublic(
        **pattern.model_dump(), samples=[EventPublic.model_validate(e.model_dump()) for e in events]
    )
