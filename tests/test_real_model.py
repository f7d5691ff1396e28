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
    # The free-form writing path (what ollama/openai/litellm use by default), run on the embedded model.
    settings = Settings(
        data_dir=data, worker=False, llm_timeout_s=600, diagnosis_mode="write", known_cause_min_score=1.0
    )
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
    monkeypatch.setenv(
        "ERRLEARN_KNOWN_CAUSE_MIN_SCORE", "1.0"
    )  # the model answers (known-cause answers: test_diagnosis_paths)
    result = CliRunner().invoke(app, ["ask", "why did the orchestrator fail?", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert answer["model"].startswith("embedded:") and answer["answer"]
    assert answer["citations"], answer
    assert pid in answer["citations"] or any(c.startswith("ev_") for c in answer["citations"])


@pytest.mark.slow
def test_real_model_picks_one_of_the_offered_known_causes_or_none(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The embedded default's picking path: the real model answers inside the enum; code writes the rest."""
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    data = tmp_path / "data"
    # No match counts as strong, every entry is offered: the model has to pick.
    settings = Settings(
        data_dir=data, worker=False, llm_timeout_s=600, known_cause_min_score=1.0, known_cause_pick_min_score=-1.0
    )
    services = build_services(settings).start(worker=False)
    try:
        pid = _seed(services)
        offered, failure = services.diagnoser.candidates(pid)
        assert failure and len(offered) >= 2
        d = services.diagnoser.diagnose(pid).diagnosis
        Diagnosis.model_validate(d.model_dump())
        assert d.model.startswith("embedded:") and d.output_tokens > 0 and services.diagnoser.calls == 1
        offered_ids = {c.id for c in offered[:4]}
        if d.status.value == "diagnosed":
            assert d.prompt_name == "pick" and d.evidence[0] in offered_ids
            picked = next(c for c in offered if c.id == d.evidence[0])
            assert d.root_cause == picked.root_cause and d.solution_steps == list(picked.steps)
            assert 0.0 < d.confidence <= 0.7
        else:
            assert d.summary == "inconclusive: the model picked none of the known causes"
    finally:
        services.close()
