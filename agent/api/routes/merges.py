"""Merge decisions: list them, run the merge pass now, unmerge a pattern (admin)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from agent.api.deps import AdminDep, CoreDep, KeyDep
from agent.api.errors import ApiError
from agent.store import merges

router = APIRouter(prefix="/patterns", tags=["patterns"])
_PATTERN_ID = Path(max_length=64, pattern=r"^[A-Za-z0-9_]+$")


@router.get("/{pattern_id}/merges", dependencies=[KeyDep])
def list_merges(core: CoreDep, pattern_id: str = _PATTERN_ID) -> dict[str, Any]:
    """Merge decisions that involve this pattern (as the merged one or the target), with their reasons."""
    rows = merges.aliases_of(core.engine, pattern_id)
    return {"data": rows, "count": len(rows)}


@router.post("/merge-pass", dependencies=[AdminDep])
async def run_merge_pass(core: CoreDep) -> dict[str, Any]:
    """Run the background merge pass now (the worker runs it every `grouping_merge_every_s`)."""
    report = await run_in_threadpool(merges.merge_pass, core.settings, core.engine)
    return dataclasses.asdict(report)


@router.post("/{pattern_id}/unmerge", dependencies=[AdminDep])
async def unmerge(core: CoreDep, pattern_id: str = _PATTERN_ID) -> dict[str, Any]:
    """Split a merged pattern off its target for good: its events come back, later events stay with it."""
    try:
        return await run_in_threadpool(merges.unmerge, core.engine, pattern_id, actor="admin-api")
    except merges.UnknownPattern as exc:
        raise ApiError(404, "not_found", f"pattern {pattern_id} not found") from exc
    except merges.NotMerged as exc:
        raise ApiError(409, "not_merged", str(exc)) from exc
