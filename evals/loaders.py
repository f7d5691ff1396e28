"""Recognise and read the recorded-error formats the eval suites use.

`detect(folder)` walks any folder and returns one typed source per dataset it recognises, by
content rather than by the names of the shipped copies:

- `LoghubSource`: a CSV whose header has `Content` and `EventId` (Loghub `*_structured*.csv`).
- `Defects4jSource`: a folder holding `trigger_tests/` (Defects4J `framework/projects/<P>`).
- `IncidentsSource`: a folder with an incident `index.jsonl` or `cases/**/test_case.yaml`.
- `RunbooksSource`: the highest folder holding only documents and at least one Markdown file
  with two or more of the sections Meaning / Impact / Diagnosis / Mitigation.
- `OwnSource`: a JSONL file in errlearn's own case format (evals/dataset.py).

Each source is iterable and yields plain frozen records; nothing is loaded until iterated.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evals.dataset import EvalCase, iter_cases

# Loghub contents are short, but the full (non-2k) sets have the odd multi-kB line.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

RUNBOOK_SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation")
_DOC_SUFFIXES = frozenset({"", ".md", ".markdown", ".txt", ".rst", ".png", ".jpg", ".jpeg", ".gif", ".svg"})
_NOT_RUNBOOKS = frozenset({"readme", "source", "license", "changelog", "contributing", "citation"})
_NO_ISSUE_TAGS = frozenset({"no-issue", "no_issue", "noissue", "negative-control", "negative"})
_NO_ISSUE_TEXT = re.compile(
    r"\b(no issues?|not an issue|nothing (?:is )?wrong|without (?:any )?issues|no problems?|is healthy)\b", re.I
)
_H2 = re.compile(r"^##\s+(.+?)\s*#*\s*$", re.M)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_TRACE_HEADER = re.compile(r"^--- (\S+)\s*$")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class LogLine:
    """One labelled log line: `event_id` is the ground-truth group."""

    system: str
    line_id: int
    content: str
    event_id: str
    event_template: str | None
    level: str | None
    component: str | None


@dataclass(frozen=True)
class Trace:
    """One failing-test stack trace; traces with the same `(project, bug)` share a root cause."""

    project: str
    bug: str
    test_name: str
    text: str
    """The exception line(s) and frames, without the `--- test` header."""
    report_id: str | None = None
    active: bool = True
    """False for trigger-test files of bugs missing from active-bugs.csv (deprecated upstream)."""

    @property
    def cluster(self) -> str:
        """Ground-truth group key."""
        return f"{self.project}-{self.bug}"

    @property
    def exception_type(self) -> str:
        """`java.lang.NullPointerException` from the first line."""
        first = self.text.split("\n", 1)[0]
        return first.split(":", 1)[0].strip()


@dataclass(frozen=True)
class Incident:
    """A recorded incident: what was asked, what the tools returned, and what a right answer says."""

    id: str
    question: str
    tool_outputs: dict[str, str]
    """File stem of each recorded tool call -> its output (status headers removed)."""
    expected_output: list[str]
    """Bullets a right answer states."""
    tags: list[str]
    no_issue: bool
    not_expected: list[str] = field(default_factory=list)
    """Bullets a right answer must not state (from "... NOT shown:" blocks)."""
    alert: dict[str, Any] | None = None
    """The alert as sent (investigate_request.json), when the case starts from one."""
    issue: dict[str, Any] | None = None
    """The finding behind the alert (issue_data.json), when recorded."""
    kind: str | None = None


@dataclass(frozen=True)
class Runbook:
    """An alert runbook split into its `##` sections."""

    id: str
    title: str
    alert_name: str
    sections: dict[str, str]
    text: str


# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class LoghubSource:
    """A Loghub structured CSV: LineId, [Level], [Component], Content, EventId, EventTemplate."""

    system: str
    csv_path: Path

    def __iter__(self) -> Iterator[LogLine]:
        with self.csv_path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for index, row in enumerate(csv.DictReader(handle), start=1):
                line_id = row.get("LineId") or ""
                yield LogLine(
                    system=self.system,
                    line_id=int(line_id) if line_id.isdigit() else index,
                    content=row["Content"],
                    event_id=row["EventId"],
                    event_template=row.get("EventTemplate"),
                    level=row.get("Level") or None,
                    # Proxifier names its component column "Program".
                    component=row.get("Component") or row.get("Program") or None,
                )


@dataclass(frozen=True)
class Defects4jSource:
    """A Defects4J project folder: `trigger_tests/<bug id>` files and `active-bugs.csv`."""

    project: str
    folder: Path

    def active_bugs(self) -> dict[str, str | None]:
        """bug id -> issue-tracker id, from active-bugs.csv (empty when the file is absent)."""
        path = self.folder / "active-bugs.csv"
        if not path.is_file():
            return {}
        with path.open(encoding="utf-8", newline="") as handle:
            return {row["bug.id"]: row.get("report.id") or None for row in csv.DictReader(handle)}

    def __iter__(self) -> Iterator[Trace]:
        bugs = self.active_bugs()
        files = [p for p in (self.folder / "trigger_tests").iterdir() if p.is_file()]
        for path in sorted(files, key=_bug_order):
            for test_name, text in split_trigger_tests(path.read_bytes().decode("utf-8", errors="replace")):
                yield Trace(
                    project=self.project,
                    bug=path.name,
                    test_name=test_name,
                    text=text,
                    report_id=bugs.get(path.name),
                    active=not bugs or path.name in bugs,
                )


def _bug_order(path: Path) -> tuple[int, str]:
    """Numeric bug ids in numeric order (2 before 10), any other name after them."""
    return (int(path.name), "") if path.name.isdigit() else (sys.maxsize, path.name)


def split_trigger_tests(content: str) -> Iterator[tuple[str, str]]:
    """Split a trigger_tests file into (test name, trace) blocks.

    Blocks start with a `--- <class>::<method>` line. Only "\\n" ends a line: some messages hold
    a bare "\\r" that universal newlines would turn into a fake line break.
    """
    name: str | None = None
    body: list[str] = []
    for line in content.split("\n"):
        header = _TRACE_HEADER.match(line.rstrip("\r"))
        if header:
            if name is not None:
                yield name, "\n".join(body).strip("\r\n")
            name, body = header.group(1), []
        elif name is not None:
            body.append(line)
    if name is not None:
        yield name, "\n".join(body).strip("\r\n")


@dataclass(frozen=True)
class IncidentsSource:
    """HolmesGPT-style incident fixtures: `index.jsonl` and/or `cases/**/test_case.yaml`."""

    root: Path

    def __iter__(self) -> Iterator[Incident]:
        index = self.root / "index.jsonl"
        if index.is_file():
            with index.open(encoding="utf-8") as handle:
                entries = [json.loads(line) for line in handle if line.strip()]
            for entry in entries:
                yield _incident(self.root, str(entry["case_id"]), entry)
        else:
            for spec in sorted(self.root.rglob("test_case.yaml")):
                case_dir = spec.parent.relative_to(self.root).as_posix()
                yield _incident(self.root, case_dir.removeprefix("cases/"), {})


def _case_dir(root: Path, case_id: str) -> Path:
    for candidate in (root / "cases" / case_id, root / case_id):
        if candidate.is_dir():
            return candidate
    return root / "cases" / case_id


def _incident(root: Path, case_id: str, entry: dict[str, Any]) -> Incident:
    folder = _case_dir(root, case_id)
    spec_path = folder / "test_case.yaml"
    spec: dict[str, Any] = {}
    if spec_path.is_file():
        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
    alert = entry.get("investigate_request") or _read_json(folder / "investigate_request.json")
    issue = _read_json(folder / "issue_data.json")
    expected, not_expected = split_expected(entry.get("expected_output", spec.get("expected_output")))
    tags = [str(t) for t in (entry.get("tags") or spec.get("tags") or [])]
    kind = entry.get("kind")
    question = entry.get("user_prompt") or spec.get("user_prompt") or _alert_question(alert, issue)
    no_issue = kind == "no_issue" or bool(_NO_ISSUE_TAGS & {t.lower() for t in tags})
    no_issue = no_issue or any(_NO_ISSUE_TEXT.search(b) for b in expected)
    outputs = {p.stem: read_tool_output(p) for p in sorted(folder.glob("*.txt"))} if folder.is_dir() else {}
    return Incident(
        id=case_id,
        question=str(question),
        tool_outputs=outputs,
        expected_output=expected,
        not_expected=not_expected,
        tags=tags,
        no_issue=no_issue,
        alert=alert,
        issue=issue,
        kind=str(kind) if kind else None,
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) and data else None


def _alert_question(alert: dict[str, Any] | None, issue: dict[str, Any] | None) -> str:
    """The alert's title and description; the finding's description when the alert has none."""
    title = str((alert or {}).get("title") or (issue or {}).get("title") or "")
    description = str((alert or {}).get("description") or (issue or {}).get("description") or "")
    return " - ".join(p for p in (title, description) if p)


def split_expected(value: object) -> tuple[list[str], list[str]]:
    """Expected-output bullets from a list, or a block of text with list marks and headers.

    A header line (ending in ":") sets where the lines below it go: one naming "NOT" sends them
    to the must-not list, one naming "MAY" drops them (optional), any other keeps them expected.
    """
    expected: list[str] = []
    not_expected: list[str] = []
    if value is None:
        return expected, not_expected
    if isinstance(value, list):
        # A one-item list may still hold a whole text block (index.jsonl wraps YAML strings).
        for item in value:
            more, less = split_expected(str(item)) if "\n" in str(item) else ([str(item).strip()], [])
            expected.extend(b for b in more if b)
            not_expected.extend(less)
        return expected, not_expected
    target: list[str] | None = expected
    for line in (raw.strip() for raw in str(value).splitlines()):
        if not line:
            continue
        if line.endswith(":") and not _LIST_MARK.match(line):
            target = not_expected if re.search(r"\bNOT\b", line) else None if re.search(r"\bMAY\b", line) else expected
            continue
        if target is not None:
            target.append(_LIST_MARK.sub("", line))
    return expected, not_expected


def read_tool_output(path: Path) -> str:
    """A recorded tool call's output without its JSON header lines and `stdout:`/`stderr:` marks."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    start = 0
    while start < min(len(lines), 2) and _is_header(lines[start]):
        start += 1
    body = "\n".join(lines[start:])
    if body.startswith("stdout:\n"):
        rest = body.removeprefix("stdout:\n")
        out, sep, err = rest.rpartition("\nstderr:")
        if not sep:
            out, err = rest, ""
        body = out.rstrip("\n") + (f"\n[stderr]\n{err.strip()}" if err.strip() else "")
    return body.strip("\n")


def _is_header(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(data, dict) and bool({"tool_name", "schema_version"} & data.keys())


@dataclass(frozen=True)
class RunbooksSource:
    """A tree of Markdown alert runbooks (prometheus-operator/runbooks layout or flat)."""

    root: Path

    def __iter__(self) -> Iterator[Runbook]:
        texts: dict[Path, str] = {}
        for path in sorted(self.root.rglob("*")):
            # An extension-less copy beside its .md twin is a stale duplicate upstream.
            stale_twin = not path.suffix and path.with_suffix(".md").is_file()
            if path.is_file() and _runbook_candidate(path) and not stale_twin:
                texts[path] = path.read_text(encoding="utf-8", errors="replace")
        # Stub pages ("See NodeRAIDDegraded") count when they sit beside real runbooks; other docs do not.
        folders = {p.parent for p, text in texts.items() if _is_runbook_text(text)}
        for path, text in texts.items():
            if _is_runbook_text(text) or (path.suffix and path.parent in folders):
                yield parse_runbook(path.relative_to(self.root).with_suffix("").as_posix(), text)


def _runbook_candidate(path: Path) -> bool:
    if path.name.startswith((".", "_")) or path.stem.lower() in _NOT_RUNBOOKS:
        return False
    return path.suffix.lower() in {".md", ".markdown", ""}


def _is_runbook_text(text: str) -> bool:
    headings = {h.strip().lower() for h in _H2.findall(text)}
    return sum(s.lower() in headings for s in RUNBOOK_SECTIONS) >= 2


def parse_runbook(runbook_id: str, text: str) -> Runbook:
    """Split a runbook into front matter title, `# Alert` name and `## Section` bodies."""
    title = ""
    front = _FRONT_MATTER.match(text)
    if front:
        try:
            meta = yaml.safe_load(front.group(1))
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, dict):
            title = str(meta.get("title") or "")
        text = text[front.end() :]
    h1 = _H1.search(text)
    alert_name = h1.group(1).strip() if h1 else Path(runbook_id).name
    sections: dict[str, str] = {}
    matches = list(_H2.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections[match.group(1).strip()] = text[match.end() : end].strip()
    return Runbook(
        id=runbook_id,
        title=title or alert_name,
        alert_name=alert_name,
        sections=sections,
        text=text.strip(),
    )


@dataclass(frozen=True)
class OwnSource:
    """A JSONL file of errlearn's own cases (evals/dataset.py)."""

    jsonl_path: Path

    def __iter__(self) -> Iterator[EvalCase]:
        return iter_cases(self.jsonl_path)


Source = LoghubSource | Defects4jSource | IncidentsSource | RunbooksSource | OwnSource


# ---------------------------------------------------------------- detection


def detect(path: Path) -> list[Source]:
    """Every dataset under `path` (a folder, or a single CSV/JSONL file), in walk order.

    A folder recognised as a whole (Defects4J project, incidents, runbooks) is not searched
    further, so its files are never reported twice. A runbooks source is the highest folder that
    holds nothing but documents (Markdown, text, images, extension-less files) and at least one
    runbook-shaped file, so a knowledge base split into group folders stays one source.
    """
    path = Path(path)
    if path.is_file():
        return [s for s in (_file_source(path),) if s is not None]
    runbook_roots = _runbook_roots(path)
    found: list[Source] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        folder = Path(dirpath)
        source = _folder_source(folder, dirnames, filenames)
        if source is None and folder in runbook_roots:
            source = RunbooksSource(root=folder)
        if source is not None:
            found.append(source)
            dirnames.clear()
            continue
        for name in sorted(filenames):
            file_source = _file_source(folder / name)
            if file_source is not None:
                found.append(file_source)
    return found


def _folder_source(folder: Path, dirnames: list[str], filenames: list[str]) -> Source | None:
    if "trigger_tests" in dirnames:
        return Defects4jSource(project=folder.name, folder=folder)
    if "index.jsonl" in filenames and _is_incident_index(folder / "index.jsonl"):
        return IncidentsSource(root=folder)
    if "cases" in dirnames and next((folder / "cases").rglob("test_case.yaml"), None) is not None:
        return IncidentsSource(root=folder)
    return None


def _runbook_roots(path: Path) -> set[Path]:
    """Folders that are documents only and hold a runbook, computed bottom-up in one walk."""
    docs_only: dict[Path, bool] = {}
    has_runbook: dict[Path, bool] = {}
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        folder = Path(dirpath)
        subs = [folder / d for d in dirnames]
        docs_only[folder] = all(Path(f).suffix.lower() in _DOC_SUFFIXES for f in filenames) and all(
            docs_only.get(d, True) for d in subs
        )
        has_runbook[folder] = any(has_runbook.get(d, False) for d in subs) or any(
            _is_runbook_file(folder / f) for f in filenames
        )
    roots = {f for f in docs_only if docs_only[f] and has_runbook[f]}
    return {f for f in roots if not any(parent in roots for parent in f.parents)}


def _is_runbook_file(path: Path) -> bool:
    if path.suffix.lower() not in {".md", ".markdown"} or not _runbook_candidate(path):
        return False
    return _is_runbook_text(path.read_text(encoding="utf-8", errors="replace"))


def _file_source(path: Path) -> LoghubSource | OwnSource | None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            header = next(csv.reader(handle), [])
        if {"Content", "EventId"} <= set(header):
            return LoghubSource(system=path.name.split("_", 1)[0].split(".", 1)[0], csv_path=path)
    elif suffix == ".jsonl" and _is_own_jsonl(path):
        return OwnSource(jsonl_path=path)
    return None


def _first_json_object(path: Path) -> dict[str, Any] | None:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return data if isinstance(data, dict) else None
    return None


def _is_own_jsonl(path: Path) -> bool:
    first = _first_json_object(path)
    return first is not None and {"suite", "event", "labels"} <= first.keys()


def _is_incident_index(path: Path) -> bool:
    first = _first_json_object(path)
    return first is not None and "case_id" in first and "expected_output" in first
