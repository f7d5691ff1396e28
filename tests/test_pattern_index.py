"""Events by pattern: the same answers before and after the fold, on both databases.

SQLite lists a pattern's events in `event_pattern_index`, which the fold fills, plus the tail of events
committed since (rowid above the mark); PostgreSQL uses its `events` index. Readers (recent events, counts
in a window, the guide's prevention metrics), merges, unmerges and retention must not see the difference.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, func, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.exc import OperationalError

from agent.guide import metrics
from agent.store import pattern_index, repo, tallies
from agent.store.db import alembic_config, make_engine, migrate
from tests.support import running_writer, writer_event

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _fold(engine: Engine) -> int:
    with engine.begin() as conn:
        return pattern_index.fold(conn, tallies.count_tail)


def _view(engine: Engine, pattern_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        window = pattern_index.ids_of(
            conn, pattern_id, since=T0 + dt.timedelta(minutes=2), until=T0 + dt.timedelta(minutes=5)
        )
        return {
            "recent": [e.id for e in repo.recent_events(conn, pattern_id, 4)],
            "all": sorted(conn.execute(pattern_index.ids_of(conn, pattern_id)).scalars()),
            "window": sorted(conn.execute(window).scalars()),
        }


def _index_rows(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {(r[0], r[1]) for r in conn.execute(text("SELECT event_id, pattern_id FROM event_pattern_index"))}


def _event_rows(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {(r[0], r[1]) for r in conn.execute(text("SELECT id, pattern_id FROM events"))}


def test_readers_see_the_same_events_before_and_after_the_fold(database_url: str) -> None:
    with running_writer(database_url) as (engine, writer):
        stored = [
            writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=i))])[0] for i in range(7)
        ]
        writer.write_sync([writer_event("KeyError", at=T0)])  # another pattern, not listed with the first
        pid = stored[0].pattern_id
        ids = [s.event_id for s in stored]
        before = _view(engine, pid)
        assert before == {"recent": ids[::-1][:4], "all": sorted(ids), "window": sorted(ids[2:5])}
        moved = _fold(engine)
        assert _view(engine, pid) == before
        if engine.dialect.name == "sqlite":
            assert moved == 8
            assert _index_rows(engine) == _event_rows(engine)
            assert _fold(engine) == 0  # the mark moved: nothing is copied twice
            # Half folded, half tail: a reader puts the two together.
            more = [
                writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=10 + i))])[0]
                for i in range(2)
            ]
            after = _view(engine, pid)
            assert after["recent"] == [more[1].event_id, more[0].event_id, ids[6], ids[5]]
            assert after["all"] == sorted(ids + [m.event_id for m in more])


def test_moves_keep_the_index_true(database_url: str) -> None:
    with running_writer(database_url) as (engine, writer):
        a = [writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=i))])[0] for i in range(3)]
        b = writer.write_sync([writer_event("KeyError", at=T0)])[0]
        _fold(engine)
        tail = writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=9))])[0]  # not folded
        with engine.begin() as conn:
            assert pattern_index.move(conn, a[0].pattern_id, b.pattern_id) == 4  # folded and tail alike
        with engine.begin() as conn:  # and back, by id (an unmerge)
            back = [a[1].event_id, tail.event_id]
            assert pattern_index.move(conn, b.pattern_id, a[0].pattern_id, back) == 2
        assert _view(engine, a[0].pattern_id)["all"] == sorted(back)
        assert _view(engine, b.pattern_id)["all"] == sorted([a[0].event_id, a[2].event_id, b.event_id])
        _fold(engine)
        if engine.dialect.name == "sqlite":
            assert _index_rows(engine) == _event_rows(engine)


def test_sqlite_rowids_handed_out_again_after_a_delete_are_read_as_tail(tmp_path: Path) -> None:
    """SQLite numbers a new row max(rowid) + 1: once the newest events are deleted, new events get rowids
    below the mark. `forget` (called by retention in its delete) brings the mark down, so they are listed."""
    with running_writer(f"sqlite:///{tmp_path / 'e.db'}") as (engine, writer):
        old = [writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=i))])[0] for i in range(3)]
        pid = old[0].pattern_id
        _fold(engine)
        with engine.begin() as conn:
            gone = conn.execute(
                text("DELETE FROM events WHERE id IN (:a, :b) RETURNING id, pattern_id, received_at"),
                {"a": old[1].event_id, "b": old[2].event_id},
            ).all()
            pattern_index.forget(conn, [(r[0], r[1], dt.datetime.fromisoformat(r[2])) for r in gone])
        new = writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=30))])[0]
        with engine.connect() as conn:  # the new event took a rowid the index had already passed
            rowid = conn.execute(text("SELECT rowid FROM events WHERE id = :i"), {"i": new.event_id}).scalar_one()
            assert rowid <= 3
        assert _view(engine, pid)["recent"] == [new.event_id, old[0].event_id]
        _fold(engine)
        assert _index_rows(engine) == _event_rows(engine)


def test_an_existing_sqlite_database_gets_its_index_filled(tmp_path: Path) -> None:
    """The 0011 migration: events stored under the per-commit index are listed by pattern after the upgrade."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
    stored = []
    with engine.begin() as conn:  # as the release before wrote them
        for i in range(5):
            conn.execute(
                text(
                    "INSERT INTO patterns (id, fingerprint, service, error_type, template, method, reason, first_seen,"
                    " last_seen, count, max_severity, resolved, content_version, indexed_version)"
                    " VALUES ('pat_a', 'fp', 'svc', 'E', 't', 'template', 'r', :t, :t, 5, 'low', 0, 1, 0)"
                    " ON CONFLICT DO NOTHING"
                ),
                {"t": T0},
            )
            conn.execute(
                text(
                    "INSERT INTO events (id, pattern_id, service, context, error_type, error_message, severity, kind,"
                    " stack_truncated, additional_data, timestamp, received_at)"
                    " VALUES (:id, 'pat_a', 'svc', '', 'E', 'm', 'low', 'runtime', 0, '{}', :t, :t)"
                ),
                {
                    "id": f"ev_{i}",
                    "t": (T0 + dt.timedelta(minutes=i)).replace(tzinfo=None).isoformat(" ", "microseconds"),
                },
            )
            stored.append(f"ev_{i}")
    migrate(engine)
    with engine.connect() as conn:
        indexes = {r[1] for r in conn.execute(text("PRAGMA index_list(events)"))}
        assert "ix_events_pattern_received" not in indexes
        assert conn.execute(select(func.count()).select_from(pattern_index.INDEX)).scalar_one() == 5
        assert [e.id for e in repo.recent_events(conn, "pat_a", 3)] == ["ev_4", "ev_3", "ev_2"]
    assert _fold(engine) == 0  # the migration set the mark past what it copied
    engine.dispose()


def test_sqlite_reads_by_pattern_use_the_index_and_read_the_tail_by_rowid(tmp_path: Path) -> None:
    """No by-pattern read scans `events`: the planner must not read a time window through `ix_events_received`
    or build an automatic index on `pattern_id` (each reads every event), only the tail by rowid range."""
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        if "rowid" in statement:  # the by-pattern reads (they name the tail)
            statements.append((statement, params))

    sa_event.listen(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        repo.recent_events(conn, "pat_x", 5)
        conn.execute(select(func.count()).where(pattern_index.of_pattern(conn, "pat_x", since=T0, until=T0)))
        tallies.pending_patterns(conn, ["pat_x"])  # what the tail adds to counts (events are SQLite's tallies)
        tallies.pending_patterns(conn)
        repo.list_patterns(conn, since=T0)  # seen since: the tail's timestamps count (its count and its page)
    metrics.prevention_metrics(engine, T0)
    sa_event.remove(engine, "before_cursor_execute", capture)
    assert len(statements) == 7
    with engine.connect() as conn:
        for statement, params in statements:
            plan = [r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)]
            on_events = [p for p in plan if p.startswith(("SCAN events", "SEARCH events"))]
            assert on_events, plan
            for step in on_events:
                assert step in {
                    "SEARCH events USING INTEGER PRIMARY KEY (rowid>?)",
                    "SEARCH events USING INDEX sqlite_autoindex_events_1 (id=?)",
                    "SEARCH events USING COVERING INDEX sqlite_autoindex_events_1 (id=?)",
                }, plan
    engine.dispose()


def test_sqlite_renumbered_rowids_rebuild_the_index(tmp_path: Path) -> None:
    """A dump restored into a new file (or a VACUUM) may number events' rowids anew, the mark's included: the
    fold sees another event at the mark, counts the events the index does not hold (the tail) and rebuilds the
    index from `events`, so nothing is lost from it and nothing is counted twice."""
    with running_writer(f"sqlite:///{tmp_path / 'r.db'}") as (engine, writer):
        first = [
            writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=i))])[0] for i in range(6)
        ]
        pid = first[0].pattern_id
        _fold(engine)
        with engine.begin() as conn:  # three deleted behind errlearn's back, then the rest renumbered 1..3
            conn.execute(text("DELETE FROM events WHERE rowid IN (1, 2, 3)"))
            conn.execute(text("UPDATE events SET rowid = rowid - 3"))
        late = writer.write_sync([writer_event("TimeoutError", at=T0 + dt.timedelta(minutes=30))])[0]
        with engine.connect() as conn:  # it took rowid 4, below the mark (6): not in the tail, not indexed
            assert conn.execute(text("SELECT rowid FROM events WHERE id = :i"), {"i": late.event_id}).scalar_one() == 4
        _fold(engine)
        assert _index_rows(engine) == _event_rows(engine)
        assert _view(engine, pid)["recent"] == [late.event_id, *(s.event_id for s in first[:2:-1])]
        with engine.connect() as conn:  # the tail was what the index did not hold: the late event, counted once
            assert repo.get_pattern(conn, pid).count == 7  # type: ignore[union-attr]


def test_an_upgraded_sqlite_database_counts_what_its_killed_writer_left_once(tmp_path: Path) -> None:
    """The 0012 migration: the release before counted a new pattern's events in its INSERT and recurring ones in
    `pattern_tallies`, so the events it left unfolded are counted already; the fold after the upgrade, which
    counts the tail's events, must not count them again (and the tallies still fold)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0011")
    at = T0.replace(tzinfo=None).isoformat(" ", "microseconds")
    with engine.begin() as conn:  # as that release's writer left them when SIGKILLed before its fold
        conn.execute(
            text(
                "INSERT INTO patterns (id, fingerprint, service, error_type, template, method, reason, first_seen,"
                " last_seen, count, max_severity, resolved, content_version, indexed_version)"
                " VALUES ('pat_a', 'fp', 'svc', 'E', 't', 'template', 'r', :t, :t, 1, 'low', 0, 1, 0)"
            ),
            {"t": at},
        )
        for i in range(2):
            conn.execute(
                text(
                    "INSERT INTO events (id, pattern_id, service, context, error_type, error_message, severity, kind,"
                    " stack_truncated, additional_data, timestamp, received_at)"
                    " VALUES (:id, 'pat_a', 'svc', '', 'E', 'm', 'low', 'runtime', 0, '{}', :t, :t)"
                ),
                {"id": f"ev_{i}", "t": at},
            )
        conn.execute(
            text(
                "INSERT INTO pattern_tallies (pattern_id, n, last_seen, max_severity) VALUES ('pat_a', 1, :t, 'high')"
            ),
            {"t": at},
        )
    migrate(engine)
    with engine.connect() as conn:
        assert repo.get_pattern(conn, "pat_a").count == 2  # type: ignore[union-attr]
    with engine.begin() as conn:
        tallies.fold(conn)
    with engine.connect() as conn:
        p = repo.get_pattern(conn, "pat_a")
        assert p is not None and (p.count, p.max_severity.value) == (2, "high")
        assert [e.id for e in repo.recent_events(conn, "pat_a", 5)] == ["ev_1", "ev_0"]
    assert _index_rows(engine) == _event_rows(engine)
    engine.dispose()


def test_sqlite_a_fold_holds_the_write_lock_before_it_reads_the_mark(tmp_path: Path) -> None:
    """A fold whose caller took no write lock (the merge pass on SQLite) must not count a tail that another fold
    counted between its read of the mark and its count: it takes the lock first, so the other fold waits."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with running_writer(url) as (engine, writer):
        stored = writer.write_sync([writer_event("TimeoutError") for _ in range(3)])
        pid = stored[0].pattern_id
        other = make_engine(url)
        other_failed: list[str] = []

        def count_after_another_fold(conn: Any, where: str, params: tuple[Any, ...]) -> None:
            try:  # another process folds meanwhile, if this fold let it (a short busy timeout: it must wait)
                with other.connect() as c2:
                    c2.exec_driver_sql("PRAGMA busy_timeout = 200")
                    c2.commit()
                    with c2.begin():
                        tallies.fold(c2)
            except OperationalError as exc:
                other_failed.append(str(exc))
            tallies.count_tail(conn, where, params)

        with engine.connect() as conn, conn.begin():  # no lock_for_write, as the merge pass on SQLite
            pattern_index.fold(conn, count_after_another_fold)
        other.dispose()
        assert other_failed and "locked" in other_failed[0]
        with engine.connect() as conn:
            assert repo.get_pattern(conn, pid).count == 3  # type: ignore[union-attr]
