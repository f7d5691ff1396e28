"""The diagnosis paths: known cause without a model, the model's pick, the quality gate, routine events."""

from __future__ import annotations

from typing import Any

import pytest

from agent.diagnosis.candidates import candidate_from_entry
from agent.diagnosis.gate import answer_problem, content_words, quality_problem
from agent.diagnosis.known_cause import MODEL_NAME, match_confidence
from agent.domain import DiagnosisStatus
from agent.ingest.normalize import EventCreate
from agent.llm.providers import ModelUnavailable
from agent.retrieval.knowledge import parse_markdown
from tests.diag_support import draft, scripted, services_with

RUNBOOK = """# Database connection refused (PostgreSQL)

## Symptoms
- `psycopg.OperationalError: connection to server at "db" port 5432 failed: Connection refused`
- `sqlx::Error::Io error communicating with database: Connection refused (os error 111)`

## Meaning
Nothing listens on the database port: PostgreSQL is down, restarting, or the host/port is wrong.
The client reaches the host but the connection is refused.

## Diagnosis
1. `pg_isready -h db -p 5432`

## Mitigation
- Start PostgreSQL or wait for its restart to finish.
- Check that DATABASE_URL names the right host and port.

## Prevention
- Add a readiness check so the service waits for the database.
"""

NOTE = """# Team lunch

We meet on Fridays.
"""


def _refused(i: int) -> EventCreate:
    return EventCreate(
        service="orchestrator",
        error_type="OperationalError",
        severity="high",
        error_message=f'connection to server at "db" (10.0.0.{i % 9}), port 5432 failed: Connection refused',
    )


def _never_called() -> Any:
    def fail(_messages: Any) -> dict[str, Any]:
        raise AssertionError("the model must not be called on this path")

    return scripted(fail)


@pytest.fixture
def make(settings):  # type: ignore[no-untyped-def]
    made = []

    def _make(model, **over):  # type: ignore[no-untyped-def]
        s = services_with(settings.model_copy(update=over), model).start(worker=False)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.close()


def _seed(services, markdown: str = RUNBOOK) -> None:  # type: ignore[no-untyped-def]
    retrieval = services.runtime.retrieval()
    retrieval.import_knowledge(parse_markdown(markdown, source="db-refused.md"), services.runtime.clock())


def test_known_cause_match_writes_the_diagnosis_without_a_model(make) -> None:  # type: ignore[no-untyped-def]
    def down(_cfg):  # type: ignore[no-untyped-def]
        raise ModelUnavailable("no model on this machine")

    services = make(down, known_cause_min_score=0.3)
    _seed(services)
    pid = services.core.ingest_sync([_refused(i) for i in range(3)])[0].pattern_id
    services.runtime.retrieval().index_pending()
    candidates, failure = services.diagnoser.candidates(pid)
    assert failure and candidates and candidates[0].id == "kb_db-refused"
    d = services.diagnoser.diagnose(pid).diagnosis
    assert d.status is DiagnosisStatus.diagnosed and d.model == MODEL_NAME
    assert d.root_cause.startswith("Nothing listens on the database port")
    assert d.solution_steps[0] == "Start PostgreSQL or wait for its restart to finish."
    assert d.prevention_tips == ["Add a readiness check so the service waits for the database."]
    assert d.evidence[0] == "kb_db-refused"
    assert any(e.startswith("ev_") and services.core.event(e) is not None for e in d.evidence[1:])
    assert "Connection refused" in d.summary  # the pattern's own deciding line
    assert match_confidence(candidates[0].score, 0.3, 0.5) == d.confidence
    assert services.diagnoser.calls == 0 and not services.runtime.model_ready
    assert services.diagnoser.current(pid) == d.model_copy(
        update={"created_at": services.diagnoser.current(pid).created_at}
    )  # type: ignore[union-attr]


def test_routine_events_are_inconclusive_without_a_model(make) -> None:  # type: ignore[no-untyped-def]
    services = make(_never_called(), known_cause_min_score=-1.0)
    _seed(services)
    body = EventCreate(
        service="event-store", error_type="info", severity="low", error_message="listening on 0.0.0.0:8080 (workers=4)"
    )
    pid = services.core.ingest_sync([body])[0].pattern_id
    services.runtime.retrieval().index_pending()
    d = services.diagnoser.diagnose(pid).diagnosis
    assert d.status is DiagnosisStatus.inconclusive and "no failure" in d.summary
    assert services.diagnoser.calls == 0


def test_pick_path_writes_the_picked_cause_and_keeps_only_slots_found_in_the_evidence(make) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    answer = {"cause": "K1", "failing_component": "orchestrator", "key_value": "port 9999 invented"}
    services = make(scripted(lambda _p: answer, seen), known_cause_min_score=1.0, known_cause_pick_min_score=-1.0)
    _seed(services)
    pid = services.core.ingest_sync([_refused(i) for i in range(3)])[0].pattern_id
    services.runtime.retrieval().index_pending()
    d = services.diagnoser.diagnose(pid).diagnosis
    assert len(seen) == 1 and "K1: Database connection refused" in seen[0]
    assert d.status is DiagnosisStatus.diagnosed and d.model == "function:test" and d.prompt_name == "pick"
    assert d.evidence[0] == "kb_db-refused" and d.confidence <= 0.7
    assert "invented" not in d.summary  # a key value that is not in the evidence is dropped


def test_pick_none_is_inconclusive_and_nothing_to_offer_skips_the_model(make) -> None:  # type: ignore[no-untyped-def]
    services = make(scripted(lambda _p: {"cause": "none"}), known_cause_min_score=1.0, known_cause_pick_min_score=-1.0)
    _seed(services)
    pid = services.core.ingest_sync([_refused(i) for i in range(3)])[0].pattern_id
    services.runtime.retrieval().index_pending()
    d = services.diagnoser.diagnose(pid).diagnosis
    assert d.status is DiagnosisStatus.inconclusive and "picked none" in d.summary

    # Same database, but nothing is similar enough to offer: no model call at all.
    empty = make(_never_called(), known_cause_min_score=1.0, known_cause_pick_min_score=1.0)
    d = empty.diagnoser.diagnose(pid, force=True).diagnosis
    assert d.status is DiagnosisStatus.inconclusive and "no known cause" in d.summary and empty.diagnoser.calls == 0


@pytest.mark.parametrize(
    "over",
    [
        {"root_cause": "IncidentEvidence", "summary": "[P4]"},
        {"root_cause": "[E1] [K1]"},
        {"root_cause": "The cause is.", "solution_steps": ["Solution steps are short imperative sentences."]},
        {"root_cause": "Base the root cause on the evidence. Cite the aliases that support it."},
        {"status": "inconclusive", "summary": "[P4]", "root_cause": "IncidentEvidence", "confidence": 0.1},
    ],
)
def test_quality_gate_refuses_an_echo_answer(make, over) -> None:  # type: ignore[no-untyped-def]
    services = make(
        scripted(lambda _p: draft(evidence=["E1"], **over)), diagnosis_mode="write", known_cause_min_score=1.0
    )
    pid = services.core.ingest_sync([_refused(i) for i in range(3)])[0].pattern_id
    d = services.diagnoser.diagnose(pid).diagnosis
    assert d.status is DiagnosisStatus.inconclusive, d
    assert d.summary.startswith("inconclusive: ") and ("repeats" in d.summary or "content words" in d.summary)
    assert d.root_cause == "" and d.solution_steps == []


def test_quality_gate_passes_a_real_answer() -> None:
    assert (
        quality_problem(
            summary="The orchestrator cannot reach PostgreSQL.",
            root_cause="PostgreSQL on db:5432 refuses connections because it is restarting.",
            steps=["Wait for the database restart"],
            prompt_texts=["Solution steps are short imperative sentences."],
        )
        is None
    )
    assert content_words("[E1] IncidentEvidence error pattern") == []
    assert answer_problem("[A] [B][C]", []) is not None
    assert answer_problem("The orchestrator fails because Ollama on port 11434 is down [P1].", []) is None


def test_candidate_needs_a_cause_and_a_fix() -> None:
    entry = parse_markdown(RUNBOOK, source="db.md")[0]
    cand = candidate_from_entry({"id": entry.id, "title": entry.title, "kind": "runbook", "text": entry.text}, 0.8)
    assert cand is not None and cand.steps[1] == "Check that DATABASE_URL names the right host and port."
    note = parse_markdown(NOTE, source="lunch.md")[0]
    assert candidate_from_entry({"id": note.id, "title": note.title, "kind": "note", "text": note.text}, 0.9) is None


def test_ask_answers_from_a_known_cause_without_a_model(make) -> None:  # type: ignore[no-untyped-def]
    services = make(_never_called(), known_cause_min_score=0.3)
    _seed(services)
    pid = services.core.ingest_sync([_refused(i) for i in range(3)])[0].pattern_id
    services.runtime.retrieval().index_pending()
    answer = services.diagnoser.ask("why does the orchestrator fail?")
    assert answer.status == "answered" and answer.model == "known-cause"
    assert answer.citations == [pid, "kb_db-refused"]
    assert "Nothing listens on the database port" in answer.answer and "[P1]" in answer.answer
    assert services.diagnoser.calls == 0


def test_ask_gate_turns_an_echo_answer_into_inconclusive(make) -> None:  # type: ignore[no-untyped-def]
    reply = {"status": "answered", "answer": "[A] [B][C]", "citations": ["P1"]}
    services = make(scripted(lambda _p: reply), known_cause_min_score=1.0)
    services.core.ingest_sync([_refused(i) for i in range(3)])
    services.runtime.retrieval().index_pending()
    answer = services.diagnoser.ask("why does the orchestrator fail?")
    assert answer.status == "inconclusive" and answer.answer.startswith("inconclusive: ")
    assert services.diagnoser.calls == 1
