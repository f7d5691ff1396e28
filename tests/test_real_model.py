"""The real embedded model (xllamacpp + SmolLM2-135M from PyPI) end to end. Few calls: ~3-30 s each."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic_ai.models
import pytest
from typer.testing import CliRunner

from agent.bootstrap import build_services
from agent.domain import Diagnosis
from agent.ingest.normalize import EventCreate
from agent.retrieval.knowledge import load_path
from agent.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _seed(services) -> str:  # type: ignore[no-untyped-def]
    services.runtime.retrieval().import_knowledge(load_path(REPO / "knowledge"), services.runtime.clock())
    events = [
        EventCreate(
            service="ai-orchestrator",
            error_type="ConnectError",
            severity="high",
            context="POST /generate",
            error_message=f"httpx.ConnectError: [Errno 111] Connection refused calling Ollama at "
            f"http://127.0.0.1:11434/api/generate (attempt {i})",
        )
        for i in range(3)
    ]
    pid = services.core.ingest_sync(events)[0].pattern_id
    services.runtime.retrieval().index_pending()
    return pid


@pytest.mark.slow
def test_real_model_diagnoses_a_seeded_pattern_and_answers_questions(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    data = tmp_path / "data"
    monkeypatch.setenv("ERRLEARN_DATA_DIR", str(data))
    monkeypatch.setenv("ERRLEARN_WORKER", "false")
    settings = Settings(data_dir=data, worker=False, llm_timeout_s=600)
    services = build_services(settings).start(worker=False)
    try:
        pid = _seed(services)
        d = services.diagnoser.diagnose(pid).diagnosis
        Diagnosis.model_validate(d.model_dump())  # schema-valid as stored
        stored = services.diagnoser.current(pid)
        assert stored is not None and stored.model.startswith("embedded:") and stored.output_tokens > 0
        assert stored.prompt_name == "diagnosis" and len(stored.prompt_sha256) == 64
        assert d.evidence, "constrained decoding makes the model cite at least one context item"
        for eid in d.evidence:
            assert (
                services.core.event(eid)
                or services.core.pattern(eid)
                or services.runtime.retrieval().knowledge_entry(eid)
            )
        assert 0.0 <= d.confidence <= 1.0
    finally:
        services.close()

    from agent.cli import app
    from agent.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["ask", "why did the orchestrator fail?", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert answer["model"].startswith("embedded:") and answer["answer"]
    assert answer["citations"], answer
    assert pid in answer["citations"] or any(c.startswith("ev_") for c in answer["citations"])
