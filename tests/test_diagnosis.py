"""Diagnosis: grounded in retrieved evidence, citations checked by code, cached per pattern, queued."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from agent.domain import DiagnosisStatus
from agent.ingest.normalize import EventCreate
from agent.llm.providers import ModelUnavailable
from agent.retrieval.knowledge import parse_markdown
from agent.store.tables import JobRow
from tests.diag_support import draft, scripted, services_with

RUNBOOK = """# Database connection refused

## Symptoms
psycopg.OperationalError: connection to server at "db" port 5432 failed: Connection refused

## Mitigation
Start PostgreSQL and check that DATABASE_URL points at it.
"""


def _event(i: int, kind: int = 0) -> EventCreate:
    if kind == 0:
        return EventCreate(
            service="orchestrator",
            error_type="OperationalError",
            severity="high",
            error_message=f'connection to server at "db" (10.0.0.{i % 9}), port 5432 failed: Connection refused',
        )
    return EventCreate(
        service=f"svc{kind}",
        error_type=f"Err{kind}",
        severity="medium",
        error_message=f"job {i} of kind {kind} failed with code {i % 7}",
    )


@pytest.fixture
def make(settings):  # type: ignore[no-untyped-def]
    made = []
    # These tests drive the model's free-form writing path (the known-cause and picking paths have
    # their own tests in test_diagnosis_paths.py): no entry is ever a strong enough match.
    writing = settings.model_copy(update={"diagnosis_mode": "write", "known_cause_min_score": 1.0})

    def _make(model):  # type: ignore[no-untyped-def]
        s = services_with(writing, model).start(worker=False)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.close()


def _pattern(services) -> str:  # type: ignore[no-untyped-def]
    stored = services.core.ingest_sync([_event(i) for i in range(3)])
    return stored[0].pattern_id


def test_diagnosis_cites_context_items_by_real_id(make) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    services = make(scripted(lambda p: draft(evidence=["E1", "K1"]), seen))
    services.runtime.retrieval().import_knowledge(parse_markdown(RUNBOOK, source="db.md"), services.runtime.clock())
    pid = _pattern(services)
    d = services.diagnoser.diagnose(pid).diagnosis
    assert d.status is DiagnosisStatus.diagnosed
    assert d.evidence[0].startswith("ev_") and d.evidence[1].startswith("kb_")
    assert d.removed_citations == []
    assert "[K1]" in seen[0] and "Connection refused" in seen[0]
    assert d.prompt_name == "diagnosis" and d.prompt_version == 1 and len(d.prompt_sha256) == 64
    assert d.model == "function:test" and d.input_tokens > 0
    # every cited id exists
    assert services.core.event(d.evidence[0]) is not None


def test_planted_citation_is_removed_and_status_downgraded(make) -> None:  # type: ignore[no-untyped-def]
    services = make(scripted(lambda p: draft(evidence=["E99", "ev_01FAKEFAKEFAKEFAKEFAKEFAKE", "K7"])))
    pid = _pattern(services)
    d = services.diagnoser.diagnose(pid).diagnosis
    assert d.evidence == []
    assert set(d.removed_citations) == {"E99", "ev_01FAKEFAKEFAKEFAKEFAKEFAKE", "K7"}
    assert d.status is DiagnosisStatus.inconclusive


def test_no_relevant_evidence_yields_inconclusive(make) -> None:  # type: ignore[no-untyped-def]
    # Nothing retrieved above the threshold: the model may only cite the events, which caps confidence,
    # and a model that is unsure must not be stored as a diagnosis.
    services = make(scripted(lambda p: draft(evidence=["E1"], confidence=0.3)))
    pid = _pattern(services)
    d = services.diagnoser.diagnose(pid).diagnosis
    assert "[K" not in str(d.evidence)
    assert d.status is DiagnosisStatus.inconclusive


def test_events_only_confidence_is_capped(make) -> None:  # type: ignore[no-untyped-def]
    services = make(scripted(lambda p: draft(evidence=["E1"], confidence=0.99)))
    d = services.diagnoser.diagnose(_pattern(services)).diagnosis
    assert d.status is DiagnosisStatus.diagnosed and d.confidence <= 0.6


def test_out_of_range_output_is_clamped_and_trimmed(make) -> None:  # type: ignore[no-untyped-def]
    services = make(
        scripted(lambda p: draft(confidence=87, summary="x" * 5000, solution_steps=[f"s{i}" for i in range(30)]))
    )
    d = services.diagnoser.diagnose(_pattern(services)).diagnosis
    assert d.confidence <= 1.0 and len(d.summary) <= 200 and len(d.solution_steps) <= 3


def test_1000_events_of_10_patterns_make_exactly_10_jobs_and_10_calls(make) -> None:  # type: ignore[no-untyped-def]
    services = make(scripted(lambda p: draft(evidence=["E1"])))
    events = [_event(i, i % 10) for i in range(1000)]
    for start in range(0, 1000, 200):
        services.core.ingest_sync(events[start : start + 200])
    with services.core.engine.connect() as conn:
        n_jobs = conn.execute(
            select(func.count()).select_from(JobRow.__table__).where(JobRow.kind == "diagnose")
        ).scalar()
    assert n_jobs == 10
    services.runtime.core.clock = lambda: (
        __import__("datetime").datetime.now(__import__("datetime").UTC) + __import__("datetime").timedelta(seconds=10)
    )
    done = 0
    for _ in range(5):
        done += services.worker.tick().jobs_done
    assert done == 10 and services.diagnoser.calls == 10
    # cached: same evidence, no new model call
    pid = services.core.patterns(limit=1)[0][0].id
    out = services.diagnoser.diagnose(pid)
    assert out.cached and services.diagnoser.calls == 10


def test_model_down_keeps_ingest_working_and_retries_jobs(make, settings) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    def down(_cfg):  # type: ignore[no-untyped-def]
        raise ModelUnavailable(
            "Ollama is not reachable at http://127.0.0.1:9 (connection refused); start it with `ollama serve`"
        )

    services = make(down)
    pid = _pattern(services)
    services.runtime.core.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    report = services.worker.tick()
    assert report.jobs_failed == 1
    with services.core.engine.connect() as conn:
        job = conn.execute(select(JobRow.__table__).where(JobRow.key == pid)).one()
    assert job.status == "queued" and job.attempts == 1 and "not reachable" in job.last_error
    assert job.run_after > dt.datetime.now(dt.UTC)  # backoff
    assert services.core.ingest_sync([_event(5)])[0].pattern_id == pid
    status = services.core.status()
    assert status["jobs"]["diagnose"]["queued"] == 1


def test_diagnosis_api(settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from agent.api.app import create_app
    from tests.conftest import ADMIN_KEY, INGEST_KEY

    app = create_app(settings, services_factory=lambda s: services_with(s, scripted(lambda p: draft())))
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        pid = c.post("/errors", json=_event(1).model_dump(mode="json")).json()["pattern_id"]
        assert c.get(f"/patterns/{pid}/diagnosis").status_code == 404
        assert c.post(f"/patterns/{pid}/diagnose").status_code == 403
        r = c.post(f"/patterns/{pid}/diagnose", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 202
        app.state.services.diagnoser.diagnose(pid, force=True)
        d = c.get(f"/patterns/{pid}/diagnosis").json()
        assert d["status"] in ("diagnosed", "inconclusive") and d["evidence"]
        assert (
            c.post("/patterns/pat_nope/diagnose", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 404
        )


def test_ask_cites_patterns_and_streams(settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from agent.api.app import create_app
    from tests.conftest import INGEST_KEY

    def answer(prompt: str) -> dict:  # type: ignore[type-arg]
        alias = re.search(r"\[(P\d)\]", prompt)
        return {
            "status": "answered",
            "answer": f"The orchestrator cannot reach its database [{alias.group(1) if alias else 'P9'}].",
            "citations": [alias.group(1) if alias else "P9", "P42"],
        }

    app = create_app(settings, services_factory=lambda s: services_with(s, scripted(answer)))
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        pid = c.post("/errors", json=_event(1).model_dump(mode="json")).json()["pattern_id"]
        app.state.services.worker.index = True
        app.state.services.worker.tick()
        r = c.post("/ask", json={"question": "why did the orchestrator fail?"}).json()
        assert r["status"] == "answered"
        assert [x["id"] for x in r["citations"]] == [pid] and r["removed_citations"] == ["P42"]
        assert r["citations"][0]["link"] == f"/patterns/{pid}"
        with c.stream("POST", "/ask/stream", json={"question": "why did the orchestrator fail?"}) as s:
            body = "".join(s.iter_text())
        assert "event: delta" in body and "event: done" in body and pid in body
        assert c.post("/ask", json={"question": ""}).status_code == 422


def test_chat_tools_are_read_only_and_their_results_are_citable(settings) -> None:  # type: ignore[no-untyped-def]
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    settings = settings.model_copy(update={"llm_tools": True})
    calls: list[str] = []

    def fn(messages, info):  # type: ignore[no-untyped-def]
        calls.append(",".join(t.name for t in info.function_tools))
        returned = [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
        if not returned:
            return ModelResponse(parts=[ToolCallPart("search_patterns", {"query": "websocket closed 1006"})])
        alias = re.search(r"\[(P\d+)\]", str(returned[-1].content)).group(1)  # type: ignore[union-attr]
        import json

        return ModelResponse(
            parts=[
                TextPart(json.dumps({"status": "answered", "answer": f"see [{alias}]", "citations": [alias, "P77"]}))
            ]
        )

    services = services_with(settings, FunctionModel(fn)).start(worker=False)
    try:
        pid = services.core.ingest_sync(
            [
                EventCreate(
                    service="collab",
                    error_type="WebSocketError",
                    severity="high",
                    error_message="WebSocket closed with code 1006",
                )
            ]
        )[0].pattern_id
        services.runtime.retrieval().index_pending()
        r = services.diagnoser.ask("what breaks the collaboration engine?", service="nonexistent-service")
        assert set(calls[0].split(",")) == {"search_patterns", "get_events", "get_stats", "get_guide_entry"}
        assert r.citations == [pid] and r.removed_citations == ["P77"]
    finally:
        services.close()
