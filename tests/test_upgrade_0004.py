"""Upgrade from the schema of the previous release (revision 0004) with data in it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic import command
from sqlalchemy import JSON, Boolean, DateTime, Integer, LargeBinary, MetaData, Numeric, insert, select
from sqlalchemy import Float as SAFloat

from agent.ids import fingerprint_hash, pattern_id_for
from agent.store.db import alembic_config, make_engine, migrate
from agent.store.merges import run_merge_pass
from agent.store.writer import EventWriter

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def _filler(table: Any, **given: Any) -> dict[str, Any]:
    """A row with every required column filled (by type), plus `given`."""
    row: dict[str, Any] = {}
    for col in table.columns:
        if col.name in given or col.nullable or col.server_default is not None:
            continue
        if col.primary_key and isinstance(col.type, Integer):
            continue  # autoincrement
        t = col.type
        if isinstance(t, DateTime):
            row[col.name] = NOW
        elif isinstance(t, Boolean):
            row[col.name] = False
        elif isinstance(t, Integer | Numeric | SAFloat):
            row[col.name] = 1
        elif isinstance(t, JSON):
            row[col.name] = {}
        elif isinstance(t, LargeBinary):
            row[col.name] = b"state"
        else:
            row[col.name] = f"{table.name}-{col.name}"[: getattr(t, "length", None) or 200]
    row.update(given)
    return row


def test_a_0004_database_with_data_upgrades_and_keeps_everything(database_url: str) -> None:
    engine = make_engine(database_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    meta = MetaData()
    meta.reflect(engine)
    assert "miner_state" in meta.tables and "pattern_aliases" not in meta.tables
    old_fp = fingerprint_hash("api|ConnectionError|drain:7")  # the old scheme: a process-local cluster id
    pid = pattern_id_for(old_fp)
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(insert(t["miner_state"]), [_filler(t["miner_state"], id=1)])
        conn.execute(
            insert(t["patterns"]),
            [
                _filler(
                    t["patterns"],
                    id=pid,
                    fingerprint=old_fp,
                    service="api",
                    error_type="ConnectionError",
                    template="Connection to <*> refused",
                    method="template",
                    reason="template: ConnectionError: Connection to <*> refused",
                    count=2,
                    max_severity="high",
                    sample_event_id="ev_old1",
                    first_seen=NOW,
                    last_seen=NOW,
                )
            ],
        )
        for i in (1, 2):
            conn.execute(
                insert(t["events"]),
                [
                    _filler(
                        t["events"],
                        id=f"ev_old{i}",
                        pattern_id=pid,
                        service="api",
                        error_type="ConnectionError",
                        error_message=f"Connection to 10.0.0.{i}:5432 refused",
                        severity="high",
                        kind="runtime",
                        stack_trace=None,
                        timestamp=NOW,
                        received_at=NOW,
                    )
                ],
            )
        conn.execute(insert(t["diagnoses"]), [_filler(t["diagnoses"], pattern_id=pid)])
        conn.execute(insert(t["guide_entries"]), [_filler(t["guide_entries"], id="ge_1")])
        conn.execute(
            insert(t["guide_entry_patterns"]), [_filler(t["guide_entry_patterns"], entry_id="ge_1", pattern_id=pid)]
        )

    migrate(engine)

    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    assert "miner_state" not in t and "pattern_aliases" in t
    with engine.connect() as conn:
        assert conn.execute(select(t["patterns"].c.id, t["patterns"].c.count)).all() == [(pid, 2)]
        assert sorted(conn.execute(select(t["events"].c.id)).scalars()) == ["ev_old1", "ev_old2"]
        assert conn.execute(select(t["diagnoses"].c.pattern_id)).scalars().all() == [pid]
        assert conn.execute(select(t["guide_entry_patterns"].c.pattern_id)).scalars().all() == [pid]

    # The same error after the upgrade: a new content-addressed pattern at ingest, folded into the old one
    # by the merge pass (same template), so the diagnosis and guide link keep applying.
    writer = EventWriter(engine)
    writer.start()
    try:
        ev = {
            "service": "api",
            "context": "",
            "error_type": "ConnectionError",
            "error_message": "Connection to 10.0.0.9:5432 refused",
            "severity": "high",
            "kind": "runtime",
            "stack_trace": None,
            "stack_truncated": False,
            "additional_data": {},
            "timestamp": NOW + dt.timedelta(hours=1),
            "received_at": NOW + dt.timedelta(hours=1),
        }
        (stored,) = writer.write_sync([ev])
        assert stored.pattern_id != pid
        report = run_merge_pass(engine)
        assert report.merged == 1
        (again,) = writer.write_sync([ev])
        assert again.pattern_id == pid
    finally:
        writer.stop()
    with engine.connect() as conn:
        assert set(conn.execute(select(t["events"].c.pattern_id)).scalars()) == {pid}
        assert conn.execute(select(t["patterns"].c.count).where(t["patterns"].c.id == pid)).scalar() == 4
    engine.dispose()
