"""errlearn's own recorded-error eval format: one JSON case per line, validated by pydantic.

A case is an ingest body (what a service would POST) plus the labels the eval suites score
against. Every case carries every label, so one file serves all suites: `suite` only names the
case's main purpose. See docs/evals.md for the meaning of each label and how to add cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.domain import EventKind, Severity

DIFFICULTIES = frozenset({"easy", "medium", "hard"})
HOSTILE_TAG = "hostile"
NO_ISSUE_TAG = "no-issue"
_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"


class Suite(StrEnum):
    """The main purpose of a case."""

    grouping = "grouping"
    retrieval = "retrieval"
    diagnosis = "diagnosis"
    safety = "safety"


class CaseEvent(BaseModel):
    """The ingest body exactly as a service would send it."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=200)
    context: str
    error_type: str = Field(min_length=1)
    error_message: str
    severity: Severity
    stack_trace: str | None = None
    additional_data: dict[str, Any] | None = None
    kind: EventKind | None = None


class CaseLabels(BaseModel):
    """What a correct pipeline does with the event."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(min_length=1)
    """Expected pattern group: cases with the same group must land in one pattern, others must not."""
    similar_to: str | None = None
    """Id of an earlier case that retrieval should return for this one (same or related root cause)."""
    root_cause_keywords: list[str] = Field(default_factory=list)
    """Key tokens a correct diagnosis states (scored with `bullet_recall`)."""
    no_issue: bool = False
    """A negative control: the right answer is "nothing wrong" or "inconclusive"."""
    hostile: bool = False
    """The event carries prompt injection, shell metacharacters or other hostile text."""
    planted_secrets: list[str] = Field(default_factory=list)
    """Exact strings that must never appear in stored events, prompts, drafts or logs."""
    expected_action: str | None = None
    """Recovery action a correct pipeline proposes (`none` when it must propose nothing)."""


class EvalCase(BaseModel):
    """One recorded error with its labels."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    suite: Suite
    event: CaseEvent
    labels: CaseLabels
    tags: list[str] = Field(min_length=1)
    source: str = Field(min_length=1)

    @property
    def difficulty(self) -> str:
        """The case's one easy/medium/hard tag."""
        return next(t for t in self.tags if t in DIFFICULTIES)

    @model_validator(mode="after")
    def _labels_agree(self) -> EvalCase:
        # Tags mirror the boolean labels so a reader can filter with `grep`; keep them in step.
        difficulties = [t for t in self.tags if t in DIFFICULTIES]
        if len(difficulties) != 1:
            raise ValueError(f"tags need exactly one of {sorted(DIFFICULTIES)}, got {self.tags}")
        if self.labels.hostile != (HOSTILE_TAG in self.tags):
            raise ValueError(f"labels.hostile={self.labels.hostile} but tag {HOSTILE_TAG!r} presence disagrees")
        if self.labels.no_issue != (NO_ISSUE_TAG in self.tags):
            raise ValueError(f"labels.no_issue={self.labels.no_issue} but tag {NO_ISSUE_TAG!r} presence disagrees")
        if self.labels.similar_to == self.id:
            raise ValueError("labels.similar_to points at the case itself")
        strings = list(_strings(self.event.model_dump(mode="json")))
        for secret in self.labels.planted_secrets:
            if not secret or not any(secret in s for s in strings):
                raise ValueError(f"planted secret {secret[:12]!r}... does not occur verbatim in the event")
        return self


class DatasetError(ValueError):
    """A dataset file that does not parse or validate; the message names file and line."""


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (keys included: secrets can hide in keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def dataset_files(path: Path) -> list[Path]:
    """The JSONL files of a dataset: the file itself, or a folder's `*.jsonl` in name order."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.glob("*.jsonl") if p.is_file())
    raise DatasetError(f"{path}: no such file or folder")


def iter_cases(path: Path) -> Iterator[EvalCase]:
    """Parse cases one by one, in file order (files sorted by name); blank lines are skipped.

    Raises:
        DatasetError: on the first line that is not valid JSON or not a valid case.
    """
    for file in dataset_files(path):
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield EvalCase.model_validate(json.loads(line))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise DatasetError(f"{file}:{number}: {exc}") from exc


def read_cases(path: Path) -> list[EvalCase]:
    """All cases of a file or folder, checked for unique ids and valid references.

    Raises:
        DatasetError: when a line does not parse or the cases break `check_cases`.
    """
    cases = list(iter_cases(path))
    problems = check_cases(cases)
    if problems:
        raise DatasetError(f"{path}: " + "; ".join(problems))
    return cases


def check_cases(cases: Sequence[EvalCase]) -> list[str]:
    """Cross-case problems: duplicate ids, and `similar_to` naming no earlier case."""
    problems: list[str] = []
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            problems.append(f"duplicate id {case.id!r}")
        ref = case.labels.similar_to
        if ref is not None and ref not in seen:
            problems.append(f"{case.id}: similar_to {ref!r} is not an earlier case")
        seen.add(case.id)
    return problems


def count_by(cases: Iterable[EvalCase], key: str) -> dict[str, int]:
    """Case counts by `suite`, `group`, `difficulty` or `service`, for reports and tests."""
    getters: dict[str, Callable[[EvalCase], str]] = {
        "suite": lambda c: str(c.suite),
        "group": lambda c: c.labels.group,
        "difficulty": lambda c: c.difficulty,
        "service": lambda c: c.event.service,
    }
    if key not in getters:
        raise ValueError(f"unknown key {key!r}; use one of {sorted(getters)}")
    counts: dict[str, int] = {}
    for case in cases:
        name = getters[key](case)
        counts[name] = counts.get(name, 0) + 1
    return counts
