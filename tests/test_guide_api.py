"""The /guide API: read with any key, review with the admin key, one error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.api.routes import guide as guide_routes
from agent.bootstrap import Services, build_services
from agent.guide.service import Guide
from agent.settings import Settings
from tests.conftest import INGEST_KEY, admin_headers
from tests.test_guide_support import FakeClock, ScriptedModel


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, Services]]:
    settings = settings.model_copy(update={"guide_path": settings.data_dir / "GUIDE.md"})
    model = ScriptedModel()
    holder: dict[str, Services] = {}
    clock = FakeClock()

    def services_factory(s: Settings) -> Services:
        services = build_services(s, clock=clock, model_factory=lambda _cfg: model.runtime())
        services.guide = Guide(services.diagnoser)  # type: ignore[attr-defined]  # the lead wires this field
        holder["services"] = services
        return services

    app = create_app(settings, services_factory=services_factory)
    app.include_router(guide_routes.router)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        yield client, holder["services"]


def _seed_drafts(client: TestClient, services: Services) -> None:
    for body in (
        {
            "service": "api",
            "error_type": "ConnectionRefusedError",
            "error_message": "connection to db:5432 refused",
            "severity": "high",
        },
        {
            "service": "worker",
            "error_type": "OSError",
            "error_message": "[Errno 28] No space left on device",
            "severity": "critical",
        },
    ):
        assert client.post("/errors", json=body).status_code == 202
    assert client.post("/trigger-learning", headers=admin_headers()).status_code == 202
    report = services.guide.learning.tick()  # type: ignore[attr-defined]
    assert report is not None and report.drafts_created == 2, report
    services.runtime.clock.advance(hours=1)  # type: ignore[attr-defined]  # the fake clock


def test_reads_need_a_key_and_reviews_need_the_admin_key(api: tuple[TestClient, Services]) -> None:
    client, services = api
    _seed_drafts(client, services)
    assert client.get("/guide", headers={"Authorization": ""}).status_code == 401
    assert client.get("/guide").status_code == 200
    refused = client.post("/guide/ERROR-001/approve")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.post("/guide/ERROR-001/reject", json={"reason": "x"}).status_code == 403


def test_review_queue_show_with_evidence_and_approve(api: tuple[TestClient, Services]) -> None:
    client, services = api
    _seed_drafts(client, services)
    listed = client.get("/guide", params={"status": "draft"}).json()
    assert listed["count"] == 2 and [e["id"] for e in listed["data"]] == ["ERROR-001", "ERROR-002"]

    ident = next(e["id"] for e in listed["data"] if e["error_type"] == "ConnectionRefusedError")
    shown = client.get(f"/guide/{ident.lower()}").json()
    assert shown["status"] == "draft" and shown["metrics"] is None
    [evidence] = shown["evidence_items"]
    assert evidence["kind"] == "event" and "connection to db:5432 refused" in evidence["text"]
    assert shown["patterns"][0]["error_type"] == "ConnectionRefusedError"
    assert [r["action"] for r in shown["revisions"]] == ["drafted"]

    body = {"by": "alice", "changes": {"title": "Database connection refused"}}
    approved = client.post(f"/guide/{ident}/approve", json=body, headers=admin_headers())
    assert approved.status_code == 200, approved.text
    data: dict[str, Any] = approved.json()
    assert data["rendered"] is True and data["entries"][0]["status"] == "approved"
    guide_text = services.guide.guide_path.read_text()  # type: ignore[attr-defined]
    assert f"## {ident}: Database connection refused" in guide_text

    after = client.get(f"/guide/{ident}").json()
    assert after["metrics"]["before"]["events"] == 1 and after["metrics"]["after"]["events"] == 0
    assert client.get("/guide", params={"status": "approved"}).json()["data"][0]["metrics"]["entry_id"] == ident


def test_reject_edit_merge_and_errors(api: tuple[TestClient, Services]) -> None:
    client, services = api
    _seed_drafts(client, services)
    admin = admin_headers()
    assert client.post("/guide/ERROR-002/reject", json={}, headers=admin).status_code == 422  # a reason is required
    rejected = client.post("/guide/ERROR-002/reject", json={"reason": "not useful", "by": "bob"}, headers=admin)
    assert rejected.status_code == 200 and rejected.json()["entries"][0]["rejection_reason"] == "not useful"
    again = client.post("/guide/ERROR-002/approve", headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"

    edited = client.post(
        "/guide/ERROR-001/edit",
        headers=admin,
        json={"changes": {"solution_steps": ["Start PostgreSQL."]}, "approve": True},
    )
    assert edited.status_code == 200 and edited.json()["entries"][0]["solution_steps"] == ["Start PostgreSQL."]
    unknown = client.post("/guide/ERROR-001/edit", headers=admin, json={"changes": {"status": "approved"}})
    assert unknown.status_code == 422  # only content fields can be edited

    assert client.get("/guide/ERROR-404").status_code == 404
    assert client.get("/guide/not-an-id").status_code == 422
    merged = client.post("/guide/ERROR-002/merge", json={"into": "ERROR-001"}, headers=admin)
    assert merged.status_code == 409  # a rejected entry cannot be merged
    rendered = client.post("/guide/render", headers=admin)
    assert rendered.status_code == 200 and rendered.json()["changed"] is False
