"""Stored diagnoses: one current per pattern, older ones kept as history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, desc, select, update

from agent.domain import Diagnosis, DiagnosisStatus, ProposedAction
from agent.store.tables import DiagnosisRow, table_of

DIAGNOSES = table_of(DiagnosisRow)


def _from_row(r: Any) -> Diagnosis:
    return Diagnosis(
        id=r.id,
        pattern_id=r.pattern_id,
        status=DiagnosisStatus(r.status),
        summary=r.summary,
        root_cause=r.root_cause,
        confidence=r.confidence,
        solution_steps=list(r.solution_steps or []),
        prevention_tips=list(r.prevention_tips or []),
        evidence=list(r.evidence or []),
        removed_citations=list(r.removed_citations or []),
        proposed_actions=[ProposedAction.model_validate(a) for a in (r.proposed_actions or [])],
        model=r.model,
        prompt_name=r.prompt_name,
        prompt_version=r.prompt_version,
        prompt_sha256=r.prompt_sha256,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        evidence_hash=r.evidence_hash,
        latency_ms=r.latency_ms,
        created_at=r.created_at,
    )


def save(conn: Connection, d: Diagnosis, now: dt.datetime) -> int:
    conn.execute(update(DIAGNOSES).where(DIAGNOSES.c.pattern_id == d.pattern_id).values(current=False))
    data = d.model_dump(mode="json", exclude={"id", "created_at"})
    data["proposed_actions"] = [a.model_dump() for a in d.proposed_actions]
    res = conn.execute(DIAGNOSES.insert().values(**data, current=True, created_at=now))
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def current(conn: Connection, pattern_id: str) -> Diagnosis | None:
    row = conn.execute(
        select(DIAGNOSES).where(DIAGNOSES.c.pattern_id == pattern_id, DIAGNOSES.c.current.is_(True))
    ).first()
    return _from_row(row) if row else None


def current_for(conn: Connection, pattern_ids: list[str]) -> dict[str, Diagnosis]:
    if not pattern_ids:
        return {}
    rows = conn.execute(
        select(DIAGNOSES).where(DIAGNOSES.c.pattern_id.in_(pattern_ids), DIAGNOSES.c.current.is_(True))
    ).all()
    return {r.pattern_id: _from_row(r) for r in rows}


def history(conn: Connection, pattern_id: str, limit: int = 20) -> list[Diagnosis]:
    rows = conn.execute(
        select(DIAGNOSES).where(DIAGNOSES.c.pattern_id == pattern_id).order_by(desc(DIAGNOSES.c.id)).limit(limit)
    ).all()
    return [_from_row(r) for r in rows]


def count(conn: Connection) -> int:
    from sqlalchemy import func

    return int(conn.execute(select(func.count()).select_from(DIAGNOSES)).scalar_one())
