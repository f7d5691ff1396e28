"""Hybrid retrieval: BM25 + trace similarity + vectors, fused by rank, each result explained.

Unit tests for the lexical index and the terms; then the real thing (wordllama, Chroma, SQLite and
PostgreSQL) through the app: a top hit explained by shared frames, a pattern that the vector search
alone ranks below 5 and the hybrid search finds, and two processes on one database ranking alike.
"""

from __future__ import annotations

import json
import os
import subprocess  # noqa: TID251 - a second real process reads the same database
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.retrieval.lexical import LexicalIndex
from agent.retrieval.service import query_doc, query_text
from agent.retrieval.terms import LIBRARY_WEIGHT, lexical_doc, weighted_frames, words
from tests.conftest import INGEST_KEY

REPO = Path(__file__).resolve().parents[1]


def java_trace(error: str, frames: list[str], test: str) -> str:
    lines = [error]
    lines += [f"\tat {f}({f.rsplit('.', 2)[-2]}.java:{10 + i})" for i, f in enumerate(frames)]
    lines += [
        f"\tat {test}({test.rsplit('.', 2)[-2]}.java:99)",
        "\tat sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
        "\tat java.lang.reflect.Method.invoke(Method.java:498)",
        "\tat junit.framework.TestCase.runTest(TestCase.java:176)",
        "\tat junit.framework.TestCase.runBare(TestCase.java:141)",
    ]
    return "\n".join(lines) + "\n"


def doc(error_type: str, template: str, trace: str | None = None):  # type: ignore[no-untyped-def]
    frames, own = weighted_frames(trace)
    return lexical_doc(error_type=error_type, template=template, frames=frames, own_frames=own)


# ------------------------------------------------------------------------------------------ unit


def test_words_split_identifiers_and_drop_placeholders() -> None:
    assert words("NumberUtils.createInteger <NUM> of HTTPServer") == [
        "number",
        "utils",
        "create",
        "integer",
        "http",
        "server",
    ]


def test_frames_are_weighted_by_position_and_kind() -> None:
    trace = java_trace(
        "java.lang.NumberFormatException: For input string",
        ["java.lang.Integer.parseInt", "org.acme.math.NumberUtils.createInteger"],
        "org.acme.math.NumberUtilsTest.testCreate",
    )
    frames, own = weighted_frames(trace)
    assert frames["lang.Integer.parseInt"] == pytest.approx(LIBRARY_WEIGHT)  # the JDK, at the top
    assert frames["math.NumberUtils.createInteger"] == pytest.approx(1.0 / 2)  # project code, second
    assert frames["math.NumberUtilsTest.testCreate"] == pytest.approx(0.3 / 3)  # the project's test, third
    assert own == ["org.acme.math.NumberUtils.createInteger", "org.acme.math.NumberUtilsTest.testCreate"]


def test_bm25_ranks_the_rare_shared_word_first_and_follows_replacements() -> None:
    index = LexicalIndex()
    for i in range(20):
        index.put(f"common{i}", doc("ValueError", "invalid configuration value for option"))
    index.put("rare", doc("RuntimeError", "flux capacitor overflow"))
    query = doc("ValueError", "invalid configuration value: capacitor").terms
    ranked = index.bm25(query, 5)
    assert ranked[0][0] == "rare"
    assert len(ranked) == 5 and all(score > 0 for _, score in ranked)
    index.put("rare", doc("RuntimeError", "something else entirely"))  # replaced: the word is gone
    assert index.bm25(["capacitor"], 5) == []
    index.remove("common3")
    assert len(index) == 20 and "common3" not in index
    assert index.bm25(query, 50, exclude=["common4"])[-1][0] != "common4"
    assert "common4" not in {d for d, _ in index.bm25(query, 50, exclude=["common4"])}


def test_trace_similarity_needs_a_shared_project_frame() -> None:
    index = LexicalIndex()
    shared = "org.acme.billing.Invoice.total"
    index.put("same-code", doc("E", "x", java_trace("E: x", [shared], "org.acme.billing.InvoiceTest.testA")))
    index.put(
        "harness-only", doc("E", "x", java_trace("E: x", ["org.acme.auth.Login.check"], "org.acme.auth.LoginTest.t"))
    )
    query = query_doc("E: x", java_trace("E: x", [shared], "org.acme.billing.OtherTest.testB"))
    match = index.frame_match(query.frames, "same-code", query.own)
    assert match.similarity > 0.5
    assert match.shared[0] == "billing.Invoice.total"
    # JUnit and reflection frames are shared too, but they say nothing about the bug
    assert index.frame_match(query.frames, "harness-only", query.own).similarity == 0.0


# -------------------------------------------------------------------------- real components


def _error(error_type: str, message: str, trace: str, service: str = "billing") -> dict[str, str]:
    return {
        "service": service,
        "error_type": error_type,
        "severity": "high",
        "error_message": message,
        "stack_trace": trace,
    }


@pytest.fixture
def app(settings):  # type: ignore[no-untyped-def]
    application = create_app(settings)
    with TestClient(application) as c:
        c.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        yield c, application


def _seed(c, application, events: list[dict[str, str]]) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for ev in events:
        response = c.post("/errors", json=ev)
        assert response.status_code == 202, response.text
        ids.append(response.json()["pattern_id"])
    application.state.services.worker.tick()
    assert application.state.services.runtime.retrieval().pending_patterns() == 0
    return ids


def _npe(code: list[str], test: str) -> dict[str, str]:
    return _error("java.lang.NullPointerException", "java.lang.NullPointerException",
                  java_trace("java.lang.NullPointerException", code, test))  # fmt: skip


def test_top_hit_is_explained_by_shared_frames(app) -> None:  # type: ignore[no-untyped-def]
    c, application = app
    events = [
        _npe(
            ["org.acme.billing.Invoice.total", "org.acme.billing.Invoice.render"],
            "org.acme.billing.InvoiceTest.testTotal",
        ),
        _npe(["org.acme.billing.Refund.apply"], "org.acme.billing.RefundTest.testApply"),
        _npe(["org.acme.billing.Ledger.post"], "org.acme.billing.LedgerTest.testPost"),
        _npe(["org.acme.billing.Tax.rate"], "org.acme.billing.TaxTest.testRate"),
    ]
    ids = _seed(c, application, events)
    # the same bug reached from another test: same code frames, another test method
    query = _npe(
        ["org.acme.billing.Invoice.total", "org.acme.billing.Invoice.render"], "org.acme.billing.PrintTest.testPdf"
    )
    text = query_text(
        service="billing",
        error_type=query["error_type"],
        message=query["error_message"],
        stack_trace=query["stack_trace"],
    )
    hits = application.state.services.runtime.retrieval().search(
        text, k=3, knowledge_k=0, stack_trace=query["stack_trace"]
    )
    top = hits[0]
    assert top.id == ids[0]
    assert top.why is not None
    assert top.why.shared_frames[:2] == ("billing.Invoice.total", "billing.Invoice.render")
    assert top.why.frame_rank == 1 and top.why.frame_similarity > 0.5
    assert top.why.vector_score == pytest.approx(top.score)
    assert top.why.summary().startswith("shared frames: billing.Invoice.total")
    # the others share only the exception and the JUnit frames: no trace similarity
    assert all(h.why is not None and h.why.frame_similarity == 0.0 for h in hits[1:])
    # the API says why too
    body = c.post("/search", json={"text": text, "k": 3}).json()
    assert body[0]["id"] == ids[0] and "billing.Invoice.total" in body[0]["why"]["shared_frames"]


CONFIG = "invalid configuration value for option {}: expected a positive integer within the configured range limits"


def _config_error(option: str, frames: list[str], test: str) -> dict[str, str]:
    return _error("ValueError", CONFIG.format(option), java_trace("ValueError: bad value", frames, test))


def test_lexical_finds_what_the_vector_search_ranks_below_5(app) -> None:  # type: ignore[no-untyped-def]
    c, application = app
    names = ["timeout", "retries", "region", "bucket", "endpoint", "charset", "locale", "proxy", "cache", "quota"]
    distractors = [
        _config_error(n, [f"org.acme.config.{n.title()}Loader.load"], f"org.acme.config.{n.title()}LoaderTest.testLoad")
        for n in names
    ]
    trace = java_trace(
        "java.lang.IllegalStateException: flux capacitor overflow",
        ["org.acme.flux.CapacitorBank.discharge"],
        "org.acme.flux.CapacitorBankTest.testDischarge",
    )
    ids = _seed(
        c, application, [*distractors, _error("java.lang.IllegalStateException", "flux capacitor overflow", trace)]
    )
    # a config error raised inside the capacitor code: the message reads like the config errors
    query = _config_error("capacitor", ["org.acme.flux.CapacitorBank.discharge", "org.acme.config.Loader.load"],
                          "org.acme.config.StageTest.testStage")  # fmt: skip
    text = query_text(
        service="billing",
        error_type=query["error_type"],
        message=query["error_message"],
        stack_trace=query["stack_trace"],
    )
    retrieval = application.state.services.runtime.retrieval()
    vector_only = [h.id for h in retrieval.store.query("patterns", text, k=len(ids))]
    assert vector_only.index(ids[-1]) >= 5, vector_only  # the vectors see "invalid configuration value"
    hybrid = retrieval.search(text, k=5, knowledge_k=0, stack_trace=query["stack_trace"])
    assert hybrid[0].id == ids[-1]
    why = hybrid[0].why
    assert why is not None and why.bm25_rank == 1 and why.frame_rank == 1
    assert why.vector_rank is None or why.vector_rank > 5
    assert why.vector_score is not None and why.vector_score < hybrid[1].score
    assert "capacitor" in why.shared_terms and why.shared_frames == ("flux.CapacitorBank.discharge",)


def test_two_processes_on_one_database_rank_alike(app, settings) -> None:  # type: ignore[no-untyped-def]
    c, application = app
    events = [
        _npe([f"org.acme.app.Module{i}.run", "org.acme.app.Core.step"], f"org.acme.app.Module{i}Test.testRun")
        for i in range(6)
    ]
    _seed(c, application, events)
    query = _npe(["org.acme.app.Module3.run", "org.acme.app.Core.step"], "org.acme.app.OtherTest.testIt")
    text = query_text(
        service="billing",
        error_type=query["error_type"],
        message=query["error_message"],
        stack_trace=query["stack_trace"],
    )
    here = application.state.services.runtime.retrieval().search(
        text, k=5, knowledge_k=0, stack_trace=query["stack_trace"]
    )
    script = textwrap.dedent(
        """
        import json, sys
        from agent.settings import Settings
        from agent.service import Core
        from agent.runtime import open_retrieval
        settings = Settings()
        retrieval = open_retrieval(settings, Core(settings))
        hits = retrieval.search(sys.argv[1], k=5, knowledge_k=0, stack_trace=sys.argv[2])
        print(json.dumps([[h.id, h.why.fused if h.why else None] for h in hits]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, text, query["stack_trace"]],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env=os.environ | {"ERRLEARN_DATA_DIR": str(settings.data_dir), "ERRLEARN_DATABASE_URL": str(settings.database_url)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there == [[h.id, h.why.fused if h.why else None] for h in here]
    assert here[0].why is not None and here[0].why.shared_frames[0] == "app.Module3.run"
