"""SQLite WAL checkpoints off the commit path.

SQLite checkpoints the write-ahead log inside whichever commit finds it past `wal_autocheckpoint` pages
(1,000 by default): that commit copies the log into the database file and fsyncs it, ~100-250 ms on this
machine, while every request of its batch waits for its acknowledgement (the p99 of single-event ingest was
~10x its p50, one stalled commit every ~4,000 events). The serving process turns the automatic checkpoint
off on its own connections (`make_engine(..., autocheckpoint=False)`) and this thread runs PASSIVE
checkpoints instead: they never block the writer (it keeps appending to the log meanwhile), and the log
restarts from its beginning at the first commit after a checkpoint that copied all of it.

Other processes on the same file (the CLI, `errlearn worker`) keep the automatic checkpoint: the log stays
bounded whoever writes, and the event writer's commits do not pay for it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)


class WalCheckpointer:
    """A daemon thread checkpointing one SQLite database every `interval_s` (PASSIVE: never blocks a writer)."""

    def __init__(self, path: str, *, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WalCheckpointer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="errlearn-checkpoint", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def checkpoint_once(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """(busy, frames in the log, frames checkpointed), as `PRAGMA wal_checkpoint` reports them."""
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        return int(busy), int(frames), int(done)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            log.exception("WAL checkpointer cannot open %s; SQLite's own checkpoints are off for it", self.path)
            return
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            while not self._stop.wait(self.interval_s):
                try:
                    self.checkpoint_once(conn)
                except sqlite3.Error as exc:  # e.g. busy with another process's checkpoint: the next one will do
                    log.debug("WAL checkpoint skipped: %s", exc)
            self.checkpoint_once(conn)  # leave a short log behind
        except sqlite3.Error:
            log.debug("final WAL checkpoint skipped", exc_info=True)
        finally:
            conn.close()
