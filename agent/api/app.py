"""The FastAPI application (composition root for the HTTP face)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse

from agent import __version__
from agent.api import docs, errors, ui
from agent.api.fast_ingest import FastIngestMiddleware
from agent.api.limits import BodyLimitMiddleware
from agent.api.openapi_errors import ERROR_RESPONSES
from agent.api.request_id import RequestIdMiddleware
from agent.api.routes import diagnosis, events, guide, merges, patterns, recovery, search, sentry, stats
from agent.api.routes import errors as error_routes
from agent.api.routes import metrics as metrics_routes
from agent.bootstrap import Services, build_services
from agent.ingest.normalize import EventCreate
from agent.keys import KeyRing, load_or_create
from agent.settings import Settings
from agent.shutdown import services_budget

log = logging.getLogger(__name__)


def configured_keys(settings: Settings) -> KeyRing:
    return KeyRing(
        tuple(k.get_secret_value() for k in settings.api_keys),
        settings.admin_key.get_secret_value() if settings.admin_key else None,
    )


def create_app(
    settings: Settings,
    *,
    keys: KeyRing | None = None,
    services_factory: Callable[[Settings], Services] | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """Build the app. Keys default to the configured ones, else those generated into the data dir.

    `freeze_heap`: once started, keep the start-up heap out of the garbage collector (`gc.freeze`): the
    serving processes pass True.
    """
    ring, generated = load_or_create(settings.data_dir, keys or configured_keys(settings))
    if generated is not None:
        log.warning("no API keys configured: using the keys in %s", generated)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = (services_factory or build_services)(settings)
        services.start(worker=settings.worker, consume=True)
        app.state.services = services
        app.state.core = services.core
        if freeze_heap:
            # What start-up built (modules, models, compiled schemas: most of the heap) moves out of the
            # collector's sight, so a full collection scans only what requests allocate: without it one
            # took ~100 ms every few thousand requests, the p99 of single-event ingest. Only in a serving
            # process: what is frozen and dies later in a cycle is never freed (tests build many apps).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            app.state.shutdown_clean = services.close(services_budget(settings.shutdown_grace_s))

    app = FastAPI(
        title="errlearn",
        version=__version__,
        description="Local-first diagnostics that learns from every error your services throw.",
        lifespan=lifespan,
        docs_url=None,  # served offline by agent.api.docs
        redoc_url=None,  # ReDoc loads from a CDN only
    )
    app.state.keys = ring
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(FastIngestMiddleware, state=app.state)  # ingest without routing (innermost)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # added last = outermost: even a 413 carries X-Request-ID
    metrics_routes.install(app)  # GET /metrics, with this app's own registry
    for router in (
        error_routes.router,
        events.router,
        merges.router,
        patterns.router,
        search.router,
        diagnosis.router,
        guide.router,
        recovery.router,
        stats.router,
        sentry.router,
    ):
        app.include_router(router, responses=ERROR_RESPONSES)
    ui.install(app)  # web UI: /ui pages, /ui/static, its error pages
    docs.install(app)  # /docs: Swagger UI from a PyPI package, no CDN

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            event_schema = EventCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(event_schema.pop("$defs", {}))
            components["EventCreate"] = event_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
