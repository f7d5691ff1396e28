"""Review transitions: approve, reject, edit, merge, supersede. Each runs in the caller's transaction.

    draft ──approve──▶ approved ──supersede/merge──▶ superseded
      │                   │ ▲
      └──reject──▶ rejected   └─ a drafted revision (`proposal`) is approved (applied) or rejected (dropped)

Every change appends a revision. Rejections also record each linked pattern's evidence hash, so the same
evidence is not drafted from again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from agent.guide import repo
from agent.guide.models import LIVE_STATUSES, EntryContent, GuideEntry, GuideStatus, RevisionAction

MAX_ITEMS = 20


class InvalidTransition(ValueError):
    """The entry's status does not allow this review action."""


class EntryEdit(BaseModel):
    """Fields a reviewer changes; the ones left out keep their value."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    symptoms: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    root_cause: str | None = Field(default=None, max_length=4000)
    solution_steps: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    prevention_tips: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    commands: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    """Documentation only: errlearn never runs them."""

    def apply(self, content: EntryContent) -> EntryContent:
        changes: dict[str, Any] = {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}
        for key in ("symptoms", "solution_steps", "prevention_tips", "commands"):
            if key in changes:
                changes[key] = [s.strip()[:1000] for s in changes[key] if s.strip()]
        return content.model_copy(update=changes)

    @property
    def empty(self) -> bool:
        return not self.model_dump(exclude_unset=True, exclude_none=True)


def _person(by: str) -> str:
    return f"person:{by}"


def approve(conn: Connection, ident: str, *, by: str, now: dt.datetime) -> GuideEntry:
    """Approve a draft, or apply an approved entry's drafted revision. Approving an approved entry is a no-op."""
    entry = repo.require_entry(conn, ident)
    if entry.status is GuideStatus.draft:
        values: dict[str, Any] = {"status": GuideStatus.approved.value, "approved_at": now, "approved_by": by}
        return repo.save_change(
            conn,
            entry,
            values,
            action=RevisionAction.approved,
            author=_person(by),
            now=now,
            evidence_hash=entry.evidence_hash,
        )
    if entry.status is GuideStatus.approved and entry.proposal is not None:
        p = entry.proposal
        values = {
            **repo.content_values(p.content),
            "evidence": list(dict.fromkeys(entry.evidence + p.evidence)),
            "proposal": None,
            "approved_by": by,
        }
        return repo.save_change(
            conn,
            entry,
            values,
            action=RevisionAction.approved,
            author=_person(by),
            now=now,
            reason=f"revision drafted by {p.author.label} from {p.pattern_id}",
            evidence_hash=p.evidence_hash,
        )
    if entry.status is GuideStatus.approved:
        return entry
    raise InvalidTransition(f"{ident} is {entry.status.value}; only drafts and drafted revisions can be approved")


def reject(conn: Connection, ident: str, *, by: str, reason: str, now: dt.datetime) -> GuideEntry:
    """Reject a draft (or an approved entry's drafted revision), remembering the evidence it came from."""
    entry = repo.require_entry(conn, ident)
    if entry.status is GuideStatus.draft:
        for pattern_id, digest in repo.link_hashes(conn, ident).items():
            repo.record_rejection(
                conn,
                pattern_id,
                digest or entry.evidence_hash,
                kind="rejected",
                now=now,
                ident=ident,
                reason=reason,
                by=by,
            )
        values = {"status": GuideStatus.rejected.value, "rejection_reason": reason}
        return repo.save_change(
            conn,
            entry,
            values,
            action=RevisionAction.rejected,
            author=_person(by),
            now=now,
            reason=reason,
            evidence_hash=entry.evidence_hash,
        )
    if entry.status is GuideStatus.approved and entry.proposal is not None:
        p = entry.proposal
        repo.record_rejection(
            conn, p.pattern_id, p.evidence_hash, kind="rejected", now=now, ident=ident, reason=reason, by=by
        )
        return repo.save_change(
            conn,
            entry,
            {"proposal": None},
            action=RevisionAction.proposal_rejected,
            author=_person(by),
            now=now,
            reason=reason,
            evidence_hash=p.evidence_hash,
        )
    raise InvalidTransition(
        f"{ident} is {entry.status.value}; only drafts and drafted revisions can be rejected "
        "(an approved entry is superseded or merged instead)"
    )


def edit(conn: Connection, ident: str, changes: EntryEdit, *, by: str, now: dt.datetime) -> GuideEntry:
    """Change a draft's or an approved entry's content.

    When an approved entry has a drafted revision under review, the edit applies to that revision (it is what
    the reviewer is looking at); reject the revision first to edit the approved text itself.
    """
    entry = repo.require_entry(conn, ident)
    if entry.status not in LIVE_STATUSES:
        raise InvalidTransition(f"{ident} is {entry.status.value}; only drafts and approved entries can be edited")
    if changes.empty:
        return entry
    if entry.proposal is not None:
        proposal = entry.proposal.model_copy(update={"content": changes.apply(entry.proposal.content)})
        values: dict[str, Any] = {"proposal": proposal.model_dump(mode="json")}
    else:
        values = repo.content_values(changes.apply(entry.content()))
    return repo.save_change(conn, entry, values, action=RevisionAction.edited, author=_person(by), now=now)


def _union(a: list[str], b: list[str], limit: int = MAX_ITEMS) -> list[str]:
    seen = {x.strip().lower() for x in a}
    out = list(a)
    for x in b:
        if x.strip().lower() not in seen and len(out) < limit:
            out.append(x)
            seen.add(x.strip().lower())
    return out


def _retire(
    conn: Connection, old: GuideEntry, new: GuideEntry, *, how: str, by: str, now: dt.datetime
) -> tuple[GuideEntry, GuideEntry]:
    """Move `old`'s patterns to `new` and mark `old` superseded by it."""
    if old.id == new.id:
        raise InvalidTransition("an entry cannot replace itself")
    for e in (old, new):
        if e.status not in LIVE_STATUSES:
            raise InvalidTransition(f"{e.id} is {e.status.value}; only drafts and approved entries can be {how}d")
    hashes = repo.link_hashes(conn, old.id)
    for pattern_id in old.pattern_ids:
        repo.link(conn, new.id, pattern_id, how=how, now=now, evidence_hash=hashes.get(pattern_id, ""))
    retired = repo.save_change(
        conn,
        old,
        {"status": GuideStatus.superseded.value, "superseded_by": new.id, "proposal": None},
        action=RevisionAction.superseded,
        author=_person(by),
        now=now,
        reason=f"{how}d into {new.id}",
    )
    return retired, repo.require_entry(conn, new.id)


def merge(conn: Connection, source: str, target: str, *, by: str, now: dt.datetime) -> tuple[GuideEntry, GuideEntry]:
    """Fold `source` into `target`: patterns, symptoms, steps, tips, commands and evidence; `source` is superseded.

    Returns (source, target) after the change.
    """
    src, dst = repo.require_entry(conn, source), repo.require_entry(conn, target)
    retired, dst = _retire(conn, src, dst, how="merge", by=by, now=now)
    content = dst.content().model_copy(
        update={
            "symptoms": _union(dst.symptoms, src.symptoms),
            "solution_steps": _union(dst.solution_steps, src.solution_steps),
            "prevention_tips": _union(dst.prevention_tips, src.prevention_tips),
            "commands": _union(dst.commands, src.commands),
        }
    )
    values = {**repo.content_values(content), "evidence": list(dict.fromkeys(dst.evidence + src.evidence))}
    merged = repo.save_change(
        conn, dst, values, action=RevisionAction.merged, author=_person(by), now=now, reason=f"merged {src.id}"
    )
    return retired, merged


def supersede(conn: Connection, old: str, new: str, *, by: str, now: dt.datetime) -> tuple[GuideEntry, GuideEntry]:
    """Replace `old` by `new` (its patterns move to `new`, its text does not). Returns (old, new) after."""
    retired, replacement = _retire(
        conn, repo.require_entry(conn, old), repo.require_entry(conn, new), how="supersede", by=by, now=now
    )
    return retired, replacement
