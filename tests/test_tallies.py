"""Tallies: commits append what recurring patterns and counters gain (on SQLite the events themselves are the
pattern tallies); folds add them up, once each.

Reads are exact before a fold; a writer killed before its fold loses no count (the next writer folds what it
left); two processes committing and folding at once on one database count every event exactly once.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess  # noqa: TID251 - the tests run real writer processes (one is SIGKILLed)
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from agent.store import repo
from agent.store.db import make_engine, migrate
from agent.store.writer import EventWriter
from tests.support import running_writer, writer_event

ROOT = Path(__file__).resolve().parents[1]


def _event(error_type: str, severity: str = "medium", at: dt.datetime | None = None) -> dict[str, Any]:
    return writer_event(error_type, severity=severity, at=at)


def _raw(conn: Any) -> dict[str, tuple[int, str, bool]]:
    rows = conn.execute(text("SELECT id, count, max_severity, resolved FROM patterns")).all()
    return {r[0]: (int(r[1]), r[2], bool(r[3])) for r in rows}


def _tally_rows(conn: Any) -> int:
    return int(conn.execute(text("SELECT count(*) FROM pattern_tallies")).scalar_one()) + int(
        conn.execute(text("SELECT count(*) FROM counter_tallies")).scalar_one()
    )


def test_reads_are_exact_before_the_fold_and_the_fold_moves_everything_once(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    writer = EventWriter(engine, fold_every_s=3600)  # no fold while the test looks
    writer.start()
    try:
        first = writer.write_sync([_event("TimeoutError")])[0]
        with engine.begin() as conn:  # an admin resolved it; a recurrence must reopen it
            conn.execute(text("UPDATE patterns SET resolved = :t WHERE id = :id"), {"t": True, "id": first.pattern_id})
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        writer.write_sync([_event("TimeoutError", "critical", later), _event("TimeoutError")])
        writer.write_sync([_event("TimeoutError", "low")])
        with engine.connect() as conn:
            # The row itself is not touched yet: PostgreSQL inserted it with its first event counted; SQLite counts
            # every event at the fold (events are their own tallies there)
            assert _raw(conn)[first.pattern_id] == (0 if engine.dialect.name == "sqlite" else 1, "medium", True)
            assert _tally_rows(conn) > 0
            p = repo.get_pattern(conn, first.pattern_id)
            assert p is not None
            assert (p.count, p.max_severity.value, p.resolved) == (4, "critical", False)
            assert abs((p.last_seen - later).total_seconds()) < 1e-3
            listed, _ = repo.list_patterns(conn)
            assert [x.count for x in listed] == [4]
            # Seen since a moment only a tally knows about (the row's last_seen is the first event's).
            recent, _ = repo.list_patterns(conn, since=later - dt.timedelta(minutes=1))
            assert [x.id for x in recent] == [first.pattern_id]
            assert repo.counters(conn)["received"] == 4
    finally:
        writer.stop()  # folds
    with engine.connect() as conn:
        assert _raw(conn)[first.pattern_id] == (4, "critical", False)
        assert _tally_rows(conn) == 0
        assert repo.counters(conn)["received"] == 4
        assert repo.get_pattern(conn, first.pattern_id).count == 4  # type: ignore[union-attr]
    engine.dispose()


def test_the_writer_folds_when_it_goes_idle(tmp_path: Path) -> None:
    with running_writer(f"sqlite:///{tmp_path / 'w.db'}", fold_every_s=0.05) as (engine, writer):
        for _ in range(3):
            writer.write_sync([_event("KeyError")])
        _wait_folded(engine)
        with engine.connect() as conn:
            assert next(iter(_raw(conn).values()))[0] == 3


def test_stats_reset_drops_counts_not_folded_yet(tmp_path: Path) -> None:
    with running_writer(f"sqlite:///{tmp_path / 'w.db'}") as (engine, writer):
        writer.write_sync([_event("KeyError"), _event("KeyError")])
        with engine.begin() as conn:
            repo.reset_counters(conn, dt.datetime.now(dt.UTC))
        writer.write_sync([_event("KeyError")])
        with engine.connect() as conn:
            assert repo.counters(conn)["received"] == 1
        writer.stop()  # folds
        with engine.connect() as conn:
            assert repo.counters(conn)["received"] == 1


_CHILD = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys
    sys.path.insert(0, {root!r})
    from agent.store.db import make_engine, migrate
    from agent.store.writer import EventWriter
    from tests.support import running_writer, writer_event as _event
    engine = make_engine({url!r})
    migrate(engine)
    writer = EventWriter(engine, fold_every_s={fold})
    writer.start()
    for i in range({rounds}):
        writer.write_sync([_event("E%d" % (i % 7)) for _ in range(5)] + [_event("Shared")])
    if {kill}:
        os.kill(os.getpid(), signal.SIGKILL)  # no stop, no last fold
    writer.stop()
    """
)


def _child(url: str, *, rounds: int, fold: float, kill: bool) -> subprocess.Popen[bytes]:
    code = _CHILD.format(root=str(ROOT), url=url, rounds=rounds, fold=fold, kill=kill)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ))


def _wait_folded(engine: Any, timeout: float = 20) -> None:
    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
    while dt.datetime.now() < deadline:
        with engine.connect() as conn:
            if _tally_rows(conn) == 0:
                return
    raise AssertionError("tallies were not folded")


def _assert_counts_match_events(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        assert _tally_rows(conn) == 0
        stored = dict(conn.execute(text("SELECT pattern_id, count(*) FROM events GROUP BY pattern_id")).all())
        assert {pid: c for pid, (c, _, _) in _raw(conn).items()} == stored
        total = conn.execute(select(func.count()).select_from(repo.EVENTS)).scalar_one()
        assert repo.counters(conn)["received"] == total
        if engine.dialect.name == "sqlite":  # the by-pattern index holds every event once, folds racing or not
            indexed = conn.execute(text("SELECT event_id, pattern_id FROM event_pattern_index")).all()
            assert sorted(map(tuple, indexed)) == sorted(
                map(tuple, conn.execute(text("SELECT id, pattern_id FROM events")))
            )
    engine.dispose()


@pytest.mark.slow
def test_a_killed_writer_loses_no_count_the_next_writer_folds_what_it_left(database_url: str) -> None:
    child = _child(database_url, rounds=40, fold=3600, kill=True)
    assert child.wait(120) == -signal.SIGKILL
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert _tally_rows(conn) > 0  # what it appended is durable, not folded
    writer = EventWriter(engine, fold_every_s=3600)
    writer.start()  # folds what the killed process left, before any commit of its own
    try:
        _wait_folded(engine)
    finally:
        writer.stop()
    engine.dispose()
    _assert_counts_match_events(database_url)


@pytest.mark.slow
def test_two_processes_committing_and_folding_at_once_count_every_event_once(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)  # once, so the children do not race on an empty database here
    engine.dispose()
    children = [_child(database_url, rounds=150, fold=0, kill=False) for _ in range(2)]  # fold after every commit
    assert [c.wait(300) for c in children] == [0, 0]
    _assert_counts_match_events(database_url)
