"""Pure domain model: what errlearn talks about. No I/O, no imports from the rest of `agent`."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.low: 0, Severity.medium: 1, Severity.high: 2, Severity.critical: 3}


class EventKind(StrEnum):
    """Where an error came from: a running service, a build, a CI job or another job."""

    runtime = "runtime"
    build = "build"
    ci = "ci"
    job = "job"


class GroupMethod(StrEnum):
    """How an event was assigned to its pattern."""

    stack = "stack"
    """Fingerprint of the normalised stack trace (exception type + in-app frames)."""
    template = "template"
    """Error type + the message template mined by Drain3."""


class Frame(BaseModel):
    """One stack frame, normalised: no line numbers, no addresses."""

    model_config = ConfigDict(frozen=True)

    module: str
    function: str
    in_app: bool


class Grouping(BaseModel):
    """The result of grouping one event: which pattern key it belongs to and why."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str
    method: GroupMethod
    template: str
    reason: str
    frames: tuple[Frame, ...] = ()
    fingerprint_source: str = ""
    """For template grouping: the masked template the fingerprint was made from."""


class ErrorEvent(BaseModel):
    """An accepted, scrubbed error event as stored."""

    id: str
    pattern_id: str
    service: str
    context: str
    error_type: str
    error_message: str
    severity: Severity
    kind: EventKind = EventKind.runtime
    stack_trace: str | None = None
    stack_truncated: bool = False
    additional_data: dict[str, Any] = Field(default_factory=dict)
    timestamp: dt.datetime
    received_at: dt.datetime


class Pattern(BaseModel):
    """A group of events that are the same error."""

    id: str
    fingerprint: str
    service: str
    error_type: str
    template: str
    method: GroupMethod
    reason: str
    """Why events joined this pattern (e.g. the frames or the template that matched)."""
    first_seen: dt.datetime
    last_seen: dt.datetime
    count: int
    max_severity: Severity
    sample_event_id: str | None = None
    resolved: bool = False


class StatsSnapshot(BaseModel):
    """Counters of received and rejected events."""

    received: int = 0
    rejected: int = 0
    by_service: dict[str, int] = Field(default_factory=dict)
    by_severity: dict[str, int] = Field(default_factory=dict)
    since: dt.datetime | None = None


class DiagnosisStatus(StrEnum):
    diagnosed = "diagnosed"
    inconclusive = "inconclusive"


class EvidenceKind(StrEnum):
    event = "event"
    pattern = "pattern"
    knowledge = "knowledge"
    guide = "guide"


class Evidence(BaseModel):
    """One item put in front of the model; its `alias` (E1, P2, K3 …) is what the model cites."""

    alias: str
    kind: EvidenceKind
    id: str
    text: str
    score: float | None = None
    """Retrieval similarity for retrieved items; None for the pattern's own events."""


class ProposedAction(BaseModel):
    """A recovery action the model proposes: an allow-listed id and parameter values, never a command."""

    action_id: str
    params: dict[str, str] = Field(default_factory=dict)


class Diagnosis(BaseModel):
    """A stored diagnosis of a pattern, after citation checks."""

    id: int | None = None
    pattern_id: str
    status: DiagnosisStatus
    summary: str
    root_cause: str
    confidence: float
    solution_steps: list[str] = Field(default_factory=list)
    prevention_tips: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    """Real ids (event, pattern, knowledge entry) that support it; every one was in the model's context."""
    removed_citations: list[str] = Field(default_factory=list)
    """What the model cited that was not in its context (removed by the citation check)."""
    proposed_actions: list[ProposedAction] = Field(default_factory=list)
    model: str
    prompt_name: str
    prompt_version: int
    prompt_sha256: str
    input_tokens: int = 0
    output_tokens: int = 0
    evidence_hash: str = ""
    latency_ms: int = 0
    created_at: dt.datetime | None = None
