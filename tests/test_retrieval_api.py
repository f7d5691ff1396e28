"""Retrieval through the service: indexing off the request path, /search, /similar, reindex, knowledge import.

Real embedder (wordllama) and real Chroma, embedded and as a `chroma run` server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.api.app import create_app
from tests.conftest import INGEST_KEY
from tests.test_vectors import chroma_server  # noqa: F401  (module-scoped fixture)

REPO = Path(__file__).resolve().parents[1]

KNOWN = [
    {
        "service": "event-store",
        "error_type": "sqlx::Error",
        "severity": "high",
        "error_message": 'error returned from database: duplicate key value violates unique constraint "events_pkey" (id 77)',
    },
    {
        "service": "ai-orchestrator",
        "error_type": "httpx.ConnectError",
        "severity": "high",
        "error_message": "All connection attempts failed: connect to 127.0.0.1:11434 refused",
        "stack_trace": 'Traceback (most recent call last):\n  File "/app/orchestrator/ollama.py", line 88, in generate\n'
        "    r = await client.post(url)\nhttpx.ConnectError: All connection attempts failed\n",
    },
    {
        "service": "collab",
        "error_type": "WebSocketError",
        "severity": "medium",
        "error_message": "WebSocket closed with code 1006 (abnormal closure) for room 12",
    },
    {
        "service": "ci",
        "error_type": "CompileError",
        "severity": "high",
        "error_message": "error[E0308]: mismatched types: expected `u64`, found `i32` in src/store.rs",
    },
]


@pytest.fixture(params=["embedded", "server"])
def app_client(request, settings):  # type: ignore[no-untyped-def]
    if request.param == "server":
        settings = settings.model_copy(update={"chroma_url": request.getfixturevalue("chroma_server")})
        # the shared server keeps collections between tests: start clean
        import httpx

        base = f"{settings.chroma_url}/api/v2/tenants/default_tenant/databases/default_database"
        for name in ("patterns", "knowledge"):
            httpx.delete(f"{base}/collections/{name}")
    app = create_app(settings)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        yield c, app


def _seed(c, app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    ids = {}
    for ev in KNOWN:
        ids[ev["service"]] = c.post("/errors", json=ev).json()["pattern_id"]
    retrieval = app.state.services.runtime.retrieval()
    assert retrieval.pending_patterns() == len(KNOWN), "ingest does not embed: indexing waits for the worker"
    app.state.services.worker.tick()
    assert retrieval.pending_patterns() == 0
    return ids


def test_new_occurrence_retrieves_its_pattern_first(app_client) -> None:  # type: ignore[no-untyped-def]
    c, app = app_client
    ids = _seed(c, app)
    new = {
        "service": "ai-orchestrator",
        "error_type": "httpx.ConnectError",
        "severity": "high",
        "error_message": "All connection attempts failed: connect to 10.1.2.3:11434 refused",
        "stack_trace": KNOWN[1]["stack_trace"].replace("line 88", "line 91"),
    }
    hits = c.post("/search", json={"event": new, "knowledge": False}).json()
    assert hits[0]["id"] == ids["ai-orchestrator"]
    unrelated = {
        "service": "billing",
        "error_type": "ZeroDivisionError",
        "severity": "low",
        "error_message": "division by zero in invoice total",
    }
    hits2 = c.post("/search", json={"event": unrelated, "knowledge": False}).json()
    assert hits2[0]["id"] != ids["ai-orchestrator"] or hits2[0]["score"] < hits[0]["score"] - 0.2
    same_ws = c.post("/search", json={"text": "websocket abnormal closure 1006", "knowledge": False}).json()
    assert same_ws[0]["id"] == ids["collab"]


def test_similar_endpoint_filters_and_excludes_itself(app_client) -> None:  # type: ignore[no-untyped-def]
    c, app = app_client
    ids = _seed(c, app)
    pid = ids["event-store"]
    sims = c.get(f"/patterns/{pid}/similar?k=10").json()
    assert pid not in [s["id"] for s in sims] and sims
    only = c.get(f"/patterns/{pid}/similar?k=10&service=collab").json()
    assert {s["id"] for s in only if s["kind"] == "pattern"} == {ids["collab"]}
    assert c.get("/patterns/pat_nope/similar").status_code == 404
    assert c.post("/search", json={}).status_code == 422
    assert c.post("/search", json={"text": "x", "k": 1000}).status_code == 422


def test_knowledge_import_and_reindex_via_cli(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from agent.cli import app as cli
    from agent.settings import get_settings

    monkeypatch.setenv("ERRLEARN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ERRLEARN_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    r = CliRunner().invoke(cli, ["knowledge", "import", str(REPO / "knowledge")])
    assert r.exit_code == 0, r.output
    assert "new" in r.output
    r = CliRunner().invoke(cli, ["similar", "--text", "No space left on device while writing WAL"])
    assert r.exit_code == 0 and "disk" in r.output.lower(), r.output
    r = CliRunner().invoke(cli, ["reindex"])
    assert r.exit_code == 0 and "knowledge entries" in r.output, r.output
    r = CliRunner().invoke(cli, ["knowledge", "import", "/nonexistent/path"])
    assert r.exit_code == 2 and "does not exist" in r.output
