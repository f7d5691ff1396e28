"""The ingest fast path: the ingest endpoints are served without FastAPI's router, with the same contract."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from agent.api.fast_ingest import _handler

EVENT = {"service": "api", "error_type": "ValueError", "error_message": "bad id 42", "severity": "high"}


@pytest.mark.parametrize(
    ("path", "taken"),
    [
        ("/errors", True),
        ("/errors/batch", True),
        ("/api/7/envelope/", True),
        ("/api/7/store/", True),
        ("/billing/api/7/envelope/", True),
        ("/errors/", False),  # as the router: no route, 404/redirect from FastAPI
        ("/api/7/envelope", False),
        ("/a/b/api/7/store/", False),
        ("/events", False),
    ],
)
def test_the_matcher_takes_exactly_the_ingest_routes(path: str, taken: bool) -> None:
    assert (_handler(path) is not None) is taken


def _drop_ingest_routes(app: Any) -> None:
    ingest = {"/errors", "/errors/batch", "/api/{project_id}/envelope/", "/{prefix}/api/{project_id}/store/"}
    app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, APIRoute) and r.path in ingest)]


def test_ingest_is_served_without_the_router(client: Any) -> None:
    _drop_ingest_routes(client.app)
    r = client.post("/errors", json=EVENT)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    assert r.headers["x-request-id"]
    batch = client.post("/errors/batch", json={"errors": [EVENT, {"service": "api"}]})
    assert batch.status_code == 202
    body = batch.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["error"]["fields"][0]["field"].startswith("errors[1].")
    assert client.get(f"/events/{r.json()['event_id']}").status_code == 200


def test_fast_path_keeps_auth_limits_and_messages(client: Any) -> None:
    anonymous = client.post("/errors", json=EVENT, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"]["code"] == "unauthorized"
    bad = client.post("/errors", json={"service": "api"})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("invalid event: ")
    big = client.post("/errors", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert big.status_code == 413
    sentry_anon = client.post("/api/1/store/", json={"message": "x"}, headers={"Authorization": ""})
    assert sentry_anon.status_code == 401


def test_openapi_still_describes_the_ingest_endpoints(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/errors"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventCreate"
    }
    assert "/errors/batch" in paths and "/api/{project_id}/envelope/" in paths
