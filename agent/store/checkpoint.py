"""SQLite WAL checkpoints on a thread of their own, off the event writer's commit path.

SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL past 1,000 pages, so the
event writer copied pages back into the database file while requests waited for their acks. A batch
spread over hundreds of patterns dirties hundreds of index and pattern pages per commit, so it paid
that copy on almost every commit (grouping bench: new/recurring 0.48 -> 0.68 with this thread). Here the
writer's connections turn the automatic checkpoint off and this thread runs a PASSIVE checkpoint every
`interval_s`: it copies what no reader still needs and never blocks readers or the writer. A page
rewritten by many commits in between is copied back once. Durability is unchanged: a commit is durable
once its WAL frames are synced, whoever checkpoints them later; the WAL is replayed after a crash.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)


def take_over_checkpoints(engine: Engine, *, interval_s: float) -> WalCheckpointer | None:
    """For a SQLite file: turn the automatic checkpoint off on this engine's connections and start the thread.

    Only a process that runs the thread turns it off (`Core.open`), so a WAL is never left to grow.
    None for PostgreSQL and in-memory databases.
    """
    path = engine.url.database or ""
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return None
    no_autocheckpoint(engine)
    return WalCheckpointer(path, interval_s=interval_s).start()


def no_autocheckpoint(engine: Engine) -> Engine:
    """No commit of this SQLite engine checkpoints the log any more (a `WalCheckpointer` must, instead)."""

    def _off(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    event.listen(engine, "connect", _off)
    engine.dispose()  # connections opened before (the migrations) close: every later one has it off
    return engine


class WalCheckpointer:
    """A daemon thread that checkpoints one SQLite database file's WAL every `interval_s` seconds."""

    def __init__(self, path: str, *, interval_s: float) -> None:
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WalCheckpointer:
        self._thread = threading.Thread(target=self._run, name="errlearn-checkpoint", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval_s):
                self.checkpoint(conn)
            self.checkpoint(conn)  # a last one on the way out
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # another process checkpointing, a locked file: the next round retries
            log.debug("WAL checkpoint skipped: %s", exc)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
