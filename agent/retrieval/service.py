"""Retrieval use cases: index patterns and knowledge in the vector store, find similar ones.

The database is the source of truth; the vector store is derived from it and can always be
rebuilt (`errlearn reindex`). Indexing runs in the worker, never on the ingest path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, select, update

from agent.domain import Pattern
from agent.ingest.stacktrace import in_app_frames
from agent.retrieval.hybrid import CANDIDATES, Lists, Why, fuse
from agent.retrieval.knowledge import KnowledgeEntry
from agent.retrieval.lexical_store import SyncedIndex, clear_docs, write_docs
from agent.retrieval.terms import LexicalDoc, frames_in_text, lexical_doc, weighted_frames
from agent.retrieval.text import error_embedding_text
from agent.store import repo
from agent.store.tables import EventRow, KnowledgeRow, PatternRow, table_of
from agent.store.tallies import seen_since

if TYPE_CHECKING:  # chromadb is heavy: import it where it is used, not at API start
    from agent.store.vectors import Hit, VectorStore

log = logging.getLogger(__name__)
PATTERNS = table_of(PatternRow)
EVENTS = table_of(EventRow)
KNOWLEDGE = table_of(KnowledgeRow)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SearchFilters:
    service: str | None = None
    severity: str | None = None
    since: dt.datetime | None = None
    resolved: bool | None = None

    def where(self) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.service:
            clauses.append({"service": self.service})
        if self.severity:
            clauses.append({"severity": self.severity})
        if self.resolved is not None:
            clauses.append({"resolved": self.resolved})
        if self.since is not None:
            clauses.append({"last_seen": {"$gte": int(self.since.timestamp())}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass(frozen=True)
class Similar:
    kind: Literal["pattern", "knowledge"]
    id: str
    score: float
    title: str
    document: str
    metadata: dict[str, Any]
    why: Why | None = None
    """Why it matched (patterns; knowledge entries are ranked by vector only and leave it None)."""


def pattern_text(pattern: Pattern, stack_trace: str | None) -> str:
    return error_embedding_text(
        service=pattern.service,
        error_type=pattern.error_type,
        template=pattern.template,
        frames=in_app_frames(stack_trace),
    )


def query_text(*, service: str, error_type: str, message: str, stack_trace: str | None) -> str:
    """The text for an incoming event, built like a pattern's (its message masked like a template)."""
    from agent.ingest.template import first_line, mask

    return error_embedding_text(
        service=service, error_type=error_type, template=mask(first_line(message)), frames=in_app_frames(stack_trace)
    )


def pattern_doc(pattern: Pattern, stack_trace: str | None) -> LexicalDoc:
    frames, own = weighted_frames(stack_trace)
    return lexical_doc(error_type=pattern.error_type, template=pattern.template, frames=frames, own_frames=own)


def query_doc(text: str, stack_trace: str | None = None) -> LexicalDoc:
    """The lexical view of a query: an embedding text (`query_text`) or free text, plus the stack when known."""
    lines = text.splitlines() or [""]
    head, rest = lines[0], lines[1:]
    error_type, sep, template = head.partition(":")
    if not sep:
        error_type, template = "", head
    extra = [line for line in rest if not line.startswith(("at ", "service "))]
    if stack_trace:
        frames, own = weighted_frames(stack_trace)
    else:
        frames = frames_in_text(text)
        own = list(frames)
    return lexical_doc(error_type=error_type, template=template, frames=frames, own_frames=own, extra=" ".join(extra))


def _metadata(p: Pattern) -> dict[str, Any]:
    return {
        "kind": "pattern",
        "pattern_id": p.id,
        "service": p.service,
        "severity": p.max_severity.value,
        "error_type": p.error_type[:200],
        "first_seen": int(p.first_seen.timestamp()),
        "last_seen": int(p.last_seen.timestamp()),
        "resolved": p.resolved,
        "count": p.count,
    }


class Retrieval:
    def __init__(self, engine: Engine, store: VectorStore) -> None:
        self.engine = engine
        self.store = store
        self.lexical = SyncedIndex(engine, "patterns")
        """BM25 + trace similarity over the patterns, kept in step with the `lexical_docs` table."""

    # -- indexing ----------------------------------------------------------------------------
    def pending_patterns(self) -> int:
        with self.engine.connect() as conn:
            return repo.count_unindexed_patterns(conn)

    def index_pending(self, limit: int = 256) -> int:
        """Embed patterns that are new or whose template changed. Returns how many were written."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(PATTERNS.c.id, PATTERNS.c.content_version)
                .where(PATTERNS.c.indexed_version < PATTERNS.c.content_version)
                .order_by(PATTERNS.c.last_seen.desc())
                .limit(limit)
            ).all()
            if not rows:
                return 0
            versions = {r.id: r.content_version for r in rows}
            patterns = repo.get_patterns(conn, list(versions))
            samples = {p.sample_event_id for p in patterns if p.sample_event_id}
            stacks = {
                r.id: r.stack_trace
                for r in conn.execute(select(EVENTS.c.id, EVENTS.c.stack_trace).where(EVENTS.c.id.in_(samples)))
            }
        self._upsert_patterns(patterns, stacks)
        with self.engine.begin() as conn:
            write_docs(conn, "patterns", {p.id: pattern_doc(p, stacks.get(p.sample_event_id or "")) for p in patterns})
            for pid, version in versions.items():
                conn.execute(update(PATTERNS).where(PATTERNS.c.id == pid).values(indexed_version=version))
        self.lexical.refresh(force=True)
        return len(patterns)

    def _upsert_patterns(self, patterns: Sequence[Pattern], stacks: dict[str, str | None]) -> None:
        if not patterns:
            return
        self.store.upsert(
            "patterns",
            [p.id for p in patterns],
            [pattern_text(p, stacks.get(p.sample_event_id or "")) for p in patterns],
            [_metadata(p) for p in patterns],
        )

    def reindex(self, progress: Progress | None = None, batch: int = 512) -> tuple[int, int]:
        """Rebuild both collections from the database. Returns (patterns, knowledge entries)."""
        self.store.reset("patterns")
        self.store.reset("knowledge")
        with self.engine.begin() as conn:
            conn.execute(update(PATTERNS).values(indexed_version=0))
            clear_docs(conn, "patterns")
            conn.execute(update(KNOWLEDGE).values(indexed_sha256=None))
            total = repo.count_patterns(conn)
        done = 0
        while True:
            n = self.index_pending(batch)
            if n == 0:
                break
            done += n
            if progress:
                progress(done, total)
        return done, self.index_knowledge()

    # -- knowledge -------------------------------------------------------------------------------
    def import_knowledge(self, entries: Sequence[KnowledgeEntry], now: dt.datetime) -> tuple[int, int]:
        """Store entries (insert or update by id) and index the changed ones. Returns (new, updated)."""
        new = updated = 0
        with self.engine.begin() as conn:
            existing = {
                r.id: r.sha256
                for r in conn.execute(
                    select(KNOWLEDGE.c.id, KNOWLEDGE.c.sha256).where(KNOWLEDGE.c.id.in_([e.id for e in entries]))
                )
            }
            for e in entries:
                emb = e.embedding_text()
                sha = hashlib.sha256((e.title + "\0" + e.text + "\0" + emb).encode()).hexdigest()
                values = dict(
                    title=e.title,
                    kind=e.kind,
                    source=e.source,
                    alert_name=e.alert_name,
                    text=e.text,
                    embedding_text=emb,
                    sha256=sha,
                    imported_at=now,
                )
                if e.id not in existing:
                    conn.execute(KNOWLEDGE.insert().values(id=e.id, **values))
                    new += 1
                elif existing[e.id] != sha:
                    conn.execute(update(KNOWLEDGE).where(KNOWLEDGE.c.id == e.id).values(**values))
                    updated += 1
        self.index_knowledge()
        return new, updated

    def index_knowledge(self) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(KNOWLEDGE).where(
                    (KNOWLEDGE.c.indexed_sha256.is_(None)) | (KNOWLEDGE.c.indexed_sha256 != KNOWLEDGE.c.sha256)
                )
            ).all()
        for start in range(0, len(rows), 512):
            chunk = rows[start : start + 512]
            self.store.upsert(
                "knowledge",
                [r.id for r in chunk],
                [r.embedding_text for r in chunk],
                [
                    {"kind": r.kind, "title": r.title[:300], "source": r.source[:300], "alert_name": r.alert_name or ""}
                    for r in chunk
                ],
            )
            with self.engine.begin() as conn:
                for r in chunk:
                    conn.execute(update(KNOWLEDGE).where(KNOWLEDGE.c.id == r.id).values(indexed_sha256=r.sha256))
        return len(rows)

    def knowledge_entry(self, entry_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(KNOWLEDGE).where(KNOWLEDGE.c.id == entry_id)).first()
        return dict(row._mapping) if row else None

    # -- search ------------------------------------------------------------------------------------
    def _pattern_hits(
        self,
        text: str,
        k: int,
        filters: SearchFilters,
        exclude: Sequence[str] = (),
        stack_trace: str | None = None,
    ) -> list[Similar]:
        """Hybrid search (agent/retrieval/hybrid.py): vector, BM25 and trace similarity, fused by rank."""
        if k <= 0:
            return []
        where = filters.where()
        wanted = max(k, CANDIDATES)
        hits: list[Hit] = self.store.query("patterns", text, k=wanted, where=where, exclude_ids=exclude)
        index = self.lexical.refresh()
        doc = query_doc(text, stack_trace)
        lexical = index.bm25(doc.terms, wanted, exclude=exclude)
        by_id = {h.id: h for h in hits}
        if where is not None and any(d not in by_id for d, _ in lexical):
            allowed = self._matching([d for d, _ in lexical if d not in by_id], filters)
            lexical = [(d, s) for d, s in lexical if d in by_id or d in allowed]
        lists = Lists(vector=[(h.id, h.score) for h in hits], bm25=lexical)
        # Fused on ranks alone; only the winners that the vector list missed need their vector score.
        ranked = fuse(lists, index, terms=doc.terms, frames=doc.frames, own=doc.own, k=k + 5)
        missing = [r.id for r in ranked if r.id not in by_id]
        by_id |= {h.id: h for h in self.store.score_ids("patterns", text, missing)}
        out: list[Similar] = []
        for r in ranked:
            if (found := by_id.get(r.id)) is None:
                continue  # in the lexical table but not (yet, or no longer) in the vector store
            why = r.why if r.why.vector_score is not None else dataclasses.replace(r.why, vector_score=found.score)
            title = found.document.split("\n", 1)[0]
            out.append(Similar("pattern", found.id, found.score, title, found.document, found.metadata, why))
        return out[:k]

    def _matching(self, ids: Sequence[str], filters: SearchFilters) -> set[str]:
        """Those of `ids` whose pattern passes the filters (the vector store filters its own hits itself)."""
        query = select(PATTERNS.c.id).where(PATTERNS.c.id.in_(list(ids)))
        if filters.service:
            query = query.where(PATTERNS.c.service == filters.service)
        if filters.severity:
            query = query.where(PATTERNS.c.max_severity == filters.severity)
        if filters.resolved is not None:
            query = query.where(PATTERNS.c.resolved == filters.resolved)
        if filters.since is not None:
            query = query.where(seen_since(self.engine, filters.since))
        with self.engine.connect() as conn:
            return {r.id for r in conn.execute(query)}

    def _knowledge_hits(self, text: str, k: int) -> list[Similar]:
        hits = self.store.query("knowledge", text, k=k)
        return [
            Similar("knowledge", h.id, h.score, str(h.metadata.get("title", h.id)), h.document, h.metadata)
            for h in hits
        ]

    def similar_to_pattern(
        self, pattern: Pattern, *, k: int = 5, filters: SearchFilters | None = None, knowledge_k: int = 3
    ) -> list[Similar]:
        with self.engine.connect() as conn:
            sample = repo.get_event(conn, pattern.sample_event_id) if pattern.sample_event_id else None
        stack = sample.stack_trace if sample else None
        text = pattern_text(pattern, stack)
        out = self._pattern_hits(text, k, filters or SearchFilters(), exclude=[pattern.id], stack_trace=stack)
        return out + (self._knowledge_hits(text, knowledge_k) if knowledge_k else [])

    def search(
        self,
        text: str,
        *,
        k: int = 5,
        filters: SearchFilters | None = None,
        knowledge_k: int = 3,
        stack_trace: str | None = None,
    ) -> list[Similar]:
        """Patterns (hybrid ranking, best first), then knowledge entries (by vector score).

        Args:
            text: An embedding text (`query_text`) or free text.
            stack_trace: The query's whole stack, when known: its frames feed the trace similarity.
        """
        out = self._pattern_hits(text, k, filters or SearchFilters(), stack_trace=stack_trace)
        return out + (self._knowledge_hits(text, knowledge_k) if knowledge_k else [])
