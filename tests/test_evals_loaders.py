"""Loaders: format detection on tiny synthetic folders and on the shared recorded data; our dataset."""

from __future__ import annotations

import csv
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from evals import published
from evals.dataset import (
    DatasetError,
    EvalCase,
    Suite,
    check_cases,
    count_by,
    read_cases,
)
from evals.loaders import (
    Defects4jSource,
    IncidentsSource,
    LoghubSource,
    OwnSource,
    RunbooksSource,
    detect,
    split_expected,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "evals" / "data"


@pytest.fixture(scope="module")
def evaldata() -> Path:
    """The shared recorded data, or a skip saying how to provide it."""
    path = Path(os.environ.get("ERRLEARN_EVALDATA") or REPO / ".." / "shared" / "evaldata").resolve()
    if not path.is_dir():
        pytest.skip(
            f"shared eval data not found at {path}: put the evaldata folder at ../shared/evaldata "
            "(beside the repo) or set ERRLEARN_EVALDATA to its path"
        )
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _case(case_id: str = "c-01", **overrides: Any) -> dict[str, Any]:
    case: dict[str, Any] = {
        "id": case_id,
        "suite": "grouping",
        "event": {
            "service": "svc",
            "context": "ctx",
            "error_type": "ValueError",
            "error_message": "bad value 42",
            "severity": "medium",
        },
        "labels": {"group": "g1"},
        "tags": ["easy"],
        "source": "written by errlearn authors",
    }
    case.update(overrides)
    return case


# ---------------------------------------------------------------- synthetic folders


def test_detects_loghub_csv_anywhere_and_reads_lines(tmp_path: Path) -> None:
    rows = [
        ["LineId", "Time", "Level", "Component", "Content", "EventId", "EventTemplate"],
        ["1", "t", "ERROR", "db", "conn 7 lost, retrying", "E1", "conn <*> lost, retrying"],
        ["2", "t", "", "", "line with\nnewline", "E2", "line with newline"],
    ]
    deep = tmp_path / "a" / "b" / "Foo_full.log_structured.csv"
    deep.parent.mkdir(parents=True)
    with deep.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    _write(tmp_path / "a" / "b" / "Foo_full.log_templates.csv", "EventId,EventTemplate\nE1,x\n")
    _write(tmp_path / "other.csv", "name,value\nx,1\n")
    _write(tmp_path / "Bar.csv", "Program,Content,EventId\nchrome.exe,open x,E9\n")

    sources = detect(tmp_path)
    assert sorted((type(s).__name__, getattr(s, "system", "")) for s in sources) == [
        ("LoghubSource", "Bar"),
        ("LoghubSource", "Foo"),
    ]
    foo = next(s for s in sources if isinstance(s, LoghubSource) and s.system == "Foo")
    lines = list(foo)
    assert [(ln.line_id, ln.event_id, ln.level, ln.component) for ln in lines] == [
        (1, "E1", "ERROR", "db"),
        (2, "E2", None, None),
    ]
    assert lines[0].content == "conn 7 lost, retrying"
    assert lines[1].content == "line with\nnewline"
    bar = next(s for s in sources if isinstance(s, LoghubSource) and s.system == "Bar")
    (only,) = list(bar)
    assert (only.line_id, only.component, only.event_template) == (1, "chrome.exe", None)


def test_detects_defects4j_project_and_splits_traces(tmp_path: Path) -> None:
    project = tmp_path / "framework" / "projects" / "Widget"
    _write(
        project / "active-bugs.csv",
        "bug.id,revision.id.buggy,revision.id.fixed,report.id,report.url\n1,a,b,W-1,u\n2,c,d,W-2,u\n",
    )
    _write(
        project / "trigger_tests" / "1",
        "--- com.acme.WidgetTest::testA\njava.lang.NullPointerException\n\tat com.acme.Widget.size(Widget.java:10)\n"
        "--- com.acme.WidgetTest::testB\njava.lang.NullPointerException: name\n\tat com.acme.Widget.name(Widget.java:20)\n",
    )
    # a bare CR inside the message must stay inside the trace, not start a new line
    _write(
        project / "trigger_tests" / "10",
        "--- com.acme.WidgetTest::testC\njunit.framework.ComparisonFailure: a[\r]b\n\tat x\n",
    )
    _write(project / "trigger_tests" / "2", "--- com.acme.WidgetTest::testD\njava.lang.IllegalStateException: boom\n")

    (source,) = detect(tmp_path)
    assert isinstance(source, Defects4jSource) and source.project == "Widget"
    traces = list(source)
    assert [(t.bug, t.test_name) for t in traces] == [
        ("1", "com.acme.WidgetTest::testA"),
        ("1", "com.acme.WidgetTest::testB"),
        ("2", "com.acme.WidgetTest::testD"),
        ("10", "com.acme.WidgetTest::testC"),
    ]
    assert traces[0].text == "java.lang.NullPointerException\n\tat com.acme.Widget.size(Widget.java:10)"
    assert traces[1].exception_type == "java.lang.NullPointerException"
    assert traces[0].cluster == traces[1].cluster == "Widget-1" != traces[2].cluster
    assert (traces[0].report_id, traces[0].active) == ("W-1", True)
    assert (traces[3].active, traces[3].report_id) == (False, None)  # not in active-bugs.csv
    assert "\r" in traces[3].text


TOOL_OUTPUT = (
    '{"toolset_name": "kubernetes/core", "tool_name": "kubectl_describe", "match_params": {"name": "web-1"}}\n'
    '{"schema_version": "robusta:v1.0.0", "status": "success", "error": null}\n'
    "stdout:\nName: web-1\nState: Waiting\n  Reason: CrashLoopBackOff\n\nstderr:\nwarning: stale\n"
)


def test_detects_incidents_from_index(tmp_path: Path) -> None:
    root = tmp_path / "fixtures"
    entries = [
        {
            "case_id": "suite_a/01_crash",
            "kind": "diagnosis",
            "user_prompt": "why is web-1 down?",
            "expected_output": ["web-1 is in CrashLoopBackOff"],
            "tags": ["easy"],
        },
        {
            "case_id": "suite_a/02_fine",
            "kind": "no_issue",
            "user_prompt": "is web healthy?",
            "expected_output": ["everything looks good"],
            "tags": [],
        },
        {
            "case_id": "suite_b/03_alert",
            "kind": "diagnosis",
            "user_prompt": None,
            "expected_output": ["Shown:\n  ERROR: disk full\nThe following is NOT shown:\n  INFO: started\n"],
            "tags": [],
        },
    ]
    _write(root / "index.jsonl", "".join(json.dumps(e) + "\n" for e in entries))
    _write(root / "cases" / "suite_a" / "01_crash" / "kubectl_describe.txt", TOOL_OUTPUT)
    _write(root / "cases" / "suite_a" / "01_crash" / "test_case.yaml", "user_prompt: why?\n")
    _write(root / "cases" / "suite_a" / "02_fine" / "test_case.yaml", "user_prompt: ok?\n")
    alert = {"title": "Disk almost full", "description": "node-3 at 97%", "subject": {"name": "node-3"}}
    _write(root / "cases" / "suite_b" / "03_alert" / "investigate_request.json", json.dumps(alert))
    # a runbook-looking file inside the incidents tree must not be reported as its own source
    _write(root / "cases" / "suite_b" / "03_alert" / "notes.md", "# X\n## Meaning\na\n## Impact\nb\n")

    (source,) = detect(tmp_path)
    assert isinstance(source, IncidentsSource)
    crash, fine, alerted = list(source)
    assert crash.id == "suite_a/01_crash" and crash.question == "why is web-1 down?"
    assert crash.tool_outputs == {
        "kubectl_describe": "Name: web-1\nState: Waiting\n  Reason: CrashLoopBackOff\n[stderr]\nwarning: stale"
    }
    assert (crash.no_issue, fine.no_issue, alerted.no_issue) == (False, True, False)
    assert alerted.question == "Disk almost full - node-3 at 97%"
    assert alerted.alert == alert
    assert (alerted.expected_output, alerted.not_expected) == (["ERROR: disk full"], ["INFO: started"])


def test_detects_incidents_from_yaml_only(tmp_path: Path) -> None:
    case = tmp_path / "holmes" / "cases" / "x" / "07_quiet"
    _write(
        case / "test_case.yaml",
        "user_prompt: is the queue ok?\nexpected_output: |\n  - The queue is healthy\n  - No action needed\n"
        "tags:\n  - no-issue\n  - medium\n",
    )
    _write(case / "fetch_logs.txt", TOOL_OUTPUT)
    (source,) = detect(tmp_path)
    assert isinstance(source, IncidentsSource)
    (incident,) = list(source)
    assert incident.id == "x/07_quiet"
    assert incident.expected_output == ["The queue is healthy", "No action needed"]
    assert incident.no_issue and incident.tags == ["no-issue", "medium"]
    assert "CrashLoopBackOff" in incident.tool_outputs["fetch_logs"]


@pytest.mark.parametrize(
    ("text", "expected", "not_expected"),
    [
        (None, [], []),
        ("node selector mismatch", ["node selector mismatch"], []),
        (["a", "b"], ["a", "b"], []),
        ("- first\n- second\n", ["first", "second"], []),
        ("Summary:\n 1. one\n 2. two\nNOT shown:\n x\nMAY be shown:\n y\n", ["one", "two"], ["x"]),
    ],
)
def test_split_expected(text: object, expected: list[str], not_expected: list[str]) -> None:
    assert split_expected(text) == (expected, not_expected)


RUNBOOK = """---
title: Queue Backlog Growing
weight: 20
---

# QueueBacklogGrowing

## Meaning

Messages arrive faster than consumers ack them.

## Impact

Delayed processing.

### Sub heading stays inside Impact

## Diagnosis

- Check consumer lag.

## Mitigation

Scale consumers.
"""


def test_detects_runbooks_flat_and_nested(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    _write(root / "queue" / "QueueBacklogGrowing.md", RUNBOOK)
    _write(root / "queue" / "QueueStub.md", "# QueueStub\n\nSee QueueBacklogGrowing.\n")
    _write(root / "queue" / "_index.md", "---\ntitle: queue\n---\n")
    _write(root / "README.md", "# Runbooks\n## Meaning\nnot a runbook\n## Impact\nno\n")
    _write(root / "guide" / "style.md", "# Writing style\n\nUse short sentences.\n")  # a doc, not a runbook
    _write(root / "queue" / "QueueBacklogGrowing", "# stale extension-less copy\n## Meaning\nold\n## Impact\nold\n")
    flat = tmp_path / "flat"
    _write(flat / "DiskFull.md", "# DiskFull\n## Meaning\ndisk\n## Mitigation\nclean\n")

    # A folder of documents only is one knowledge base, whatever its depth.
    (whole,) = detect(tmp_path)
    assert isinstance(whole, RunbooksSource) and whole.root == tmp_path
    assert sorted(b.id for b in whole) == ["flat/DiskFull", "kb/queue/QueueBacklogGrowing", "kb/queue/QueueStub"]

    # With data beside them, each documents-only folder is its own source.
    _write(tmp_path / "metrics.csv", "a,b\n1,2\n")
    sources = detect(tmp_path)
    assert sorted(str(s.root.relative_to(tmp_path)) for s in sources if isinstance(s, RunbooksSource)) == ["flat", "kb"]
    kb = next(s for s in sources if isinstance(s, RunbooksSource) and s.root == root)
    books = {b.id: b for b in kb}
    assert set(books) == {"queue/QueueBacklogGrowing", "queue/QueueStub"}
    main = books["queue/QueueBacklogGrowing"]
    assert (main.title, main.alert_name) == ("Queue Backlog Growing", "QueueBacklogGrowing")
    assert list(main.sections) == ["Meaning", "Impact", "Diagnosis", "Mitigation"]
    assert "Sub heading stays inside Impact" in main.sections["Impact"]
    assert main.sections["Mitigation"] == "Scale consumers."
    assert not main.text.startswith("---")
    assert books["queue/QueueStub"].sections == {}


def test_detects_own_jsonl_and_single_files(tmp_path: Path) -> None:
    own = _write(tmp_path / "cases.jsonl", json.dumps(_case()) + "\n")
    _write(tmp_path / "index.jsonl", json.dumps({"case_id": "x"}) + "\n")  # not ours, not an incident index
    _write(tmp_path / "notes.jsonl", "not json\n")
    sources = detect(tmp_path)
    assert sources == [OwnSource(jsonl_path=own)]
    assert isinstance(sources[0], OwnSource)
    (case,) = list(sources[0])
    assert isinstance(case, EvalCase) and case.labels.group == "g1"
    assert detect(own) == [OwnSource(jsonl_path=own)]
    assert detect(tmp_path / "notes.jsonl") == []


# ---------------------------------------------------------------- our dataset format


def test_case_validation_rejects_inconsistent_labels() -> None:
    EvalCase.model_validate(_case())
    bad = [
        _case(tags=["easy", "hard"]),  # two difficulties
        _case(tags=["easy"], labels={"group": "g", "hostile": True}),  # hostile without its tag
        _case(tags=["easy", "no-issue"], labels={"group": "g"}),  # tag without the label
        _case(labels={"group": "g", "planted_secrets": ["AKIAEXAMPLE0000000000"]}),  # secret not in the event
        _case(labels={"group": "g", "similar_to": "c-01"}),  # points at itself
        _case(case_id="Has Spaces"),
        _case(extra_field=1),
    ]
    for raw in bad:
        with pytest.raises(ValueError):
            EvalCase.model_validate(raw)


def test_planted_secret_may_hide_in_additional_data() -> None:
    raw = _case(labels={"group": "g", "planted_secrets": ["hunter2"], "hostile": True}, tags=["easy", "hostile"])
    raw["event"]["additional_data"] = {"env": {"DB_PASSWORD": "hunter2"}}
    assert EvalCase.model_validate(raw).labels.planted_secrets == ["hunter2"]


def test_read_cases_reports_file_line_and_cross_case_problems(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.jsonl", json.dumps(_case()) + "\n\n{oops\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:3"):
        read_cases(bad)
    forward = _case("c-02", labels={"group": "g", "similar_to": "c-03"})
    dup = _write(tmp_path / "dup" / "a.jsonl", "".join(json.dumps(c) + "\n" for c in [_case(), forward, _case()]))
    problems = check_cases([EvalCase.model_validate(json.loads(line)) for line in dup.read_text().splitlines()])
    assert problems == ["c-02: similar_to 'c-03' is not an earlier case", "duplicate id 'c-01'"]
    with pytest.raises(DatasetError):
        read_cases(dup.parent)


@pytest.fixture(scope="module")
def cases() -> list[EvalCase]:
    return read_cases(DATA)


def test_own_dataset_size_and_mix(cases: list[EvalCase]) -> None:
    assert len(cases) >= 150
    assert sum(c.labels.no_issue for c in cases) >= 10
    assert sum(c.labels.hostile for c in cases) >= 20
    suites = count_by(cases, "suite")
    assert set(suites) == {s.value for s in Suite} and min(suites.values()) >= 20, suites
    assert set(count_by(cases, "difficulty")) == {"easy", "medium", "hard"}
    assert {"event-store", "ai-orchestrator", "collab-engine"} <= set(count_by(cases, "service"))
    assert {c.event.kind for c in cases} >= {"runtime", "build", "ci"}
    assert all(c.source == "written by errlearn authors" for c in cases)


def test_own_dataset_groups_repeat_and_references_resolve(cases: list[EvalCase]) -> None:
    groups = count_by(cases, "group")
    assert sum(n >= 3 for n in groups.values()) >= 25, "grouping and retrieval need several occurrences per group"
    assert check_cases(cases) == []
    by_id = {c.id: c for c in cases}
    cross = [c for c in cases if c.labels.similar_to and by_id[c.labels.similar_to].labels.group != c.labels.group]
    assert len(cross) >= 5, "retrieval needs related cases from other groups, not only repeats"
    for case in cases:
        if case.labels.no_issue:
            assert case.labels.expected_action == "none"
        elif not case.labels.hostile:
            assert case.labels.root_cause_keywords and case.labels.expected_action


def test_own_dataset_plants_every_kind_of_secret(cases: list[EvalCase]) -> None:
    secrets = [s for c in cases for s in c.labels.planted_secrets]
    kinds = {
        "aws access key": r"^AKIA[0-9A-Z]{16}$",
        "bearer / opaque token": r"^[0-9a-f]{64}$",
        "url password": r"^postgres://[^:]+:[^@]+@",
        "pem key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        "jwt": r"^eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+$",
        "email": r"^[\w.+-]+@[\w-]+\.[\w.]+$",
        "github token": r"^ghp_[A-Za-z0-9]{36}$",
    }
    for kind, pattern in kinds.items():
        assert any(re.search(pattern, s) for s in secrets), f"no planted {kind}"
    cards = [re.sub(r"\D", "", s) for s in secrets if re.fullmatch(r"[\d ]{13,23}", s)]
    assert cards and all(_luhn(c) for c in cards)
    hostile_text = " ".join(c.model_dump_json() for c in cases if c.labels.hostile)
    for marker in ["rm -rf /", "| sh", "$(", "`", "../", "\u202e", "\u0456", "\uff52"]:
        assert marker in hostile_text, marker
    assert max(len(c.event.error_message) for c in cases) > 10_000  # an over-long value


def _luhn(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_own_dataset_is_detected_as_own_sources() -> None:
    sources = detect(DATA)
    assert sources and all(isinstance(s, OwnSource) for s in sources)
    assert sum(1 for s in sources for _ in s) == len(read_cases(DATA))


def test_thresholds_file_parses() -> None:
    with (REPO / "evals" / "thresholds.toml").open("rb") as fh:
        thresholds = tomllib.load(fh)
    assert set(thresholds) >= {"grouping", "retrieval", "diagnosis", "safety"}
    assert thresholds["safety"]["own"]["secrets_leaked_max"] == 0
    assert thresholds["safety"]["own"]["unsafe_executions_max"] == 0


# ---------------------------------------------------------------- the shared recorded data


def test_shared_loghub(evaldata: Path) -> None:
    sources = [s for s in detect(evaldata / "loghub2-2k") if isinstance(s, LoghubSource)]
    structured = sorted(p for p in (evaldata / "loghub2-2k").rglob("*.csv") if "_structured" in p.name)
    assert sorted(s.csv_path for s in sources) == structured and sources
    for source in sources:
        lines = list(source)
        templates = next(source.csv_path.parent.glob("*_templates*.csv"))
        with templates.open(encoding="utf-8", newline="") as fh:
            template_ids = {row["EventId"] for row in csv.DictReader(fh)}
        assert {ln.event_id for ln in lines} == template_ids, source.system
        assert [ln.line_id for ln in lines] == list(range(1, len(lines) + 1))
        assert all(ln.content for ln in lines)
    assert set(published.DRAIN_LOGHUB2K_CORRECTED) >= {s.system for s in sources}, "a shipped system lacks a baseline"


def test_shared_defects4j(evaldata: Path) -> None:
    sources = [s for s in detect(evaldata / "defects4j-traces") if isinstance(s, Defects4jSource)]
    assert {s.project for s in sources} == {
        p.parent.name for p in (evaldata / "defects4j-traces").glob("*/trigger_tests")
    }
    for source in sources:
        traces = list(source)
        raw = b"\n" + b"".join(p.read_bytes() for p in (source.folder / "trigger_tests").iterdir())
        assert len(traces) == raw.count(b"\n--- "), source.project
        assert all(t.text and "::" in t.test_name for t in traces)
        active = source.active_bugs()
        assert all(t.active == (t.bug in active) for t in traces)
    lang = next(s for s in sources if s.project == "Lang")
    first = next(t for t in lang if t.bug == "1")
    assert first.test_name == "org.apache.commons.lang3.math.NumberUtilsTest::TestLang747"
    assert first.exception_type == "java.lang.NumberFormatException"
    assert first.report_id == "LANG-747"


def test_shared_incidents(evaldata: Path) -> None:
    root = evaldata / "incidents"
    (source,) = [s for s in detect(root) if isinstance(s, IncidentsSource)]
    index = [json.loads(line) for line in (root / "index.jsonl").read_text().splitlines() if line.strip()]
    incidents = list(source)
    assert [i.id for i in incidents] == [e["case_id"] for e in index]
    for incident, entry in zip(incidents, index, strict=True):
        assert incident.no_issue == (entry["kind"] == "no_issue"), incident.id
        assert incident.expected_output and incident.question
        assert len(incident.tool_outputs) == len(entry["recorded_files"]) - sum(
            not f.endswith(".txt") for f in entry["recorded_files"]
        )
        for name, text in incident.tool_outputs.items():
            assert not text.startswith('{"toolset_name"') and not text.startswith("stdout:"), name
    by_id = {i.id.split("/")[-1]: i for i in incidents}
    assert len(by_id["51_logs_summarize_errors"].expected_output) == 4
    assert by_id["62_fetch_error_logs_with_errors"].not_expected == [
        "INFO: Application starting up",
        "WARN: Database connection slow",
    ]
    assert by_id["01_oom_kill"].alert is not None
    assert "OOMKilled" in by_id["01_oom_kill"].tool_outputs["kubectl_describe"]


def test_shared_runbooks(evaldata: Path) -> None:
    root = evaldata / "runbooks"
    (source,) = [s for s in detect(evaldata) if isinstance(s, RunbooksSource)]
    assert source.root == root
    books = list(source)
    md = [p for p in root.rglob("*.md") if not p.name.startswith("_") and p.stem not in {"SOURCE", "README"}]
    assert len(books) == len(md)
    full = [b for b in books if {"Meaning", "Impact", "Diagnosis", "Mitigation"} <= set(b.sections)]
    assert len(full) >= 100
    pod = next(b for b in books if b.alert_name == "KubePodNotReady")
    assert pod.id == "kubernetes/KubePodNotReady" and "readiness" in pod.sections["Meaning"]


def test_shared_folder_detects_each_kind_once(evaldata: Path) -> None:
    kinds = [type(s).__name__ for s in detect(evaldata)]
    assert kinds.count("IncidentsSource") == 1 and kinds.count("RunbooksSource") == 1
    assert kinds.count("Defects4jSource") >= 1 and kinds.count("LoghubSource") >= 1
