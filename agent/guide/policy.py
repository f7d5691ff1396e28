"""What a learning run does with one pattern: link it to an entry that already covers it, or draft one.

In order: a pattern already covered by a draft or approved entry is left alone; evidence that was rejected
before (or gave no valid citation) is not drafted from again; a live entry with the same error type and
template gets the pattern linked; an approved entry found in the knowledge collection above the similarity
threshold gets it linked and a revision drafted for review; anything else gets a new draft with a new id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from agent.diagnose import Diagnoser
from agent.domain import Diagnosis, Pattern
from agent.guide import allocator, repo
from agent.guide.drafting import draft_guide_entry, guide_prompts, symptom_line
from agent.guide.known import draft_problem, from_known_cause
from agent.guide.models import (
    EntryContent,
    EntryProposal,
    GuideEntry,
    GuideStatus,
    PatternOutcome,
    RevisionAction,
    entry_number,
)
from agent.llm.context import EvidenceContext, evidence_hash
from agent.retrieval.service import pattern_text
from agent.store import repo as store_repo

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
MAX_SYMPTOMS = 20


@dataclass(frozen=True)
class Learned:
    outcome: PatternOutcome
    entry_id: str | None = None
    model_calls: int = 0


class Drafter:
    """Applies the learning policy to one pattern at a time."""

    def __init__(self, diagnoser: Diagnoser, *, clock: Clock, match_similarity: float) -> None:
        self.diagnoser = diagnoser
        self.runtime = diagnoser.runtime
        self.clock = clock
        self.match_similarity = match_similarity

    @property
    def engine(self) -> Engine:
        return self.runtime.core.engine

    def prepare(self) -> None:
        """Embed patterns that are not indexed yet, so that evidence and matches see all of them."""
        retrieval = self.runtime.retrieval()
        for _ in range(100):  # bounded: at most 25,600 patterns per run
            if retrieval.index_pending() == 0:
                break

    def learn(self, pattern_id: str) -> Learned:
        with self.engine.connect() as conn:
            covered = repo.live_entry_for_pattern(conn, pattern_id)
        if covered is not None:
            return Learned(PatternOutcome.covered, covered.id)
        pattern, ctx = self.diagnoser.gather(pattern_id)
        digest = evidence_hash(pattern, ctx)
        with self.engine.connect() as conn:
            if repo.was_rejected(conn, pattern_id, digest):
                return Learned(PatternOutcome.rejected_before)
            exact = repo.exact_match(conn, pattern.error_type, pattern.template)
        if exact is not None:
            with self.engine.begin() as conn:
                repo.link(conn, exact.id, pattern_id, how="exact", now=self.clock(), evidence_hash=digest)
            return Learned(PatternOutcome.linked, exact.id)
        similar = self.similar_entry(pattern)
        if similar is not None:
            return self._link_similar(pattern, ctx, digest, *similar)
        return self._draft(pattern, ctx, digest)

    def similar_entry(self, pattern: Pattern) -> tuple[GuideEntry, float] | None:
        """The approved entry most similar to the pattern in the knowledge collection, above the threshold."""
        retrieval = self.runtime.retrieval()
        with self.engine.connect() as conn:
            sample = store_repo.get_event(conn, pattern.sample_event_id) if pattern.sample_event_id else None
        hits = retrieval.store.query("knowledge", pattern_text(pattern, sample.stack_trace if sample else None), k=5)
        for hit in hits:
            if hit.score < self.match_similarity or entry_number(hit.id) is None:
                continue
            with self.engine.connect() as conn:
                entry = repo.get_entry(conn, hit.id)
            if entry is not None and entry.status is GuideStatus.approved:
                return entry, hit.score
        return None

    def _link_similar(
        self, pattern: Pattern, ctx: EvidenceContext, digest: str, entry: GuideEntry, score: float
    ) -> Learned:
        now = self.clock()
        with self.engine.begin() as conn:
            repo.link(conn, entry.id, pattern.id, how="similar", now=now, score=round(score, 4), evidence_hash=digest)
        if entry.proposal is not None:  # one revision under review at a time
            return Learned(PatternOutcome.linked, entry.id)
        result = draft_guide_entry(
            pattern, ctx, self.diagnoser.deps(), diagnosis=self.diagnoser.current(pattern.id), existing=entry.content()
        )
        if not result.valid:
            return Learned(PatternOutcome.linked, entry.id, model_calls=1)
        content = _revised(entry, result.content)
        proposal = EntryProposal(
            content=content,
            author=result.author,
            pattern_id=pattern.id,
            evidence=result.evidence,
            evidence_hash=digest,
            created_at=now,
        )
        with self.engine.begin() as conn:
            current = repo.require_entry(conn, entry.id)
            if current.proposal is not None or current.status is not GuideStatus.approved:
                return Learned(PatternOutcome.linked, entry.id, model_calls=1)
            repo.save_change(
                conn,
                current,
                {"proposal": proposal.model_dump(mode="json")},
                action=RevisionAction.proposed,
                author=result.author.label,
                now=now,
                reason=f"drafted from pattern {pattern.id} (similarity {score:.2f})",
                evidence_hash=digest,
            )
        return Learned(PatternOutcome.proposed, entry.id, model_calls=1)

    def _known_title(self, diagnosis: Diagnosis | None) -> str | None:
        if diagnosis is None or not diagnosis.evidence:
            return None
        entry = self.diagnoser.runtime.retrieval().knowledge_entry(diagnosis.evidence[0])
        return str(entry["title"]) if entry else None

    def _draft(self, pattern: Pattern, ctx: EvidenceContext, digest: str) -> Learned:
        diagnosis = self.diagnoser.current(pattern.id)
        result = from_known_cause(pattern, ctx, diagnosis, self._known_title(diagnosis))
        calls = 0 if result is not None else 1
        if result is None:
            deps = self.diagnoser.deps()
            result = draft_guide_entry(pattern, ctx, deps, diagnosis=diagnosis)
            system, user = guide_prompts(pattern, ctx, deps, diagnosis=diagnosis)
            quoted = [ctx.render(), symptom_line(pattern.error_type, pattern.template), pattern.service]
            if diagnosis is not None:
                quoted += [diagnosis.summary, diagnosis.root_cause, *diagnosis.solution_steps]
            problem = draft_problem(result, [system.text, user.text], quoted)
            if problem is not None:
                with self.engine.begin() as conn:
                    repo.record_rejection(
                        conn,
                        pattern.id,
                        digest,
                        kind="quality",
                        now=self.clock(),
                        reason=problem,
                        by=result.author.label,
                    )
                return Learned(PatternOutcome.no_evidence, model_calls=1)
        now = self.clock()
        if not result.valid:
            with self.engine.begin() as conn:
                repo.record_rejection(
                    conn,
                    pattern.id,
                    digest,
                    kind="no_evidence",
                    now=now,
                    reason=f"no valid citation (removed: {', '.join(result.removed_citations)[:500] or 'none'})",
                    by=result.author.label,
                )
            return Learned(PatternOutcome.no_evidence, model_calls=calls)
        with self.engine.begin() as conn:
            covered = repo.live_entry_for_pattern(conn, pattern.id)
            if covered is not None:  # someone linked it while the model was writing
                return Learned(PatternOutcome.covered, covered.id, model_calls=calls)
            ident = repo.insert_entry(
                conn,
                number=allocator.allocate_number(conn),
                content=result.content,
                status=GuideStatus.draft,
                author=result.author,
                now=now,
                action=RevisionAction.drafted,
                evidence=result.evidence,
                evidence_hash=digest,
            )
            repo.link(conn, ident, pattern.id, how="drafted", now=now, evidence_hash=digest)
        log.info("drafted %s for pattern %s", ident, pattern.id)
        return Learned(PatternOutcome.drafted, ident, model_calls=calls)


def _revised(entry: GuideEntry, drafted: EntryContent) -> EntryContent:
    """The drafted revision, keeping the entry's identity (error type, template) and adding the new symptom."""
    symptoms = list(entry.symptoms)
    for s in drafted.symptoms:
        if s not in symptoms and len(symptoms) < MAX_SYMPTOMS:
            symptoms.append(s)
    return drafted.model_copy(update={"error_type": entry.error_type, "template": entry.template, "symptoms": symptoms})
