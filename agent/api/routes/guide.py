"""The error prevention guide: list and show entries (any key); review them (admin key)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from agent.api.deps import AdminDep, KeyDep
from agent.api.errors import ApiError
from agent.guide.models import GuideEntry, GuideRevision, GuideStatus
from agent.guide.render import GuideFileNotManaged
from agent.guide.repo import ConcurrentChange, EntryNotFound
from agent.guide.review import EntryEdit, InvalidTransition
from agent.guide.service import Guide, ReviewOutcome

router = APIRouter(prefix="/guide", tags=["guide"])
EntryId = Annotated[str, Path(min_length=7, max_length=20, pattern=r"^[Ee][Rr][Rr][Oo][Rr]-\d{1,9}$")]
Reviewer = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w .@+-]+$")]


def get_guide(request: Request) -> Guide:
    guide: Guide | None = getattr(request.app.state.services, "guide", None)
    if guide is None:
        raise ApiError(503, "guide_unavailable", "the guide is not wired into this server")
    return guide


GuideDep = Annotated[Guide, Depends(get_guide)]


class GuideEntryPublic(GuideEntry):
    metrics: dict[str, Any] | None = None
    """Approved entries: occurrences of their patterns before and after approval (per day)."""


class GuideEntriesPublic(BaseModel):
    data: list[GuideEntryPublic]
    count: int


class EvidencePublic(BaseModel):
    id: str
    kind: str
    """event, pattern, knowledge, guide, or missing (no longer stored)."""
    text: str | None


class GuideEntryDetailPublic(GuideEntryPublic):
    evidence_items: list[EvidencePublic]
    """The cited evidence, to review the draft next to it."""
    patterns: list[dict[str, Any]]
    revisions: list[GuideRevision]


class ReviewPublic(BaseModel):
    entries: list[GuideEntryPublic]
    """The entries the action changed (for merge/supersede: the retired one, then the one kept)."""
    rendered: bool
    """The guide file changed."""
    warnings: list[str]


class ApproveRequest(BaseModel):
    by: Reviewer = "admin"
    changes: EntryEdit | None = None
    """Edits applied before approving (edit then approve in one step)."""


class RejectRequest(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    by: Reviewer = "admin"


class EditRequest(BaseModel):
    changes: EntryEdit
    approve: bool = False
    by: Reviewer = "admin"


class MergeRequest(BaseModel):
    into: Annotated[str, Field(max_length=20, pattern=r"^[Ee][Rr][Rr][Oo][Rr]-\d{1,9}$")]
    """The entry that is kept; this one is superseded by it."""
    by: Reviewer = "admin"


class SupersedeRequest(BaseModel):
    by_entry: Annotated[str, Field(max_length=20, pattern=r"^[Ee][Rr][Rr][Oo][Rr]-\d{1,9}$")]
    """The entry that replaces this one."""
    by: Reviewer = "admin"


@contextmanager
def _review_errors() -> Iterator[None]:
    try:
        yield
    except EntryNotFound as exc:
        raise ApiError(404, "not_found", f"no guide entry {exc}") from None
    except InvalidTransition as exc:
        raise ApiError(409, "invalid_transition", str(exc)) from None
    except ConcurrentChange as exc:
        raise ApiError(409, "conflict", str(exc)) from None


def _review(action: Callable[[], ReviewOutcome]) -> ReviewPublic:
    with _review_errors():
        outcome = action()
    return ReviewPublic(
        entries=[GuideEntryPublic.model_validate(e.model_dump()) for e in outcome.entries],
        rendered=outcome.rendered,
        warnings=outcome.warnings,
    )


@router.get("", response_model=GuideEntriesPublic, dependencies=[KeyDep])
def list_entries(
    guide: GuideDep,
    status: GuideStatus | None = None,
    limit: int = Query(default=200, ge=1, le=1000),
) -> GuideEntriesPublic:
    """Guide entries by number (filter by status, e.g. `?status=draft` for the review queue)."""
    entries = guide.entries(status, limit)
    metrics = {m["entry_id"]: m for m in guide.metrics([e.id for e in entries if e.status is GuideStatus.approved])}
    data = [GuideEntryPublic(**e.model_dump(), metrics=metrics.get(e.id)) for e in entries]
    return GuideEntriesPublic(data=data, count=len(data))


@router.get("/render", include_in_schema=False)
def render_is_post_only() -> None:
    """`GET /guide/render` would otherwise read "render" as an entry id (404): it is a 405 naming POST."""
    raise ApiError(405, "method_not_allowed", "POST /guide/render renders the guide", headers={"Allow": "POST"})


@router.get("/{entry_id}", response_model=GuideEntryDetailPublic, dependencies=[KeyDep])
def show_entry(guide: GuideDep, entry_id: EntryId) -> GuideEntryDetailPublic:
    """One entry next to its evidence, linked patterns, revision history and prevention metric."""
    detail = guide.detail(entry_id)
    if detail is None:
        raise ApiError(404, "not_found", f"no guide entry {entry_id.upper()}")
    return GuideEntryDetailPublic(
        **detail.entry.model_dump(),
        metrics=detail.metrics,
        evidence_items=[EvidencePublic.model_validate(e) for e in detail.evidence],
        patterns=detail.patterns,
        revisions=detail.revisions,
    )


@router.post("/{entry_id}/approve", response_model=ReviewPublic, dependencies=[AdminDep])
def approve(guide: GuideDep, entry_id: EntryId, body: ApproveRequest | None = None) -> ReviewPublic:
    """Approve a draft (or a drafted revision of an approved entry); renders the guide and indexes the entry."""
    req = body or ApproveRequest()
    return _review(lambda: guide.approve(entry_id, by=req.by, changes=req.changes))


@router.post("/{entry_id}/reject", response_model=ReviewPublic, dependencies=[AdminDep])
def reject(guide: GuideDep, entry_id: EntryId, body: RejectRequest) -> ReviewPublic:
    """Reject a draft (or a drafted revision) with a reason; its evidence is not drafted from again."""
    return _review(lambda: guide.reject(entry_id, by=body.by, reason=body.reason))


@router.post("/{entry_id}/edit", response_model=ReviewPublic, dependencies=[AdminDep])
def edit(guide: GuideDep, entry_id: EntryId, body: EditRequest) -> ReviewPublic:
    """Change an entry's text; with `approve: true`, approve it in the same step."""
    return _review(lambda: guide.edit(entry_id, body.changes, by=body.by, approve=body.approve))


@router.post("/{entry_id}/merge", response_model=ReviewPublic, dependencies=[AdminDep])
def merge(guide: GuideDep, entry_id: EntryId, body: MergeRequest) -> ReviewPublic:
    """Merge this entry into `into`: its patterns and list items move there, and it is superseded."""
    return _review(lambda: guide.merge(entry_id, body.into, by=body.by))


@router.post("/{entry_id}/supersede", response_model=ReviewPublic, dependencies=[AdminDep])
def supersede(guide: GuideDep, entry_id: EntryId, body: SupersedeRequest) -> ReviewPublic:
    """Replace this entry by `by_entry` (its patterns move; its text does not)."""
    return _review(lambda: guide.supersede(entry_id, body.by_entry, by=body.by))


@router.post("/render", dependencies=[AdminDep])
def render(guide: GuideDep) -> dict[str, Any]:
    """Render the approved entries into the guide file now."""
    try:
        changed = guide.render()
    except GuideFileNotManaged as exc:
        raise ApiError(409, "guide_not_managed", str(exc)) from None
    return {"changed": changed, "path": str(guide.guide_path)}
