"""Who still needs an expired event: providers of "referenced event ids" for `Retention`.

A provider takes a Connection and returns either a set of ids or a SELECT of one text column. SELECT providers
are better: `Retention` also puts them into each DELETE (`AND id NOT IN (...)`), so a reference committed while a
pruning run is under way still protects its event. Ids that are not event ids (patterns, knowledge entries) may
appear in the result; they match no event and do no harm.

The guide and recovery tables are named here with lightweight `table()` constructs rather than imported: the store
layer sits upstream of those layers and must not import them. `tests/test_retention.py` runs these providers on the
real, migrated schema, so a renamed column fails there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    case,
    column,
    func,
    literal_column,
    select,
    table,
    true,
)
from sqlalchemy.sql.expression import TableValuedAlias

from agent.store.tables import DiagnosisRow, table_of

ReferencedIds = Callable[[Connection], "Select[Any] | Iterable[str]"]
"""Returns the ids of events that must not be deleted: a SELECT of one column, or a set."""

DIAGNOSES = table_of(DiagnosisRow)
GUIDE_ENTRIES = table("guide_entries", column("status", String), column("evidence", JSON), column("proposal", JSON))
PROPOSALS = table("recovery_proposals", column("status", String), column("diagnosis_id", Integer))

GUIDE_STATUSES = ("approved", "draft")
"""Approved entries are the guide; drafts are protected too, because a reviewer checks a draft against its evidence."""
OPEN_PROPOSAL_STATUSES = ("proposed", "approved", "running")
"""`agent.recovery.models.OPEN_STATUSES` plus `running` (its outcome is not known yet)."""


def json_array_values(conn: Connection, value: ColumnElement[Any], key: str | None = None) -> TableValuedAlias:
    """The elements (as text) of a JSON array column, or of the array at `value[key]`, as a table-valued function.

    Rows whose value is not an array give no elements on PostgreSQL (a guard, since `json_array_elements_text`
    raises on anything else); on SQLite `json_each` walks objects and scalars too, which can only protect more.
    """
    if conn.dialect.name == "postgresql":
        arr = func.json_extract_path(value, key) if key else value
        guarded = case((func.json_typeof(arr) == "array", arr), else_=literal_column("'[]'::json"))
        return func.json_array_elements_text(guarded).table_valued("value")
    args = (value, f"$.{key}") if key else (value,)
    return func.json_each(*args).table_valued("value")


def current_diagnosis_evidence(conn: Connection) -> Select[Any]:
    """Events cited by a pattern's current diagnosis (the one the API and UI show). History may lose its events."""
    ids = json_array_values(conn, DIAGNOSES.c.evidence)
    return select(ids.c.value).select_from(DIAGNOSES).join(ids, true()).where(DIAGNOSES.c.current.is_(True))


def guide_evidence(statuses: Sequence[str] = GUIDE_STATUSES) -> ReferencedIds:
    """Events cited by guide entries in `statuses`, and by a drafted revision waiting on such an entry."""

    def provider(conn: Connection) -> Select[Any]:
        own = json_array_values(conn, GUIDE_ENTRIES.c.evidence)
        proposed = json_array_values(conn, GUIDE_ENTRIES.c.proposal, "evidence")
        live = GUIDE_ENTRIES.c.status.in_(list(statuses))
        return (
            select(own.c.value)
            .select_from(GUIDE_ENTRIES)
            .join(own, true())
            .where(live)
            .union_all(select(proposed.c.value).select_from(GUIDE_ENTRIES).join(proposed, true()).where(live))
            .subquery()
            .select()
        )

    return provider


def open_proposal_evidence(statuses: Sequence[str] = OPEN_PROPOSAL_STATUSES) -> ReferencedIds:
    """Events cited by the diagnosis behind an open recovery proposal, current or not.

    A proposal raised by a condition (no diagnosis) references its pattern only; the pattern's newest samples are
    kept by the sample rule anyway.
    """

    def provider(conn: Connection) -> Select[Any]:
        ids = json_array_values(conn, DIAGNOSES.c.evidence)
        return (
            select(ids.c.value)
            .select_from(PROPOSALS.join(DIAGNOSES, DIAGNOSES.c.id == PROPOSALS.c.diagnosis_id))
            .join(ids, true())
            .where(PROPOSALS.c.status.in_(list(statuses)))
        )

    return provider


def default_references() -> list[ReferencedIds]:
    """Current diagnoses, live guide entries and open recovery proposals."""
    return [current_diagnosis_evidence, guide_evidence(), open_proposal_evidence()]
