"""Response schemas (families: XPublic, XsPublic)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, WithJsonSchema

from agent.domain import ErrorEvent, Pattern

MAX_INT: Final = 2**31 - 1
"""The upper bound of every integer parameter and path id: the smallest integer column on any backend (SQLite
raises ``OverflowError`` at 2**63, PostgreSQL's ``integer`` ends at 2**31 - 1)."""


def _iso_only(value: Any) -> Any:
    """Pydantic reads numbers (and numeric strings) as Unix times; the schema says ISO 8601, so refuse them."""
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        raise ValueError("expected an ISO 8601 date-time such as 2024-05-01T12:00:00Z, not a number")
    return value


_NUMBER: Final = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

IsoDateTime = Annotated[
    dt.datetime, BeforeValidator(_iso_only), WithJsonSchema({"type": "string", "format": "date-time"})
]
"""A date-time parameter or field that accepts ISO 8601 only, as its schema declares."""


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
