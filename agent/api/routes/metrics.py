"""`GET /metrics`: Prometheus text format. Public by default, like most exporters (ERRLEARN_METRICS_PUBLIC)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent import metrics
from agent.api.deps import require_key

router = APIRouter(tags=["metrics"])


async def metrics_access(request: Request) -> None:
    """Any valid key is needed when `metrics_public` is off; otherwise everyone may scrape."""
    # getattr: the setting may be absent in an older Settings; public is the documented default.
    if not getattr(request.app.state.settings, "metrics_public", True):
        await require_key(request)


@router.get(
    "/metrics",
    dependencies=[Depends(metrics_access)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text exposition format"}},
)
def get_metrics(request: Request) -> Response:
    """Counters, histograms and database-backed gauges for Prometheus (see docs/operations.md)."""
    registered: metrics.Metrics = request.app.state.metrics
    return Response(generate_latest(registered.registry), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> metrics.Metrics:
    """Give `app` its own registry (also the process's active one) and serve it at `/metrics`."""
    state = app.state
    registered = metrics.install(metrics.Metrics(core=lambda: getattr(state, "core", None)))
    app.state.metrics = registered
    app.include_router(router)
    return registered
