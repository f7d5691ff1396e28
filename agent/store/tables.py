"""Relational schema (SQLAlchemy 2). Migrations in `agent/store/migrations` must match it."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone, so we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), bytes: LargeBinary()}


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pattern_id: Mapped[str] = mapped_column(String(32), ForeignKey("patterns.id"), nullable=False)
    service: Mapped[str] = mapped_column(String(64), nullable=False)
    context: Mapped[str] = mapped_column(Text, nullable=False, default="")
    error_type: Mapped[str] = mapped_column(String(256), nullable=False)
    error_message: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="runtime")
    stack_trace: Mapped[str | None] = mapped_column(Text, nullable=True)
    stack_truncated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    additional_data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    timestamp: Mapped[dt.datetime] = mapped_column(nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(nullable=False)

    __table_args__ = (
        Index("ix_events_pattern_received", "pattern_id", "received_at"),
        Index("ix_events_service_received", "service", "received_at"),
        Index("ix_events_received", "received_at"),
    )


class EventPatternIndexRow(Base):
    """SQLite only: events by pattern, filled in sorted runs by the fold instead of per commit (issue 13).

    A B-tree index on `events (pattern_id, received_at)` took each commit's rows at as many places as the
    commit had patterns, one page each: a batch spread over 3,000 patterns wrote ~20x the pages of a batch of
    one. `agent.store.pattern_index.fold` appends what committed since the last fold in key order, so a page
    takes many rows at once. Events not folded yet (the tail: rowid above `EventIndexMarkRow.last_rowid`)
    are read from `events` directly. PostgreSQL keeps `ix_events_pattern_received` (no commit-ordered rowid).
    """

    __tablename__ = "event_pattern_index"

    pattern_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class EventIndexMarkRow(Base):
    """SQLite only, one row: the highest `events` rowid that `event_pattern_index` holds. SQLite commits one
    writer at a time and gives a new row the highest rowid + 1, so rowids above the mark are exactly the
    events committed since the last fold."""

    __tablename__ = "event_index_mark"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_rowid: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_event_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The event at `last_rowid`: if another is there, the rowids were renumbered and the index is rebuilt."""


class PatternRow(Base):
    __tablename__ = "patterns"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    service: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    error_type: Mapped[str] = mapped_column(String(256), nullable=False)
    template: Mapped[str] = mapped_column(Text, nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    first_seen: Mapped[dt.datetime] = mapped_column(nullable=False)
    last_seen: Mapped[dt.datetime] = mapped_column(nullable=False, index=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    max_severity: Mapped[str] = mapped_column(String(16), nullable=False)
    sample_event_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resolved: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    content_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    """Bumped when what we would embed for this pattern changes (new pattern, new template)."""
    indexed_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    """The content_version last written to the vector store."""
    merged_into: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    """Set when the merge pass folded this pattern into another (its events moved there); see PatternAliasRow."""


class PatternAliasRow(Base):
    """A stored merge decision: events whose fingerprint is `fingerprint` belong to `target_id`.

    Written by the merge pass (`kind` "merge", with its `reason`) and by an admin unmerge (`kind`
    "split": the fingerprint keeps its own pattern and the merge pass leaves it alone). Ingest on every
    replica reads it for the fingerprints of each batch, so a decision holds everywhere at once.
    """

    __tablename__ = "pattern_aliases"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    target_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)


class CounterRow(Base):
    """Durable counters (e.g. rejected events) that have no rows of their own."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


_SEQ = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid; BIGSERIAL on PostgreSQL


class PatternTallyRow(Base):
    """What a group commit adds to a recurring pattern, appended instead of updating the pattern's row.

    One row per recurring pattern per commit; `agent.store.tallies.fold` adds them into `patterns` about once
    a second and deletes them, in one transaction. Appending touches a page or two per commit where updating
    touched one page per pattern, and replicas never wait on each other's row locks for a hot pattern.
    Reads add what is not folded yet (`agent.store.repo`), so counts are exact at any moment. PostgreSQL only
    (SQLite's fold counts the events committed since, `agent.store.tallies.count_tail`); a SQLite database
    from before that may hold some, which the next fold adds like any other.
    """

    __tablename__ = "pattern_tallies"

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    pattern_id: Mapped[str] = mapped_column(String(32), nullable=False)
    n: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_seen: Mapped[dt.datetime] = mapped_column(nullable=False)
    max_severity: Mapped[str] = mapped_column(String(16), nullable=False)


class CounterTallyRow(Base):
    """What a group commit adds to the stats counters (see PatternTallyRow: folded into `counters` alike)."""

    __tablename__ = "counter_tallies"

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class MetaRow(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class JobRow(Base):
    """A durable background job (index, diagnose, learn, …)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    key: Mapped[str] = mapped_column(String(128), nullable=False)
    dedupe_key: Mapped[str | None] = mapped_column(String(170), nullable=True, unique=True)
    """`kind:key` while the job is queued or running; NULL after, so one live job per subject."""
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    run_after: Mapped[dt.datetime] = mapped_column(nullable=False)
    locked_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(nullable=False)

    __table_args__ = (Index("ix_jobs_claim", "status", "kind", "run_after"),)


class LearningRunRow(Base):
    __tablename__ = "learning_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    requested_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    patterns_examined: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    drafts_created: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    errors: Mapped[str | None] = mapped_column(Text, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    """The running holder's lease: renewed every few seconds; a run whose heartbeat stopped is taken for dead."""


class DiagnosisRow(Base):
    __tablename__ = "diagnoses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pattern_id: Mapped[str] = mapped_column(String(32), ForeignKey("patterns.id"), nullable=False, index=True)
    current: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    root_cause: Mapped[str] = mapped_column(Text, nullable=False)
    confidence: Mapped[float] = mapped_column(nullable=False)
    solution_steps: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    prevention_tips: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    removed_citations: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    proposed_actions: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    prompt_name: Mapped[str] = mapped_column(String(100), nullable=False)
    prompt_version: Mapped[int] = mapped_column(Integer, nullable=False)
    prompt_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    evidence_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)


class KnowledgeRow(Base):
    """Imported runbooks, notes and guide texts: the source of truth for the knowledge collection."""

    __tablename__ = "knowledge_entries"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    alert_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    embedding_text: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    imported_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    indexed_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, typed as a Table (SQLAlchemy types `__table__` as FromClause)."""
    return cast(Table, model.__table__)


class IdempotencyKeyRow(Base):
    """`Idempotency-Key` of an acknowledged batch and its results, kept for a day: a retry after a lost
    202 gets the same answer instead of storing the events twice. Written in the events' transaction."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    results: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False, index=True)


class LexicalDocRow(Base):
    """The lexical view of an indexed record (issue 14, retrieval): the source every process fills its
    in-memory BM25 / trace-similarity index from, so replicas rank alike. `seq` grows with every write."""

    __tablename__ = "lexical_docs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection: Mapped[str] = mapped_column(String(16), nullable=False)
    doc_id: Mapped[str] = mapped_column(String(200), nullable=False)
    terms: Mapped[str] = mapped_column(Text, nullable=False)
    """Terms joined by spaces (a term never holds a space)."""
    frames: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    """Frame -> base weight."""

    __table_args__ = (Index("ux_lexical_docs_collection_doc", "collection", "doc_id", unique=True),)
