"""Queries over the guide tables. Functions take a Connection (the caller owns the transaction)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, select, update

from agent.guide.models import (
    LIVE_STATUSES,
    AuthorKind,
    Authorship,
    EntryContent,
    EntryProposal,
    GuideEntry,
    GuideRevision,
    GuideStatus,
    RevisionAction,
    entry_id,
)
from agent.guide.tables import (
    GuideEntryRow,
    GuideLinkRow,
    GuideRejectionRow,
    GuideRevisionRow,
)
from agent.store.tables import PatternRow, table_of
from agent.store.tallies import seen_since

ENTRIES = table_of(GuideEntryRow)
LINKS = table_of(GuideLinkRow)
REVISIONS = table_of(GuideRevisionRow)
REJECTIONS = table_of(GuideRejectionRow)
PATTERNS = table_of(PatternRow)
_LIVE = [s.value for s in LIVE_STATUSES]


class EntryNotFound(LookupError):
    pass


class ConcurrentChange(RuntimeError):
    """The entry changed between reading and writing it (someone else reviewed it at the same time)."""


# -- entries -----------------------------------------------------------------------------------------------


def _entry(row: Any, pattern_ids: list[str]) -> GuideEntry:
    author = Authorship(
        kind=AuthorKind(row.author_kind),
        name=row.author,
        prompt_name=row.prompt_name,
        prompt_version=row.prompt_version,
        prompt_sha256=row.prompt_sha256,
    )
    return GuideEntry(
        id=row.id,
        number=row.number,
        status=GuideStatus(row.status),
        title=row.title,
        description=row.description,
        error_type=row.error_type,
        template=row.template,
        symptoms=list(row.symptoms or []),
        root_cause=row.root_cause,
        solution_steps=list(row.solution_steps or []),
        prevention_tips=list(row.prevention_tips or []),
        commands=list(row.commands or []),
        pattern_ids=pattern_ids,
        author=author,
        evidence=list(row.evidence or []),
        evidence_hash=row.evidence_hash,
        proposal=EntryProposal.model_validate(row.proposal) if row.proposal else None,
        rejection_reason=row.rejection_reason,
        superseded_by=row.superseded_by,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        approved_at=row.approved_at,
        approved_by=row.approved_by,
    )


def links_of(conn: Connection, entry_ids: Sequence[str]) -> dict[str, list[str]]:
    """Pattern ids linked to each entry, in the order they were linked."""
    out: dict[str, list[str]] = {e: [] for e in entry_ids}
    if not entry_ids:
        return out
    rows = conn.execute(
        select(LINKS.c.entry_id, LINKS.c.pattern_id)
        .where(LINKS.c.entry_id.in_(list(entry_ids)))
        .order_by(LINKS.c.linked_at, LINKS.c.pattern_id)
    )
    for r in rows:
        out[r.entry_id].append(r.pattern_id)
    return out


def get_entry(conn: Connection, ident: str) -> GuideEntry | None:
    row = conn.execute(select(ENTRIES).where(ENTRIES.c.id == ident)).first()
    if row is None:
        return None
    return _entry(row, links_of(conn, [ident])[ident])


def require_entry(conn: Connection, ident: str) -> GuideEntry:
    entry = get_entry(conn, ident)
    if entry is None:
        raise EntryNotFound(ident)
    return entry


def list_entries(
    conn: Connection, *, status: GuideStatus | Iterable[GuideStatus] | None = None, limit: int | None = None
) -> list[GuideEntry]:
    """Entries ordered by number."""
    stmt = select(ENTRIES).order_by(ENTRIES.c.number)
    if isinstance(status, GuideStatus):
        stmt = stmt.where(ENTRIES.c.status == status.value)
    elif status is not None:
        stmt = stmt.where(ENTRIES.c.status.in_([s.value for s in status]))
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = conn.execute(stmt).all()
    links = links_of(conn, [r.id for r in rows])
    return [_entry(r, links[r.id]) for r in rows]


def insert_entry(
    conn: Connection,
    *,
    number: int,
    content: EntryContent,
    status: GuideStatus,
    author: Authorship,
    now: dt.datetime,
    action: RevisionAction,
    evidence: Sequence[str] = (),
    evidence_hash: str = "",
    approved_by: str | None = None,
) -> str:
    """Insert an entry and its first revision. Returns its id."""
    ident = entry_id(number)
    conn.execute(
        insert(ENTRIES).values(
            id=ident,
            number=number,
            status=status.value,
            **content_values(content),
            author_kind=author.kind.value,
            author=author.name[:200],
            prompt_name=author.prompt_name,
            prompt_version=author.prompt_version,
            prompt_sha256=author.prompt_sha256,
            evidence=list(evidence),
            evidence_hash=evidence_hash,
            proposal=None,
            revision=1,
            created_at=now,
            updated_at=now,
            approved_at=now if status is GuideStatus.approved else None,
            approved_by=approved_by if status is GuideStatus.approved else None,
        )
    )
    append_revision(conn, ident, 1, action, status, content, author.label, None, evidence_hash, now)
    return ident


def save_change(
    conn: Connection,
    entry: GuideEntry,
    values: dict[str, Any],
    *,
    action: RevisionAction,
    author: str,
    now: dt.datetime,
    reason: str | None = None,
    evidence_hash: str = "",
) -> GuideEntry:
    """Apply `values` to the entry read as `entry` and append a revision; the entry must not have changed since.

    Raises:
        ConcurrentChange: someone else changed the entry since it was read.
    """
    result = conn.execute(
        update(ENTRIES)
        .where(ENTRIES.c.id == entry.id, ENTRIES.c.revision == entry.revision)
        .values(**values, revision=entry.revision + 1, updated_at=now)
    )
    if result.rowcount != 1:
        raise ConcurrentChange(f"{entry.id} changed while it was being reviewed; reload it and try again")
    changed = require_entry(conn, entry.id)
    append_revision(
        conn, entry.id, changed.revision, action, changed.status, changed.content(), author, reason, evidence_hash, now
    )
    return changed


def content_values(content: EntryContent) -> dict[str, Any]:
    """Column values (for `insert_entry` and `save_change`) that hold an entry's content."""
    return content.model_dump(mode="json")


def append_revision(
    conn: Connection,
    ident: str,
    revision: int,
    action: RevisionAction,
    status: GuideStatus,
    content: EntryContent,
    author: str,
    reason: str | None,
    evidence_hash: str,
    now: dt.datetime,
) -> None:
    conn.execute(
        insert(REVISIONS).values(
            entry_id=ident,
            revision=revision,
            action=action.value,
            status=status.value,
            content=content.model_dump(mode="json"),
            author=author[:300],
            reason=reason,
            evidence_hash=evidence_hash,
            created_at=now,
        )
    )


def revisions(conn: Connection, ident: str) -> list[GuideRevision]:
    rows = conn.execute(select(REVISIONS).where(REVISIONS.c.entry_id == ident).order_by(REVISIONS.c.revision))
    return [
        GuideRevision(
            entry_id=r.entry_id,
            revision=r.revision,
            action=RevisionAction(r.action),
            status=GuideStatus(r.status),
            content=EntryContent.model_validate(r.content),
            author=r.author,
            reason=r.reason,
            evidence_hash=r.evidence_hash,
            created_at=r.created_at,
        )
        for r in rows
    ]


# -- links -----------------------------------------------------------------------------------------------


def link(
    conn: Connection,
    ident: str,
    pattern_id: str,
    *,
    how: str,
    now: dt.datetime,
    score: float | None = None,
    evidence_hash: str = "",
) -> bool:
    """Link a pattern to an entry. False when it already was."""
    present = conn.execute(
        select(LINKS.c.entry_id).where(LINKS.c.entry_id == ident, LINKS.c.pattern_id == pattern_id)
    ).first()
    if present is not None:
        return False
    conn.execute(
        insert(LINKS).values(
            entry_id=ident, pattern_id=pattern_id, how=how, score=score, evidence_hash=evidence_hash, linked_at=now
        )
    )
    return True


def live_entry_for_pattern(conn: Connection, pattern_id: str) -> GuideEntry | None:
    """The draft or approved entry that covers a pattern (the approved one first), if any."""
    rows = conn.execute(
        select(ENTRIES.c.id, ENTRIES.c.status)
        .join(LINKS, LINKS.c.entry_id == ENTRIES.c.id)
        .where(LINKS.c.pattern_id == pattern_id, ENTRIES.c.status.in_(_LIVE))
        .order_by(ENTRIES.c.number)
    ).all()
    if not rows:
        return None
    best = next((r for r in rows if r.status == GuideStatus.approved.value), rows[0])
    return get_entry(conn, best.id)


def exact_match(conn: Connection, error_type: str, template: str) -> GuideEntry | None:
    """A live entry drafted for, or linked to a pattern with, exactly this error type and template."""
    by_entry = select(ENTRIES.c.id, ENTRIES.c.number).where(
        ENTRIES.c.status.in_(_LIVE), ENTRIES.c.error_type == error_type, ENTRIES.c.template == template
    )
    by_link = (
        select(ENTRIES.c.id, ENTRIES.c.number)
        .join(LINKS, LINKS.c.entry_id == ENTRIES.c.id)
        .join(PATTERNS, PATTERNS.c.id == LINKS.c.pattern_id)
        .where(ENTRIES.c.status.in_(_LIVE), PATTERNS.c.error_type == error_type, PATTERNS.c.template == template)
    )
    row = conn.execute(by_entry.union(by_link).order_by("number").limit(1)).first()
    return get_entry(conn, row.id) if row else None


def uncovered_patterns(conn: Connection, since: dt.datetime | None) -> list[str]:
    """Patterns seen after `since` that no draft or approved entry covers, busiest first."""
    covered = exists(
        select(LINKS.c.entry_id)
        .join(ENTRIES, ENTRIES.c.id == LINKS.c.entry_id)
        .where(and_(LINKS.c.pattern_id == PATTERNS.c.id, ENTRIES.c.status.in_(_LIVE)))
    )
    stmt = select(PATTERNS.c.id).where(~covered)
    if since is not None:
        stmt = stmt.where(seen_since(conn, since, strict=True))
    return [r.id for r in conn.execute(stmt.order_by(PATTERNS.c.count.desc(), PATTERNS.c.id))]


# -- rejections ----------------------------------------------------------------------------------------


def record_rejection(
    conn: Connection,
    pattern_id: str,
    evidence_hash: str,
    *,
    kind: str,
    now: dt.datetime,
    ident: str | None = None,
    reason: str | None = None,
    by: str | None = None,
) -> None:
    conn.execute(
        insert(REJECTIONS).values(
            pattern_id=pattern_id,
            evidence_hash=evidence_hash,
            kind=kind,
            entry_id=ident,
            reason=reason,
            by=by,
            created_at=now,
        )
    )


def was_rejected(conn: Connection, pattern_id: str, evidence_hash: str) -> bool:
    row = conn.execute(
        select(REJECTIONS.c.id)
        .where(REJECTIONS.c.pattern_id == pattern_id, REJECTIONS.c.evidence_hash == evidence_hash)
        .limit(1)
    ).first()
    return row is not None


def link_hashes(conn: Connection, ident: str) -> dict[str, str]:
    """pattern id -> the evidence hash recorded when it was linked to the entry."""
    rows = conn.execute(select(LINKS.c.pattern_id, LINKS.c.evidence_hash).where(LINKS.c.entry_id == ident))
    return {r.pattern_id: r.evidence_hash for r in rows}
