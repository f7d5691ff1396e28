"""A recovery proposal's status: plain enum, no pydantic, so `errlearn --help` can list the choices."""

from __future__ import annotations

from enum import StrEnum


class ProposalStatus(StrEnum):
    proposed = "proposed"
    approved = "approved"
    running = "running"
    denied = "denied"
    expired = "expired"
    dry_run = "dry_run"
    succeeded = "succeeded"
    failed = "failed"
    escalated = "escalated"
    """Ran, but the triggering pattern's error rate did not drop: a person should look."""
