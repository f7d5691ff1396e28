"""Tables of the guide layer (on the shared metadata)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agent.store.tables import Base


class GuideCounterRow(Base):
    """Allocators and locks of the guide. `entry` holds the last `ERROR-XXX` number handed out.

    Not the shared `counters` table: `POST /reset-stats` empties that one, and an id must never be reused.
    """

    __tablename__ = "guide_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class GuideEntryRow(Base):
    __tablename__ = "guide_entries"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    error_type: Mapped[str] = mapped_column(String(256), nullable=False, default="")
    template: Mapped[str] = mapped_column(Text, nullable=False, default="")
    symptoms: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    root_cause: Mapped[str] = mapped_column(Text, nullable=False, default="")
    solution_steps: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    prevention_tips: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    commands: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    author_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    author: Mapped[str] = mapped_column(String(200), nullable=False)
    prompt_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    prompt_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    evidence_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    proposal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """A drafted revision of an approved entry, waiting for review."""
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    superseded_by: Mapped[str | None] = mapped_column(String(20), nullable=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    approved_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class GuideLinkRow(Base):
    """Which patterns an entry covers (one entry may cover several; a pattern may appear in old entries too)."""

    __tablename__ = "guide_entry_patterns"

    entry_id: Mapped[str] = mapped_column(String(20), ForeignKey("guide_entries.id"), primary_key=True)
    pattern_id: Mapped[str] = mapped_column(String(32), ForeignKey("patterns.id"), primary_key=True)
    how: Mapped[str] = mapped_column(String(16), nullable=False)
    """drafted, exact (same error type and template), similar (retrieval), merged, manual."""
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    evidence_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    linked_at: Mapped[dt.datetime] = mapped_column(nullable=False)

    __table_args__ = (Index("ix_guide_entry_patterns_pattern", "pattern_id"),)


class GuideRevisionRow(Base):
    """Append-only history: rows are inserted, never updated or deleted."""

    __tablename__ = "guide_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(20), ForeignKey("guide_entries.id"), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    author: Mapped[str] = mapped_column(String(300), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    evidence_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)

    __table_args__ = (UniqueConstraint("entry_id", "revision", name="uq_guide_revisions_entry_revision"),)


class GuideRejectionRow(Base):
    """Evidence that must not be drafted from again: a reviewer rejected its draft, or it gave no valid citation."""

    __tablename__ = "guide_rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pattern_id: Mapped[str] = mapped_column(String(32), nullable=False)
    evidence_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    """`rejected` (by a reviewer) or `no_evidence` (the model cited nothing valid)."""
    entry_id: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)

    __table_args__ = (Index("ix_guide_rejections_pattern_hash", "pattern_id", "evidence_hash"),)
