"""Counters, analytics, status and health."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from agent.api.deps import AdminDep, CoreDep, KeyDep
from agent.api.responses import FastJSON

router = APIRouter(tags=["stats"])


@router.get("/health")
def health(core: CoreDep) -> FastJSON:
    """Liveness and database reachability. No auth, so load balancers can call it."""
    ok = core.healthy()
    return FastJSON({"status": "ok" if ok else "degraded", "database": ok}, status_code=200 if ok else 503)


@router.get("/status", dependencies=[KeyDep])
def status(core: CoreDep) -> dict[str, Any]:
    """Version, uptime, database, writer queue, jobs, learning runs."""
    return core.status()


@router.get("/stats", dependencies=[KeyDep])
def stats(core: CoreDep) -> dict[str, Any]:
    """Received and rejected events since this process started and since the last reset."""
    return core.stats()


@router.get("/analytics", dependencies=[KeyDep])
def analytics(
    core: CoreDep,
    hours: int = Query(default=24, ge=1, le=24 * 90),
    bucket: Literal["hour", "day"] = "hour",
    top: int = Query(default=10, ge=1, le=100),
) -> dict[str, Any]:
    """Trends per hour/day, top patterns, new vs recurring patterns, per-service totals, and the guide's
    prevention metric (occurrences of each approved entry's patterns per day before vs after approval)."""
    from agent.guide.metrics import prevention_metrics

    out = core.analytics(hours=hours, bucket=bucket, top=top)
    out["prevention"] = prevention_metrics(core.engine, core.clock())
    return out


@router.post("/reset-stats", dependencies=[AdminDep])
def reset_stats(core: CoreDep) -> dict[str, Any]:
    """Reset the counters. Never deletes events."""
    at = core.reset_stats()
    return {"status": "reset", "since": at.isoformat()}


@router.post("/trigger-learning", status_code=202, dependencies=[AdminDep])
def trigger_learning(core: CoreDep) -> dict[str, Any]:
    """Enqueue a learning run (drafting guide entries for new and recurring patterns)."""
    run_id = core.request_learning("api")
    return {"status": "queued", "run_id": run_id}
