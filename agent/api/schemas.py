"""Response schemas (families: XPublic, XsPublic)."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from agent.domain import ErrorEvent, Pattern

MAX_INT: Final = 2**31 - 1
"""The upper bound of every integer parameter and path id: the smallest integer column on any backend (SQLite
raises ``OverflowError`` at 2**63, PostgreSQL's ``integer`` ends at 2**31 - 1)."""


class EventPublic(ErrorEvent):
    pass


class PatternPublic(Pattern):
    pass


class PatternDetailPublic(Pattern):
    samples: list[EventPublic]
    """The most recent events of this pattern, newest first."""


class PatternsPublic(BaseModel):
    data: list[PatternPublic]
    count: int
    """Total number of patterns matching the filters (before paging)."""


class StatusPublic(BaseModel):
    model_config = {"extra": "allow"}
    version: str
    database: dict[str, Any]
