"""The merge pass and admin unmerge: stored, explainable, reversible merge decisions.

`run_merge_pass` reads every template pattern, asks `agent.ingest.merge.find_groups` which are one
error, and records each decision in `pattern_aliases` (with its reason): the member's events move
to the group's target pattern, the member row keeps its history with `merged_into` set, and ingest
on every replica sends later events of that fingerprint to the target. It runs under a PostgreSQL
advisory lock (SQLite serialises writers anyway), so two replicas running it at once do it once.

`unmerge` pins a merged pattern: it gets its events back (re-grouped from their content, which is
what decided them) and the pass never joins it again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select, text, update
from sqlalchemy.exc import OperationalError

from agent.domain import Severity
from agent.ingest.grouping import group_event
from agent.ingest.merge import Template, find_groups
from agent.ingest.template import shape
from agent.settings import Settings
from agent.store import pattern_index, tallies
from agent.store.aliases import bump_version
from agent.store.tables import EventRow, PatternAliasRow, PatternRow, table_of

PATTERNS = table_of(PatternRow)
EVENTS = table_of(EventRow)
ALIASES = table_of(PatternAliasRow)
MERGE_LOCK_KEY = 0x6572726C_6D657267 & 0x7FFF_FFFF_FFFF_FFFF
"""Advisory lock id of the merge pass ("errlmerg")."""


class NotMerged(ValueError):
    """The pattern is not merged into another (nothing to unmerge)."""


class UnknownPattern(KeyError):
    pass


@dataclass(frozen=True)
class MergeReport:
    groups: int
    """Groups of two or more template patterns found."""
    merged: int
    """Patterns newly folded into a target by this pass."""
    moved_events: int


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MERGE_LOCK_KEY})


def run_merge_pass(engine: Engine, *, min_values: int = 4, min_context: int = 3) -> MergeReport:
    """One pass over all template patterns (cost grows with the number of patterns, off the ingest path).

    Retried when PostgreSQL picks it as a deadlock victim against a writer (it rolled back whole)."""
    for attempt in range(1, 6):
        try:
            return _merge_pass_once(engine, min_values=min_values, min_context=min_context)
        except OperationalError as exc:
            if attempt == 5 or getattr(exc.orig, "sqlstate", None) not in {"40P01", "40001"}:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _merge_pass_once(engine: Engine, *, min_values: int, min_context: int) -> MergeReport:
    with engine.begin() as conn:
        _lock(conn)
        tallies.fold(conn)  # the counts it recounts and moves are complete
        pinned = set(conn.execute(select(ALIASES.c.source_id).where(ALIASES.c.kind == "split")).scalars())
        rows = conn.execute(
            select(
                PATTERNS.c.id,
                PATTERNS.c.service,
                PATTERNS.c.error_type,
                PATTERNS.c.template,
                PATTERNS.c.merged_into,
                PATTERNS.c.first_seen,
                PATTERNS.c.sample_event_id,
            ).where(PATTERNS.c.method == "template")
        ).all()
        merged_into = {r.id: r.merged_into for r in rows}
        first_seen = {r.id: r.first_seen for r in rows}
        shapes = _shapes(conn, {r.id: r.sample_event_id for r in rows if r.sample_event_id})
        templates = [
            Template(r.id, r.service, r.error_type, shapes.get(r.id, r.template), pinned=r.id in pinned) for r in rows
        ]
        groups = find_groups(templates, min_values=min_values, min_context=min_context)
        now = dt.datetime.now(dt.UTC)
        merged = 0
        for group in groups:
            keys = [m.key for m in group.members]
            # Keep an existing target (its id is what diagnoses and links know); else the smallest id.
            existing = sorted(
                {merged_into[k] for k in keys if merged_into[k]} | {k for k in keys if k in merged_into.values()}
            )
            target = existing[0] if existing else min(keys, key=lambda k: (first_seen[k], k))
            for key in keys:
                if key == target or merged_into.get(key) == target:
                    continue
                _fold(conn, key, target, group.reasons.get(key, "joined"), now)
                merged_into[key] = target
                merged += 1
            _set_template(conn, target, group.template)
        moved = _move_stragglers(conn)
    return MergeReport(groups=len(groups), merged=merged, moved_events=moved)


def _shapes(conn: Connection, samples: dict[str, str]) -> dict[str, str]:
    """Each pattern's own masked shape, from its sample event: the content that made its fingerprint.

    (Not the stored template, which a merge generalises; patterns from before grouping v2 get the
    shape their errors have now, so later events of the same error can join them.)
    """
    by_event = {ev: pid for pid, ev in samples.items()}
    out: dict[str, str] = {}
    ids = sorted(by_event)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for eid, message in conn.execute(select(EVENTS.c.id, EVENTS.c.error_message).where(EVENTS.c.id.in_(chunk))):
            out[by_event[eid]] = shape(message) or message[:200]
    return out


def _fold(conn: Connection, source: str, target: str, reason: str, now: dt.datetime) -> None:
    fp = conn.execute(select(PATTERNS.c.fingerprint).where(PATTERNS.c.id == source)).scalar_one()
    values = {
        "source_id": source,
        "target_id": target,
        "kind": "merge",
        "reason": f"merge pass: {reason}",
        "actor": "merge-pass",
        "created_at": now,
    }
    if conn.execute(select(ALIASES.c.fingerprint).where(ALIASES.c.fingerprint == fp)).first() is None:
        conn.execute(ALIASES.insert().values(fingerprint=fp, **values))
    else:
        conn.execute(update(ALIASES).where(ALIASES.c.fingerprint == fp).values(**values))
    # Anything that pointed at the source (it was a target before) now points at the new target.
    conn.execute(
        update(ALIASES).where(ALIASES.c.target_id == source, ALIASES.c.kind == "merge").values(target_id=target)
    )
    conn.execute(update(PATTERNS).where(PATTERNS.c.merged_into == source).values(merged_into=target))
    conn.execute(update(PATTERNS).where(PATTERNS.c.id == source).values(merged_into=target))
    bump_version(conn)  # every replica's writer reloads its merge targets at its next commit


def _set_template(conn: Connection, target: str, template: str) -> None:
    conn.execute(
        update(PATTERNS)
        .where(PATTERNS.c.id == target, PATTERNS.c.template != template)
        .values(template=template, content_version=PATTERNS.c.content_version + 1)
    )


def _move_stragglers(conn: Connection) -> int:
    """Events still on a merged pattern (merged just now, or written by a replica during the merge) move."""
    moved = 0
    for source, target in conn.execute(
        select(PATTERNS.c.id, PATTERNS.c.merged_into).where(PATTERNS.c.merged_into.is_not(None), PATTERNS.c.count > 0)
    ).all():
        moved += pattern_index.move(conn, source, target)
        _recount(conn, [source, target])
    return moved


def _recount(conn: Connection, pattern_ids: Sequence[str]) -> None:
    for pid in pattern_ids:
        n, first, last = conn.execute(
            select(func.count(), func.min(EVENTS.c.timestamp), func.max(EVENTS.c.timestamp)).where(
                pattern_index.of_pattern(conn, pid)
            )
        ).one()
        values: dict[str, object] = {"count": n}
        if n:
            sevs = conn.execute(
                select(EVENTS.c.severity).where(pattern_index.of_pattern(conn, pid)).distinct()
            ).scalars()
            values.update(
                first_seen=first, last_seen=last, max_severity=max((Severity(s) for s in sevs), key=lambda s: s.rank)
            )
        conn.execute(update(PATTERNS).where(PATTERNS.c.id == pid).values(**values))


def aliases_of(engine: Engine, pattern_id: str) -> list[dict[str, object]]:
    """The merge decisions that involve a pattern (as source or target), newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ALIASES)
            .where((ALIASES.c.source_id == pattern_id) | (ALIASES.c.target_id == pattern_id))
            .order_by(ALIASES.c.created_at.desc(), ALIASES.c.source_id)
        ).mappings()
        return [dict(r) for r in rows]


def unmerge(engine: Engine, pattern_id: str, *, actor: str) -> dict[str, object]:
    """Split a merged pattern off its target for good: its events come back, later events stay with it."""
    with engine.begin() as conn:
        _lock(conn)
        row = conn.execute(
            select(PATTERNS.c.id, PATTERNS.c.fingerprint, PATTERNS.c.merged_into).where(PATTERNS.c.id == pattern_id)
        ).first()
        if row is None:
            raise UnknownPattern(pattern_id)
        if row.merged_into is None:
            raise NotMerged(f"pattern {pattern_id} is not merged into another pattern")
        tallies.fold(conn)
        target = row.merged_into
        now = dt.datetime.now(dt.UTC)
        conn.execute(
            update(ALIASES)
            .where(ALIASES.c.fingerprint == row.fingerprint)
            .values(
                target_id=pattern_id,
                kind="split",
                reason=f"unmerged from {target} by {actor}",
                actor=actor,
                created_at=now,
            )
        )
        conn.execute(update(PATTERNS).where(PATTERNS.c.id == pattern_id).values(merged_into=None))
        bump_version(conn)
        back = [
            ev.id
            for ev in conn.execute(
                select(
                    EVENTS.c.id, EVENTS.c.service, EVENTS.c.error_type, EVENTS.c.error_message, EVENTS.c.stack_trace
                ).where(pattern_index.of_pattern(conn, target))
            )
            if group_event(
                service=ev.service, error_type=ev.error_type, message=ev.error_message, stack_trace=ev.stack_trace
            ).fingerprint
            == row.fingerprint
        ]
        pattern_index.move(conn, target, pattern_id, back)
        _recount(conn, [pattern_id, target])
        conn.execute(
            update(PATTERNS)
            .where(PATTERNS.c.id.in_([pattern_id, target]))
            .values(content_version=PATTERNS.c.content_version + 1)
        )
    return {"pattern_id": pattern_id, "split_from": target, "events_moved": len(back)}


def merge_pass(settings: Settings, engine: Engine) -> MergeReport:
    """`run_merge_pass` with the configured rule parameters (one global configuration)."""
    return run_merge_pass(
        engine, min_values=settings.grouping_merge_min_values, min_context=settings.grouping_merge_min_context
    )
