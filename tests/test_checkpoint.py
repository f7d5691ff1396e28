"""WAL checkpoints off the writer's commits: the serving process's connections never checkpoint, a thread does."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, text

from agent.service import Core
from agent.settings import Settings
from agent.store.checkpoint import WalCheckpointer, no_autocheckpoint
from agent.store.db import make_engine

ROW = "x" * 4000  # about a page per row


def _write(engine: Engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) SELECT :v FROM (SELECT 1)"), [{"v": ROW}] * rows)


def _wal_pages(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size // 4096 if wal.exists() else 0


def _grow(db: Path, *, checkpointer: WalCheckpointer | None) -> int:
    engine = no_autocheckpoint(make_engine(f"sqlite:///{db}"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v TEXT)"))
    if checkpointer is not None:
        checkpointer.start()
    try:
        for _ in range(30):  # 30 x 100 pages: 3x SQLite's default checkpoint threshold
            _write(engine, 100)
            time.sleep(0.03)
        return _wal_pages(db)
    finally:
        if checkpointer is not None:
            checkpointer.stop()
        engine.dispose()


def test_without_autocheckpoint_the_log_grows_and_the_checkpointer_keeps_it_short(tmp_path: Path) -> None:
    unbounded = _grow(tmp_path / "a.db", checkpointer=None)
    assert unbounded >= 3000  # nothing checkpointed: every page written is still in the log
    db = tmp_path / "b.db"
    bounded = _grow(db, checkpointer=WalCheckpointer(str(db), interval_s=0.05))
    assert bounded < unbounded / 3


def test_the_serving_core_turns_autocheckpoint_off_and_runs_the_checkpointer(tmp_path: Path) -> None:
    core = Core(Settings(data_dir=tmp_path, worker=False)).open()
    try:
        assert core.checkpointer is not None
        with core.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    finally:
        core.close()
    assert core.checkpointer is None


def test_other_engines_keep_sqlites_own_checkpoints(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    engine.dispose()
