"""Reading stored events."""

from __future__ import annotations

from fastapi import APIRouter, Path

from agent.api.deps import CoreDep, KeyDep
from agent.api.errors import ApiError
from agent.api.schemas import EventPublic

router = APIRouter(prefix="/events", tags=["events"], dependencies=[KeyDep])


@router.get("/{event_id}", response_model=EventPublic)
def get_event(core: CoreDep, event_id: str = Path(max_length=64)) -> EventPublic:
    event = core.event(event_id)
    if event is None:
        raise ApiError(404, "not_found", f"no event {event_id!r}")
    return EventPublic.model_validate(event.model_dump())
