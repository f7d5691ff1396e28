"""Prometheus metrics: `/metrics` parses, counts what arrives, bounds labels, and is served by the worker too."""

from __future__ import annotations

import datetime as dt
import time
import urllib.request
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent import metrics
from tests.conftest import INGEST_KEY


def event(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "service": "checkout",
        "context": "POST /pay",
        "error_type": "TimeoutError",
        "error_message": "payment gateway timed out after 30 s",
        "severity": "high",
    }
    body.update(over)
    return body


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (sample name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> Samples:  # type: ignore[no-untyped-def]
    r = client.get("/metrics", headers={"Authorization": ""})  # no key: public by default
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


@pytest.fixture(autouse=True)
def _no_state_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Database-backed gauges are cached for a few seconds per scrape; the tests compare consecutive scrapes.
    monkeypatch.setattr(metrics, "STATE_CACHE_S", 0.0)


def test_metrics_parse_and_count_events_as_they_arrive(client) -> None:  # type: ignore[no-untyped-def]
    before = scrape(client)
    assert value(before, "errlearn_build_info", version=__import__("agent").__version__) == 1
    assert value(before, "errlearn_database_up") == 1

    for _ in range(3):
        assert client.post("/errors", json=event()).status_code == 202
    r = client.post("/errors/batch", json={"errors": [event(severity="low", service="search"), {"service": 5}]})
    assert r.json()["accepted"] == 1
    assert client.post("/errors", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400

    # A rejection's counter goes to the writer without the client waiting for it: scrape once it is written.
    deadline = time.monotonic() + 10
    after = scrape(client)
    while value(after, "errlearn_writer_queue_depth") and time.monotonic() < deadline:
        time.sleep(0.02)
        after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("errlearn_events_received_total", service="checkout", severity="high") == 3
    assert delta("errlearn_events_received_total", service="search", severity="low") == 1
    assert delta("errlearn_events_rejected_total", reason="validation") == 1
    assert delta("errlearn_events_rejected_total", reason="invalid_json") == 1
    assert delta("errlearn_patterns_created_total") == 2
    assert value(after, "errlearn_patterns", status="open") == 2
    assert value(after, "errlearn_patterns", status="resolved") == 0
    # one writer transaction per request here (they arrive one by one), each observed once
    assert delta("errlearn_writer_batch_events_count") == 4
    assert delta("errlearn_writer_batch_events_sum") == 4
    assert delta("errlearn_writer_commit_seconds_count") == 4
    assert value(after, "errlearn_writer_queue_depth") == 0
    # every new pattern queues a diagnosis job; the gauge reads the jobs table at scrape time
    assert value(after, "errlearn_jobs", kind="diagnose", status="queued") == 2


def test_learning_runs_and_drafts_come_from_the_database(client) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from agent.store.tables import LearningRunRow, table_of
    from tests.conftest import admin_headers

    assert client.post("/trigger-learning", headers=admin_headers()).status_code == 202
    now = dt.datetime.now(dt.UTC)
    core = client.app.state.core
    with core.engine.begin() as conn:
        conn.execute(
            insert(table_of(LearningRunRow)),
            [
                {"trigger": "api", "status": "done", "requested_at": now, "drafts_created": 3},
                {"trigger": "api", "status": "failed", "requested_at": now, "drafts_created": 0},
            ],
        )
    s = scrape(client)
    assert value(s, "errlearn_learning_runs_pending", status="queued") == 1
    assert value(s, "errlearn_learning_runs_total", status="done") == 1
    assert value(s, "errlearn_learning_runs_total", status="failed") == 1
    assert value(s, "errlearn_guide_drafts_created_total") == 3


def test_metrics_can_require_a_key(settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from agent.api.app import create_app

    assert "metrics_public" in type(settings).model_fields, "Settings.metrics_public is missing"
    locked = settings.model_copy(update={"metrics_public": False})
    with TestClient(create_app(locked)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong-key-0123456789"}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": f"Bearer {INGEST_KEY}"})
        assert r.status_code == 200 and "errlearn_events_received" in r.text


def test_record_recovery_reaches_the_apps_metrics(client) -> None:  # type: ignore[no-untyped-def]
    metrics.record_recovery("restart_service", "succeeded")
    metrics.record_recovery("restart_service", "succeeded")
    metrics.record_recovery("clear_cache", "refused")
    s = scrape(client)
    assert value(s, "errlearn_recovery_actions_total", action="restart_service", outcome="succeeded") == 2
    assert value(s, "errlearn_recovery_actions_total", action="clear_cache", outcome="refused") == 1


def test_each_app_has_its_own_registry(settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from agent.api.app import create_app

    with TestClient(create_app(settings)) as first:
        first.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        first.post("/errors", json=event())
        assert value(scrape(first), "errlearn_events_received_total", service="checkout", severity="high") == 1
    with TestClient(create_app(settings)) as second:  # same process, same database: no duplicate-metric error
        assert value(scrape(second), "errlearn_events_received_total", service="checkout", severity="high") == 0


def test_service_label_is_capped() -> None:
    m = metrics.Metrics(service_limit=2)
    rows = [{"service": f"svc-{i}", "severity": "low"} for i in range(5)]
    m.committed(rows, [], 0.01)
    s = parse(_exposition(m))
    assert value(s, "errlearn_events_received_total", service="svc-0", severity="low") == 1
    assert value(s, "errlearn_events_received_total", service="svc-1", severity="low") == 1
    assert value(s, "errlearn_events_received_total", service="other", severity="low") == 3
    services = {dict(labels)["service"] for (name, labels) in s if name == "errlearn_events_received_total"}
    assert services == {"svc-0", "svc-1", "other"}


@dataclass
class _Usage:
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int


def test_llm_calls_and_tokens_by_agent_and_model() -> None:
    m = metrics.install(metrics.Metrics())
    metrics.record_llm_call("diagnosis", _Usage("qwen2.5:7b", 1200, 180, 2500))
    metrics.record_llm_call("diagnosis", _Usage("qwen2.5:7b", 800, 120, 1500))
    metrics.record_llm_call("ask", _Usage("qwen2.5:7b", 300, 40, 700))
    s = parse(_exposition(m))
    assert value(s, "errlearn_llm_calls_total", agent="diagnosis", model="qwen2.5:7b") == 2
    assert value(s, "errlearn_llm_tokens_total", agent="diagnosis", model="qwen2.5:7b", direction="input") == 2000
    assert value(s, "errlearn_llm_tokens_total", agent="diagnosis", model="qwen2.5:7b", direction="output") == 300
    assert value(s, "errlearn_llm_call_duration_seconds_sum", agent="diagnosis") == pytest.approx(4.0)
    assert value(s, "errlearn_llm_calls_total", agent="ask", model="qwen2.5:7b") == 1


def test_recording_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    metrics.install(metrics.Metrics())
    metrics.record_llm_call("diagnosis", object())  # type: ignore[arg-type]
    metrics.record_commit([{"no": "service"}], [], 0.1)
    assert sum("recording metric" in r.getMessage() for r in caplog.records) == 2


def test_diagnosis_and_ask_calls_are_counted(settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from agent.api.app import create_app
    from tests.diag_support import draft, scripted, services_with, writing

    question = "why did checkout fail?"

    def answer(prompt: str) -> dict[str, object]:
        if question in prompt:
            return {"status": "answered", "answer": "The gateway timed out [E1].", "citations": ["E1"]}
        return draft()

    app = create_app(settings, services_factory=lambda s: services_with(writing(s), scripted(answer)))
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        pid = c.post("/errors", json=event()).json()["pattern_id"]
        app.state.services.diagnoser.diagnose(pid, force=True)
        s = scrape(c)
        assert value(s, "errlearn_llm_calls_total", agent="diagnosis", model="function:test") == 1
        tokens_in = value(s, "errlearn_llm_tokens_total", agent="diagnosis", model="function:test", direction="input")
        assert tokens_in > 0
        assert value(s, "errlearn_diagnoses", status="diagnosed") + value(
            s, "errlearn_diagnoses", status="inconclusive"
        )
        assert c.post("/ask", json={"question": question}).status_code == 200
        assert value(scrape(c), "errlearn_llm_calls_total", agent="ask", model="function:test") == 1


def test_worker_jobs_are_timed_by_kind_and_outcome(client) -> None:  # type: ignore[no-untyped-def]
    from agent.store import jobs

    services = client.app.state.services
    worker = services.worker
    worker.index = False

    def boom(_job: object) -> None:
        raise RuntimeError("handler failed")

    worker.handlers = {"noop": lambda _job: None, "boom": boom}
    core = services.core
    with core.engine.begin() as conn:
        now = core.clock()
        jobs.enqueue(conn, "noop", "a", now)
        jobs.enqueue(conn, "noop", "b", now)
        jobs.enqueue(conn, "boom", "c", now)
    report = worker.tick()
    assert (report.jobs_done, report.jobs_failed) == (2, 1)
    s = scrape(client)
    assert value(s, "errlearn_job_duration_seconds_count", kind="noop", outcome="done") == 2
    assert value(s, "errlearn_job_duration_seconds_count", kind="boom", outcome="failed") == 1
    assert value(s, "errlearn_jobs", kind="noop", status="done") == 2


def test_worker_metrics_server_serves_its_registry() -> None:
    m = metrics.Metrics()
    m.recovery("restart_service", "succeeded")
    server = metrics.start_metrics_server(m, 0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            s = parse(resp.read().decode())
    finally:
        server.stop()
    assert value(s, "errlearn_recovery_actions_total", action="restart_service", outcome="succeeded") == 1


def test_only_the_api_registry_exports_database_state() -> None:
    # The worker's registry leaves patterns/jobs/learning to the API's, so Prometheus does not count them twice.
    worker = {f.name for f in metrics.Metrics().registry.collect()}
    api = {f.name for f in metrics.Metrics(core=lambda: None).registry.collect()}
    state = {"errlearn_patterns", "errlearn_jobs", "errlearn_learning_runs", "errlearn_writer_queue_depth"}
    assert state <= api and not state & worker
    assert {"errlearn_events_received", "errlearn_job_duration_seconds", "errlearn_llm_calls"} <= worker


def _exposition(m: metrics.Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(m.registry).decode()
