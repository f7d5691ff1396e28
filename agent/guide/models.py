"""The guide's domain model: `ERROR-XXX` entries, their authorship, revisions and learning runs.

Pure pydantic, no I/O. (These could move into `agent/domain.py`; they live here while the guide layer is
the only one that uses them.)
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum

from pydantic import BaseModel, Field

from agent.guide.status import GuideStatus as GuideStatus  # re-exported: callers import it from here

ENTRY_ID = re.compile(r"^ERROR-(\d{1,9})$")


def entry_id(number: int) -> str:
    """`ERROR-001` … `ERROR-999`, `ERROR-1000` …: at least three digits."""
    return f"ERROR-{number:03d}"


def entry_number(ident: str) -> int | None:
    """The number in `ERROR-007` (case-insensitive), or None when `ident` is not an entry id."""
    m = ENTRY_ID.match(ident.strip().upper())
    return int(m.group(1)) if m else None


LIVE_STATUSES = (GuideStatus.draft, GuideStatus.approved)
"""Entries that cover their patterns: a pattern linked to one of these is not drafted again."""


class AuthorKind(StrEnum):
    model = "model"
    person = "person"


class Authorship(BaseModel):
    """Who wrote an entry: a model with the prompt that instructed it, or a person."""

    kind: AuthorKind
    name: str
    """The model (`embedded:SmolLM2-…`) or the person's name."""
    prompt_name: str | None = None
    prompt_version: int | None = None
    prompt_sha256: str | None = None

    @property
    def label(self) -> str:
        if self.kind is AuthorKind.person:
            return self.name
        return f"{self.name} (prompt {self.prompt_name}@v{self.prompt_version})"


class EntryContent(BaseModel):
    """What a guide entry says. Shared by entries, drafted revisions and the revision history."""

    title: str
    description: str = ""
    error_type: str = ""
    """The error type of the pattern the entry was drafted for (empty for entries written by people)."""
    template: str = ""
    """That pattern's message template (Drain3's, `<*>` for variable parts)."""
    symptoms: list[str] = Field(default_factory=list)
    """`ErrorType: template` of each linked pattern, or the symptom lines a person wrote."""
    root_cause: str = ""
    solution_steps: list[str] = Field(default_factory=list)
    prevention_tips: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    """Documentation for people. errlearn never executes them."""


class EntryProposal(BaseModel):
    """A drafted revision of an approved entry, waiting for review (the entry stays approved meanwhile)."""

    content: EntryContent
    author: Authorship
    pattern_id: str
    """The pattern whose evidence prompted it."""
    evidence: list[str] = Field(default_factory=list)
    evidence_hash: str = ""
    created_at: dt.datetime


class GuideEntry(EntryContent):
    """One `ERROR-XXX` entry of the error prevention guide."""

    id: str
    number: int
    status: GuideStatus
    pattern_ids: list[str] = Field(default_factory=list)
    author: Authorship
    evidence: list[str] = Field(default_factory=list)
    """Real ids (events, patterns, knowledge entries) that support it; each was in the drafting model's context."""
    evidence_hash: str = ""
    """Hash of the evidence it was drafted from (see `agent.llm.context.evidence_hash`)."""
    proposal: EntryProposal | None = None
    rejection_reason: str | None = None
    superseded_by: str | None = None
    revision: int = 1
    """Bumped by every recorded change; the history is in `guide_revisions`."""
    created_at: dt.datetime
    updated_at: dt.datetime
    approved_at: dt.datetime | None = None
    approved_by: str | None = None

    def content(self) -> EntryContent:
        return EntryContent.model_validate(self.model_dump(include=set(EntryContent.model_fields)))


class RevisionAction(StrEnum):
    drafted = "drafted"
    imported = "imported"
    edited = "edited"
    approved = "approved"
    rejected = "rejected"
    proposed = "proposed"
    """A revision of an approved entry was drafted (kept in `proposal` until reviewed)."""
    proposal_rejected = "proposal_rejected"
    linked = "linked"
    merged = "merged"
    """Another entry was merged into this one."""
    superseded = "superseded"


class GuideRevision(BaseModel):
    """One append-only record of an entry's history: what happened, who did it, the content after it."""

    entry_id: str
    revision: int
    action: RevisionAction
    status: GuideStatus
    content: EntryContent
    author: str
    reason: str | None = None
    evidence_hash: str = ""
    created_at: dt.datetime


class PatternOutcome(StrEnum):
    """What one learning run did with one pattern."""

    drafted = "drafted"
    linked = "linked"
    """Matched an existing entry (same error type and template, or similar enough): linked, not duplicated."""
    proposed = "proposed"
    """Similar to an approved entry: linked, and a revision of that entry drafted for review."""
    covered = "covered"
    """Already linked to a draft or approved entry."""
    rejected_before = "rejected_before"
    """A draft from the same evidence was rejected (or had no valid evidence) before."""
    no_evidence = "no_evidence"
    """The model cited nothing that was in its context: no draft."""


class LearningRunReport(BaseModel):
    """What a learning run did (the `learning_runs` row has the headline counts)."""

    run_id: int | None
    trigger: str
    status: str
    """finished, failed, or busy (another run was in progress; nothing was done)."""
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    patterns_examined: int = 0
    drafts_created: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    """Count of each `PatternOutcome`."""
    drafted_ids: list[str] = Field(default_factory=list)
    deferred: int = 0
    """Candidates left for the next run (the per-run draft limit was reached)."""
    errors: list[str] = Field(default_factory=list)
