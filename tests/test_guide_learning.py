"""The learning loop: drafting, no duplicates, rejections remembered, the periodic trigger, no overlap."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import delete, func, select

from agent.guide import allocator, runs
from agent.guide.models import GuideStatus, PatternOutcome
from agent.guide.tables import GuideRejectionRow
from agent.settings import Settings
from agent.store.tables import LearningRunRow, table_of
from agent.worker import Periodic, Worker
from tests.test_guide_support import T0, GuideEnv, ScriptedModel, guide_env, open_env, seed_two_errors

__all__ = ["guide_env"]  # the fixture, imported for pytest
RUNS = table_of(LearningRunRow)
REJECTIONS = table_of(GuideRejectionRow)


def _run_rows(env: GuideEnv) -> list[dict[str, object]]:
    with env.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(RUNS).order_by(RUNS.c.id))]


def test_run_drafts_entries_with_new_ids_and_records_the_run(guide_env: GuideEnv) -> None:
    seed_two_errors(guide_env)
    report = guide_env.guide.learning.run("manual")

    assert report.status == "finished", report.errors
    assert (report.patterns_examined, report.drafts_created) == (2, 2)
    assert report.drafted_ids == ["ERROR-001", "ERROR-002"]
    entries = guide_env.guide.entries()
    assert [(e.id, e.status) for e in entries] == [("ERROR-001", GuideStatus.draft), ("ERROR-002", GuideStatus.draft)]
    first = entries[0]
    assert first.pattern_ids == [guide_env.pattern_id("ConnectionRefusedError")]
    assert first.error_type == "ConnectionRefusedError" and first.symptoms == [
        "ConnectionRefusedError: " + first.template
    ]
    assert first.evidence and all(e.startswith("ev_") for e in first.evidence)  # real ids, not aliases
    assert (first.author.kind.value, first.author.name, first.author.prompt_name, first.author.prompt_version) == (
        "model",
        "test:scripted",
        "guide",
        1,
    )
    assert first.author.prompt_sha256 and len(first.author.prompt_sha256) == 64
    assert first.commands == ["docker ps"]
    [row] = _run_rows(guide_env)
    assert (row["trigger"], row["status"], row["patterns_examined"], row["drafts_created"], row["errors"]) == (
        "manual",
        "finished",
        2,
        2,
        None,
    )
    assert row["started_at"] == T0 and row["finished_at"] == T0
    # /status shows the run (Core.status reads learning_runs).
    assert guide_env.runtime.core.status()["learning_runs"][0]["drafts_created"] == 2


def test_rerunning_does_not_duplicate_entries(guide_env: GuideEnv) -> None:
    seed_two_errors(guide_env)
    guide_env.guide.learning.run("manual")
    calls = guide_env.model.calls

    guide_env.clock.advance(minutes=10)
    again = guide_env.guide.learning.run("manual")
    assert (again.patterns_examined, again.drafts_created) == (0, 0)  # nothing new or recurring

    guide_env.clock.advance(minutes=10)
    guide_env.ingest("api", "ConnectionRefusedError", "connection to db-2:5432 refused")  # recurs
    third = guide_env.guide.learning.run("manual")
    # A pattern covered by a draft is not even a candidate: no evidence gathering, no model call.
    assert (third.patterns_examined, third.drafts_created) == (0, 0)
    assert guide_env.model.calls == calls
    assert [e.id for e in guide_env.guide.entries()] == ["ERROR-001", "ERROR-002"]


def test_approving_renders_and_indexes_and_matching_patterns_are_linked_not_duplicated(guide_env: GuideEnv) -> None:
    seed_two_errors(guide_env)
    guide_env.guide.learning.run("manual")
    outcome = guide_env.guide.approve("ERROR-001", by="alice")

    assert outcome.rendered and not outcome.warnings
    text = guide_env.guide.guide_path.read_text()
    assert "## ERROR-001: ConnectionRefusedError in api" in text
    assert "ERROR-002" not in text  # still a draft
    knowledge = guide_env.runtime.retrieval().knowledge_entry("ERROR-001")
    assert knowledge is not None and knowledge["kind"] == "guide"

    # The same error in another service: same error type and template, so it joins ERROR-001.
    guide_env.clock.advance(minutes=10)
    guide_env.ingest("billing", "ConnectionRefusedError", "connection to db-7:5432 refused")
    report = guide_env.guide.learning.run("manual")
    assert report.outcomes == {PatternOutcome.linked.value: 1} and report.drafts_created == 0
    entry = guide_env.guide.entry("ERROR-001")
    assert entry is not None and len(entry.pattern_ids) == 2
    assert [e.id for e in guide_env.guide.entries()] == ["ERROR-001", "ERROR-002"]


def test_a_similar_pattern_is_linked_to_the_approved_entry_and_gets_a_revision_drafted(settings: Settings) -> None:
    # wordllama scores: psycopg "Connection refused" vs ERROR-001 ~0.69, a timeout ~0.46, disk full ~0.31.
    with open_env(settings, match_similarity=0.65) as env:
        env.ingest("api", "ConnectionRefusedError", "connection to db-1:5432 refused", 3)
        env.guide.learning.run("manual")
        env.guide.approve("ERROR-001", by="alice")
        env.clock.advance(minutes=10)
        env.ingest(
            "billing",
            "psycopg.OperationalError",
            "connection failed: connection to server at 10.0.0.5, port 5432 failed: Connection refused",
        )
        env.ingest("worker", "TimeoutError", "request to http://ollama:11434/api/generate timed out after 30s")

        report = env.guide.learning.run("manual")
        assert report.outcomes == {PatternOutcome.proposed.value: 1, PatternOutcome.drafted.value: 1}
        assert report.drafted_ids == ["ERROR-002"]  # the timeout; the psycopg error got no entry of its own
        entry = env.guide.entry("ERROR-001")
        assert entry is not None and entry.status is GuideStatus.approved
        assert entry.proposal is not None and env.pattern_id("psycopg.OperationalError") in entry.pattern_ids
        revising = [p for p in env.model.prompts if "Existing guide entry to revise" in p]
        assert len(revising) == 1 and "psycopg.OperationalError" in revising[0]
        # The revision keeps the entry's identity and adds the new symptom; approving applies it.
        assert entry.proposal.content.error_type == "ConnectionRefusedError"
        assert any(s.startswith("psycopg.OperationalError") for s in entry.proposal.content.symptoms)
        approved = env.guide.approve("ERROR-001", by="bob").entry
        assert approved.proposal is None and len(approved.symptoms) == 2
        assert "psycopg.OperationalError" in env.guide.guide_path.read_text()


def test_a_rejected_draft_is_not_redrafted_for_the_same_evidence(guide_env: GuideEnv) -> None:
    seed_two_errors(guide_env)
    guide_env.guide.learning.run("manual")
    guide_env.guide.reject("ERROR-001", by="alice", reason="too vague")
    pid = guide_env.pattern_id("ConnectionRefusedError")
    with guide_env.engine.connect() as conn:
        stored = conn.execute(select(REJECTIONS).where(REJECTIONS.c.pattern_id == pid)).one()
    entry = guide_env.guide.entry("ERROR-001")
    assert entry is not None and entry.status is GuideStatus.rejected and entry.rejection_reason == "too vague"
    assert stored.evidence_hash == entry.evidence_hash and stored.kind == "rejected" and stored.reason == "too vague"

    # The same error recurs: same evidence (a new occurrence is not new evidence), so no new draft.
    guide_env.clock.advance(minutes=10)
    guide_env.ingest("api", "ConnectionRefusedError", "connection to db-3:5432 refused", 2)
    calls = guide_env.model.calls
    report = guide_env.guide.learning.run("manual")
    assert report.outcomes == {PatternOutcome.rejected_before.value: 1} and report.drafts_created == 0
    assert guide_env.model.calls == calls

    # Without the stored rejection it would be drafted again, under a new id (ERROR-001 is never reused).
    with guide_env.engine.begin() as conn:
        conn.execute(delete(REJECTIONS))
    guide_env.clock.advance(minutes=10)
    guide_env.ingest("api", "ConnectionRefusedError", "connection to db-4:5432 refused")
    assert guide_env.guide.learning.run("manual").drafted_ids == ["ERROR-003"]


def test_no_valid_evidence_means_no_draft_and_it_is_counted(settings: Settings) -> None:
    model = ScriptedModel(cite=["E9", "K4", "made-up"])  # nothing the context held
    with open_env(settings, model=model) as env:
        seed_two_errors(env)
        env.clock.advance(minutes=2)
        report = env.guide.learning.run("manual")
        assert report.status == "finished"
        assert report.outcomes == {PatternOutcome.no_evidence.value: 2} and report.drafts_created == 0
        assert env.guide.entries() == []
        with env.engine.connect() as conn:
            assert allocator.last_number(conn) == 0  # no id was spent
            kinds = conn.execute(select(REJECTIONS.c.kind)).scalars().all()
        assert kinds == ["no_evidence", "no_evidence"]
        # The same evidence is not sent to the model again.
        env.clock.advance(minutes=10)
        env.ingest("api", "ConnectionRefusedError", "connection to db-2:5432 refused")
        assert env.guide.learning.run("manual").outcomes == {PatternOutcome.rejected_before.value: 1}
        assert model.calls == 2


def test_the_pattern_diagnosis_is_given_to_the_model(guide_env: GuideEnv) -> None:
    from agent.domain import Diagnosis, DiagnosisStatus
    from agent.store import diagnoses

    guide_env.ingest("api", "ConnectionRefusedError", "connection to db-1:5432 refused")
    pid = guide_env.pattern_id("ConnectionRefusedError")
    with guide_env.engine.begin() as conn:
        diagnoses.save(
            conn,
            Diagnosis(
                pattern_id=pid,
                status=DiagnosisStatus.diagnosed,
                summary="db down",
                root_cause="PostgreSQL is stopped",
                confidence=0.8,
                model="m",
                prompt_name="diagnosis",
                prompt_version=1,
                prompt_sha256="x",
            ),
            T0,
        )
    guide_env.guide.learning.run("manual")
    assert "Root cause: PostgreSQL is stopped" in guide_env.model.prompts[-1]


def test_the_per_run_model_call_limit_defers_the_rest_to_the_next_run(settings: Settings) -> None:
    with open_env(settings, max_model_calls_per_run=1) as env:
        seed_two_errors(env)
        first = env.guide.learning.run("manual")
        assert (first.drafts_created, first.deferred) == (1, 1)
        second = env.guide.learning.run("manual")  # nothing recurred, but the deferred pattern is still due
        assert (second.drafted_ids, second.deferred) == (["ERROR-002"], 0)


# -- triggers ---------------------------------------------------------------------------------------------


def test_the_periodic_trigger_runs_every_interval_only_when_new_errors_arrived(guide_env: GuideEnv) -> None:
    loop = guide_env.guide.learning
    assert loop.interval == dt.timedelta(minutes=5)  # settings.learning_interval_minutes
    assert loop.tick() is None  # no errors at all yet

    seed_two_errors(guide_env)
    first = loop.tick()
    assert first is not None and first.trigger == "periodic" and first.drafts_created == 2

    guide_env.clock.advance(minutes=1)
    guide_env.ingest("cron", "KeyError", "missing key 'user_id'")
    assert loop.tick() is None  # new errors, but only a minute since the last run

    guide_env.clock.advance(minutes=4)  # five minutes after the first run: due
    second = loop.tick()
    assert second is not None and second.drafted_ids == ["ERROR-003"]

    guide_env.clock.advance(minutes=6)
    assert loop.tick() is None  # due, but nothing arrived since the last run

    guide_env.clock.advance(seconds=30)
    guide_env.ingest("cron", "KeyError", "missing key 'user_id'")  # a recurrence: same pattern, nothing new to draft
    third = loop.tick()
    assert third is not None and third.status == "finished" and third.drafts_created == 0
    assert [r["trigger"] for r in _run_rows(guide_env)] == ["periodic", "periodic", "periodic"]


def test_a_queued_request_is_picked_up_at_once(guide_env: GuideEnv) -> None:
    seed_two_errors(guide_env)
    assert guide_env.guide.learning.tick() is not None  # a periodic run, just now
    guide_env.clock.advance(seconds=20)
    run_id = guide_env.runtime.core.request_learning("api")  # what POST /trigger-learning does

    report = guide_env.guide.learning.tick()  # inside the interval, but requested
    assert report is not None and report.run_id == run_id and report.trigger == "api"
    row = _run_rows(guide_env)[-1]
    assert (row["id"], row["status"], row["started_at"]) == (run_id, "finished", T0 + dt.timedelta(seconds=20))


def test_the_worker_drives_the_loop(guide_env: GuideEnv) -> None:
    seed_two_errors(guide_env)
    worker = Worker(guide_env.runtime, periodic=[Periodic("learning", 30, guide_env.guide.learning.tick)])
    report = worker.tick()
    assert report.periodic == ["learning"]
    assert [e.id for e in guide_env.guide.entries()] == ["ERROR-001", "ERROR-002"]


# -- no overlap ---------------------------------------------------------------------------------------------


def test_a_run_is_refused_while_another_is_running(guide_env: GuideEnv) -> None:
    seed_two_errors(guide_env)
    engine, loop = guide_env.engine, guide_env.guide.learning
    other = runs.start(engine, T0, stale_before=T0 - dt.timedelta(hours=1), trigger="elsewhere")
    assert other is not None

    busy = loop.run("manual")
    assert busy.status == "busy" and busy.run_id is None and f"#{other.id}" in busy.errors[0]
    queued = guide_env.runtime.core.request_learning("api")
    assert loop.tick() is None  # the queued request waits
    assert {r["id"]: r["status"] for r in _run_rows(guide_env)} == {other.id: "running", queued: "queued"}
    assert guide_env.guide.entries() == []

    # An hour later the other run is taken for dead: it is marked failed and the queued request runs.
    guide_env.clock.advance(hours=1, seconds=1)
    report = loop.tick()
    assert report is not None and report.run_id == queued and report.drafts_created == 2
    rows = {r["id"]: r for r in _run_rows(guide_env)}
    assert rows[other.id]["status"] == "failed" and "stale" in str(rows[other.id]["errors"])


def test_concurrent_starts_let_exactly_one_run(guide_env: GuideEnv) -> None:
    engine = guide_env.engine
    barrier = threading.Barrier(6)
    won: list[int] = []

    def contender(i: int) -> None:
        barrier.wait()
        started = runs.start(engine, T0, stale_before=T0 - dt.timedelta(hours=1), trigger=f"t{i}")
        if started is not None:
            won.append(started.id)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RUNS).where(RUNS.c.status == "running")).scalar() == 1


def test_concurrent_claims_of_queued_rows_let_exactly_one_run(guide_env: GuideEnv) -> None:
    engine = guide_env.engine
    ids = [guide_env.runtime.core.request_learning("api") for _ in range(4)]
    barrier = threading.Barrier(len(ids))
    won: list[int] = []

    def contender(run_id: int) -> None:
        barrier.wait()
        if runs.start(engine, T0, stale_before=T0 - dt.timedelta(hours=1), run_id=run_id) is not None:
            won.append(run_id)

    threads = [threading.Thread(target=contender, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1


def test_a_failing_model_fails_the_run_and_records_the_error(guide_env: GuideEnv) -> None:
    from agent.llm.providers import ModelUnavailable

    def broken(_cfg: object) -> object:
        raise ModelUnavailable("Ollama is not reachable at http://127.0.0.1:11434")

    guide_env.runtime._model_factory = broken  # type: ignore[assignment]
    seed_two_errors(guide_env)
    report = guide_env.guide.learning.run("manual")
    assert report.status == "failed" and "Ollama is not reachable" in report.errors[0]
    row = _run_rows(guide_env)[-1]
    assert row["status"] == "failed" and "Ollama is not reachable" in str(row["errors"])
    # The run did not complete, so the next one looks at the same patterns again.
    guide_env.runtime._model_factory = lambda _cfg: guide_env.model.runtime()  # type: ignore[assignment]
    assert guide_env.guide.learning.run("manual").drafts_created == 2


@pytest.mark.parametrize("status", ["finished", "failed"])
def test_last_run_of_any_outcome_counts_for_the_interval(guide_env: GuideEnv, status: str) -> None:
    with guide_env.engine.begin() as conn:
        conn.execute(RUNS.insert().values(trigger="manual", status=status, requested_at=T0, started_at=T0))
    guide_env.clock.advance(minutes=1)
    guide_env.ingest("api", "ValueError", "bad value")
    assert guide_env.guide.learning.tick() is None
    guide_env.clock.advance(minutes=4)
    assert guide_env.guide.learning.tick() is not None
