"""The guide's use cases, shared by the API, the CLI and the worker: review, render, import, learn, measure.

A review action commits first; then the approved entries are (re)indexed into the knowledge collection and
the guide file is rendered. Those two follow-ups never undo a review: when one fails, the outcome says so
and `errlearn guide render` (or the next review) catches up.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete

from agent.diagnose import Diagnoser
from agent.guide import allocator, repo, review
from agent.guide.importing import content_from_markdown
from agent.guide.learning import LearningLoop
from agent.guide.metrics import prevention_metrics
from agent.guide.models import (
    AuthorKind,
    Authorship,
    GuideEntry,
    GuideRevision,
    GuideStatus,
    RevisionAction,
    entry_id,
    entry_number,
)
from agent.guide.policy import Drafter
from agent.guide.render import GuideFileNotManaged, render_entry, render_to_file
from agent.guide.review import EntryEdit
from agent.llm.context import event_text
from agent.retrieval.knowledge import KnowledgeEntry, load_path, parse_markdown
from agent.store import repo as store_repo
from agent.store.tables import KnowledgeRow, table_of

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
KNOWLEDGE = table_of(KnowledgeRow)


@dataclass
class ReviewOutcome:
    """The entries a review action changed, and how the follow-ups (index, render) went."""

    entries: list[GuideEntry]
    rendered: bool = False
    """The guide file changed."""
    warnings: list[str] = field(default_factory=list)

    @property
    def entry(self) -> GuideEntry:
        return self.entries[-1]


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    """Ids already in the database: left as they are."""
    skipped: list[str] = field(default_factory=list)
    """Entries in the files that are not `ERROR-XXX` entries."""
    rendered: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class EntryDetail:
    entry: GuideEntry
    evidence: list[dict[str, Any]]
    """Each cited id with its kind and text, as the reviewer needs to see it."""
    patterns: list[dict[str, Any]]
    revisions: list[GuideRevision]
    metrics: dict[str, Any] | None


class Guide:
    def __init__(
        self,
        diagnoser: Diagnoser,
        *,
        guide_path: Path | None = None,
        clock: Clock | None = None,
        match_similarity: float = 0.8,
        max_model_calls_per_run: int = 20,
        stale_after: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        """Wire the guide.

        Args:
            diagnoser: gathers evidence and builds agent deps (its runtime gives the engine and retrieval).
            guide_path: the rendered Markdown file; default the settings' `guide_path`.
            clock: default the runtime's clock.
            match_similarity: a pattern this similar (cosine) to an approved entry is linked to it instead of
                getting an entry of its own.
            max_model_calls_per_run: bounds one learning run.
            stale_after: when a `running` learning run is taken for dead.
        """
        self.diagnoser = diagnoser
        self.runtime = diagnoser.runtime
        self.clock: Clock = clock or self.runtime.clock
        self.guide_path = Path(guide_path or self.runtime.settings.guide_path)
        self.drafter = Drafter(diagnoser, clock=self.clock, match_similarity=match_similarity)
        self.learning = LearningLoop(
            self.engine,
            self.drafter,
            clock=self.clock,
            interval=dt.timedelta(minutes=self.runtime.settings.learning_interval_minutes),
            stale_after=stale_after,
            max_model_calls=max_model_calls_per_run,
            lease=dt.timedelta(seconds=self.runtime.settings.learning_lease_s),
        )

    @property
    def engine(self) -> Engine:
        return self.runtime.core.engine

    # -- reads -------------------------------------------------------------------------------------------
    def entries(self, status: GuideStatus | None = None, limit: int | None = None) -> list[GuideEntry]:
        with self.engine.connect() as conn:
            return repo.list_entries(conn, status=status, limit=limit)

    def entry(self, ident: str) -> GuideEntry | None:
        with self.engine.connect() as conn:
            return repo.get_entry(conn, ident.strip().upper())

    def metrics(self, entry_ids: list[str] | None = None) -> list[dict[str, Any]]:
        return prevention_metrics(self.engine, self.clock(), entry_ids)

    def detail(self, ident: str) -> EntryDetail | None:
        """An entry next to its evidence, linked patterns, history and (when approved) prevention metric."""
        ident = ident.strip().upper()
        with self.engine.connect() as conn:
            entry = repo.get_entry(conn, ident)
            if entry is None:
                return None
            cited = list(dict.fromkeys(entry.evidence + (entry.proposal.evidence if entry.proposal else [])))
            evidence = self._evidence(conn, cited)
            patterns = [
                {
                    "id": p.id,
                    "service": p.service,
                    "error_type": p.error_type,
                    "template": p.template,
                    "count": p.count,
                    "first_seen": p.first_seen,
                    "last_seen": p.last_seen,
                }
                for p in store_repo.get_patterns(conn, entry.pattern_ids)
            ]
            history = repo.revisions(conn, ident)
        metric = self.metrics([ident]) if entry.status is GuideStatus.approved else []
        return EntryDetail(entry, evidence, patterns, history, metric[0] if metric else None)

    def _evidence(self, conn: Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
        events = {e.id: e for e in store_repo.get_events(conn, [i for i in ids if i.startswith("ev_")])}
        patterns = {p.id: p for p in store_repo.get_patterns(conn, [i for i in ids if i.startswith("pat_")])}
        others = [i for i in ids if i not in events and i not in patterns]
        knowledge = {r.id: r for r in conn.execute(KNOWLEDGE.select().where(KNOWLEDGE.c.id.in_(others)))}
        out: list[dict[str, Any]] = []
        for i in ids:
            if i in events:
                out.append({"id": i, "kind": "event", "text": event_text(events[i])})
            elif i in patterns:
                p = patterns[i]
                out.append(
                    {
                        "id": i,
                        "kind": "pattern",
                        "text": f"{p.service}: {p.error_type}: {p.template} ({p.count} events)",
                    }
                )
            elif i in knowledge:
                k = knowledge[i]
                out.append(
                    {
                        "id": i,
                        "kind": "guide" if entry_number(i) else "knowledge",
                        "text": f"{k.title}\n{k.text[:2000]}",
                    }
                )
            else:
                out.append({"id": i, "kind": "missing", "text": None})
        return out

    # -- review ----------------------------------------------------------------------------------------
    def approve(self, ident: str, *, by: str, changes: EntryEdit | None = None) -> ReviewOutcome:
        """Approve a draft or a drafted revision, after applying `changes` when given (edit then approve)."""
        ident = ident.strip().upper()
        now = self.clock()
        with self.engine.begin() as conn:
            if changes is not None and not changes.empty:
                review.edit(conn, ident, changes, by=by, now=now)
            entry = review.approve(conn, ident, by=by, now=now)
        return self._published([entry])

    def reject(self, ident: str, *, by: str, reason: str) -> ReviewOutcome:
        with self.engine.begin() as conn:
            entry = review.reject(conn, ident.strip().upper(), by=by, reason=reason, now=self.clock())
        return ReviewOutcome([entry])

    def edit(self, ident: str, changes: EntryEdit, *, by: str, approve: bool = False) -> ReviewOutcome:
        if approve:
            return self.approve(ident, by=by, changes=changes)
        with self.engine.begin() as conn:
            entry = review.edit(conn, ident.strip().upper(), changes, by=by, now=self.clock())
        if entry.status is GuideStatus.approved and entry.proposal is None:
            return self._published([entry])
        return ReviewOutcome([entry])

    def merge(self, source: str, into: str, *, by: str) -> ReviewOutcome:
        with self.engine.begin() as conn:
            old, new = review.merge(conn, source.strip().upper(), into.strip().upper(), by=by, now=self.clock())
        return self._published([old, new])

    def supersede(self, old: str, by_entry: str, *, by: str) -> ReviewOutcome:
        with self.engine.begin() as conn:
            retired, new = review.supersede(
                conn, old.strip().upper(), by_entry.strip().upper(), by=by, now=self.clock()
            )
        return self._published([retired, new])

    def _published(self, changed: list[GuideEntry]) -> ReviewOutcome:
        """Bring the knowledge collection and the guide file in line with the changed entries."""
        outcome = ReviewOutcome(changed)
        try:
            self.index([e for e in changed if e.status is GuideStatus.approved])
            self.unindex([e.id for e in changed if e.status is not GuideStatus.approved])
        except Exception as exc:  # the review is committed; indexing catches up on the next change
            log.exception("indexing guide entries failed")
            outcome.warnings.append(f"indexing failed: {type(exc).__name__}: {exc}")
        try:
            outcome.rendered = self.render()
        except (GuideFileNotManaged, OSError) as exc:
            outcome.warnings.append(f"the guide was not rendered: {exc}")
        return outcome

    # -- knowledge index -----------------------------------------------------------------------------
    def knowledge_entry(self, entry: GuideEntry) -> KnowledgeEntry:
        """The entry as the knowledge base sees it (id `ERROR-XXX`, kind `guide`), parsed from its Markdown."""
        parsed = parse_markdown(render_entry(entry), source=self.guide_path.as_posix())
        return parsed[0]

    def index(self, entries: Sequence[GuideEntry]) -> int:
        """Index approved entries into the knowledge collection (unchanged ones are skipped by hash)."""
        approved = [e for e in entries if e.status is GuideStatus.approved]
        if not approved:
            return 0
        new, updated = self.runtime.retrieval().import_knowledge(
            [self.knowledge_entry(e) for e in approved], self.clock()
        )
        return new + updated

    def unindex(self, ids: Sequence[str]) -> None:
        """Remove entries that are no longer approved from the knowledge collection (and its table)."""
        if not ids:
            return
        with self.engine.begin() as conn:
            gone = conn.execute(delete(KNOWLEDGE).where(KNOWLEDGE.c.id.in_(list(ids)))).rowcount
        if gone:
            self.runtime.retrieval().store.delete("knowledge", list(ids))

    def reindex(self) -> int:
        return self.index(self.entries(GuideStatus.approved))

    # -- rendering and import -------------------------------------------------------------------------
    def render(self, *, path: Path | None = None, force: bool = False) -> bool:
        """Render the approved entries into the guide file. True when the file changed."""
        return render_to_file(self.entries(GuideStatus.approved), path or self.guide_path, force=force)

    def import_markdown(self, path: Path, *, by: str) -> ImportReport:
        """Import `ERROR-XXX` entries written by people as approved entries, keeping their ids.

        Ids already in the database are left alone (importing the rendered guide again is a no-op). The
        allocator moves past every imported number, so drafted entries never take an imported id.
        """
        report = ImportReport()
        entries = [e for e in load_path(path) if e.kind == "guide"]
        now = self.clock()
        author = Authorship(kind=AuthorKind.person, name=by)
        imported: list[GuideEntry] = []
        with self.engine.begin() as conn:
            for ke in entries:
                number = entry_number(ke.id)
                if number is None:
                    report.skipped.append(ke.id)
                    continue
                ident = entry_id(number)
                allocator.bump_allocator(conn, number)
                if repo.get_entry(conn, ident) is not None:
                    report.existing.append(ident)
                    continue
                repo.insert_entry(
                    conn,
                    number=number,
                    content=content_from_markdown(ke),
                    status=GuideStatus.approved,
                    author=author,
                    now=now,
                    action=RevisionAction.imported,
                    approved_by=by,
                )
                imported.append(repo.require_entry(conn, ident))
                report.imported.append(ident)
        if imported:
            outcome = self._published(imported)
            report.rendered, report.warnings = outcome.rendered, outcome.warnings
        return report
