"""The writer's driver-level statements store exactly what SQLAlchemy Core stores, on both backends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update

from agent.store.batch_sql import BatchSQL, chunk_sizes
from agent.store.db import make_engine, migrate
from agent.store.tables import EventRow, PatternRow, table_of

EVENTS = table_of(EventRow)
PATTERNS = table_of(PatternRow)
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def _pattern(pid: str) -> dict[str, Any]:
    return {
        "id": pid,
        "fingerprint": "f" + pid,
        "service": "svc",
        "error_type": "E",
        "template": "t",
        "method": "template",
        "reason": "r",
        "first_seen": T0,
        "last_seen": T0,
        "count": 1,
        "max_severity": "medium",
        "sample_event_id": None,
        "resolved": True,
        "content_version": 1,
        "indexed_version": 0,
    }


def _event(eid: str, pid: str, **kw: Any) -> dict[str, Any]:
    row = {
        "id": eid,
        "pattern_id": pid,
        "service": "svc",
        "context": "POST /x",
        "error_type": "E",
        "error_message": "boom ✓",
        "severity": "high",
        "kind": "runtime",
        "stack_trace": None,
        "stack_truncated": True,
        "additional_data": {"a": [1, 2], "when": T0, "nested": {"k": None}},
        "timestamp": T0.astimezone(dt.timezone(dt.timedelta(hours=2))),  # stored as UTC
        "received_at": T0 + dt.timedelta(microseconds=0),  # no microseconds: still written with them
    }
    row.update(kw)
    return row


def _raw(conn: Any, table: str, key: str) -> tuple[Any, ...]:
    return tuple(conn.exec_driver_sql(f"SELECT * FROM {table} WHERE id = '{key}'").one())


def test_events_and_pattern_updates_match_sqlalchemy(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    sql = BatchSQL(engine.dialect.name)
    with engine.begin() as conn:
        conn.execute(insert(PATTERNS), [_pattern("pat_a"), _pattern("pat_b")])
        conn.execute(insert(EVENTS), [_event("ev_core", "pat_a")])
        sql.insert_event_rows(conn, [_event("ev_fast", "pat_a")])
        core, fast = _raw(conn, "events", "ev_core"), _raw(conn, "events", "ev_fast")
        assert core[1:] == fast[1:]
        # and it reads back through the ORM types as the same values
        got = {r.id: r for r in conn.execute(select(EVENTS))}
        assert got["ev_fast"].timestamp == T0 and got["ev_fast"].additional_data == got["ev_core"].additional_data

        later = T0 + dt.timedelta(seconds=5)
        conn.execute(
            update(PATTERNS)
            .where(PATTERNS.c.id == "pat_a")
            .values(count=PATTERNS.c.count + 3, last_seen=later, max_severity="critical", resolved=False)
        )
        sql.add_to_patterns(conn, [("pat_b", 3, later, "critical")])
        a, b = _raw(conn, "patterns", "pat_a"), _raw(conn, "patterns", "pat_b")
        assert a[2:] == b[2:]  # all but id and fingerprint
        # an older time and a lower severity do not move them back
        sql.add_to_patterns(conn, [("pat_b", 1, T0, "low")])
        row = conn.execute(select(PATTERNS).where(PATTERNS.c.id == "pat_b")).one()
        assert (row.count, row.last_seen, row.max_severity, row.resolved) == (5, later, "critical", False)
        conn.execute(text("DELETE FROM events"))
    engine.dispose()


def test_rows_go_in_power_of_two_chunks() -> None:
    assert chunk_sizes(0) == []
    assert chunk_sizes(1) == [1]
    assert chunk_sizes(17) == [16, 1]
    assert chunk_sizes(800) == [256, 256, 256, 32]
    assert chunk_sizes(255) == [128, 64, 32, 16, 8, 4, 2, 1]
    assert chunk_sizes(20, largest=8) == [8, 8, 4]
    for n in range(0, 1100, 7):
        assert sum(chunk_sizes(n)) == n and all(size & (size - 1) == 0 for size in chunk_sizes(n))


def test_many_rows_are_all_stored_in_order_of_their_values(database_url: str) -> None:
    """A commit's events and counters, more than one chunk of each, land whole and exact."""
    engine = make_engine(database_url)
    migrate(engine)
    sql = BatchSQL(engine.dialect.name)
    rows = [
        _event(f"ev_{i:04d}", "pat_a", error_message=f"boom {i}", severity=("low", "high")[i % 2]) for i in range(601)
    ]
    counters = {f"service:s{i}": i + 1 for i in range(300)}
    with engine.begin() as conn:
        conn.execute(insert(PATTERNS), [_pattern("pat_a")])
        before = conn.exec_driver_sql("SELECT count(*) FROM counter_tallies").scalar()
        sql.insert_event_rows(conn, rows)
        sql.tally_counters(conn, counters)
        got = dict(conn.exec_driver_sql("SELECT id, error_message FROM events WHERE pattern_id = 'pat_a'").all())
        assert got == {r["id"]: r["error_message"] for r in rows}
        high = conn.exec_driver_sql("SELECT count(*) FROM events WHERE severity = 'high'").scalar()
        assert high == 300
        stored = conn.exec_driver_sql("SELECT name, value FROM counter_tallies").all()
        tallied = {name: value for name, value in stored if name.startswith("service:s")}
        assert tallied == counters
        assert conn.exec_driver_sql("SELECT count(*) FROM counter_tallies").scalar() == before + 300
        conn.execute(text("DELETE FROM events"))
        conn.execute(text("DELETE FROM counter_tallies"))
    engine.dispose()


def test_an_sqlite_with_a_low_parameter_limit_gets_smaller_chunks(tmp_path: Any) -> None:
    import sqlite3

    from sqlalchemy import event

    engine = make_engine(f"sqlite:///{tmp_path / 'low.db'}")
    migrate(engine)

    @event.listens_for(engine, "connect")
    def _low(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # 7 event rows of 13 columns

    engine.dispose()
    sql = BatchSQL(engine.dialect.name)
    with engine.begin() as conn:
        conn.execute(insert(PATTERNS), [_pattern("pat_a")])
        sql.insert_event_rows(conn, [_event(f"ev_{i}", "pat_a") for i in range(50)])
        assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 50
    assert sql.insert_events.largest == 4 and sql.insert_counter_tallies.largest == 32
    engine.dispose()


def test_checkpoints_run_off_the_commit_path_and_the_wal_is_folded_back(tmp_path: Any) -> None:
    import sqlite3

    from agent.ingest.normalize import EventCreate
    from agent.service import Core
    from agent.settings import Settings

    core = Core(Settings(data_dir=tmp_path, sqlite_checkpoint_every_s=0.05, diagnose_new_patterns=False)).open()
    try:
        ck = core.checkpointer
        assert ck is not None
        with core.engine.connect() as conn:  # the writer's connections leave checkpoints to the thread
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        body = EventCreate(service="svc", error_type="E", error_message="boom", severity="low")
        for _ in range(20):
            core.ingest_sync([body] * 50)
        deadline = dt.datetime.now() + dt.timedelta(seconds=10)
        while ck.checkpoints < 3 and dt.datetime.now() < deadline:
            core.ingest_sync([body])
    finally:
        core.close()
    assert core.checkpointer is None and ck.checkpoints >= 3
    db = sqlite3.connect(tmp_path / "errlearn.db")  # everything acknowledged is there, WAL folded back or not
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] >= 1000
    busy, log_frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and log_frames == done
    db.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_copy_errors_are_raised_as_sqlalchemy_raises_them(database_url: str) -> None:
    """The events go in by COPY on the driver's connection; its errors still reach the writer as SQLAlchemy's,
    so a broken connection is retried and a constraint error is reported as one."""
    import psycopg
    from sqlalchemy.exc import IntegrityError, OperationalError

    engine = make_engine(database_url)
    migrate(engine)
    sql = BatchSQL(engine.dialect.name)
    with engine.connect() as conn, pytest.raises(IntegrityError) as caught, conn.begin():
        sql.insert_event_rows(conn, [_event("ev_orphan", "pat_missing")])  # no such pattern: the foreign key
    assert isinstance(caught.value.orig, psycopg.errors.ForeignKeyViolation)
    assert not caught.value.connection_invalidated

    with engine.connect() as conn:
        with conn.begin():
            conn.execute(insert(PATTERNS), [_pattern("pat_a")])
        conn.begin()
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError) as dropped:
            sql.insert_event_rows(conn, [_event("ev_1", "pat_a")])
        assert dropped.value.connection_invalidated and conn.invalidated
    with engine.connect() as conn:  # the pool hands out a new connection; nothing was stored
        assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 0
    engine.dispose()
