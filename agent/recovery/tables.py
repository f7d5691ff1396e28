"""Tables of the recovery layer (on the shared metadata).

`recovery_audit` is append-only: the code only inserts into it, and the migration adds database
triggers that refuse UPDATE and DELETE on it (and TRUNCATE on PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent.store.tables import Base


class RecoveryProposalRow(Base):
    """A validated proposal to run one allow-listed action with given parameter values."""

    __tablename__ = "recovery_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(String(64), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    argv: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    """The exact argv that was approved and will run (re-checked against the template before running)."""
    target: Mapped[str] = mapped_column(String(600), nullable=False)
    """The parameter values as one key: cooldowns are per action and target."""
    dedupe_key: Mapped[str | None] = mapped_column(String(700), nullable=True, unique=True)
    """`action|target` while the proposal is open; NULL after, so one open proposal per target."""
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    """condition, diagnosis or manual."""
    pattern_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    diagnosis_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trigger: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    blocked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why an open proposal is waiting (cooldown, rate cap, breaker, conditions); audited once per change."""
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    run_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """succeeded, failed, timeout, error or dry_run."""
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """pending, improved, not_improved, inconclusive or none (nothing to watch)."""
    rate_before: Mapped[float | None] = mapped_column(Float, nullable=True)
    rate_after: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome_checked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(nullable=False)

    __table_args__ = (
        Index("ix_recovery_proposals_status", "status"),
        Index("ix_recovery_proposals_action_started", "action_id", "started_at"),
        Index("ix_recovery_proposals_pattern", "pattern_id"),
    )


class RecoveryAuditRow(Base):
    """One decision of the recovery layer. Append-only."""

    __tablename__ = "recovery_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(nullable=False)
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    action_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """As proposed, ASCII-escaped and bounded (it may be hostile text from a model)."""
    proposal_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pattern_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    argv: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")

    __table_args__ = (
        Index("ix_recovery_audit_action_at", "action_id", "at"),
        Index("ix_recovery_audit_pattern", "pattern_id"),
        Index("ix_recovery_audit_proposal", "proposal_id"),
    )
