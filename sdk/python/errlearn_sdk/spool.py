"""A bounded on-disk queue of undeliverable batches: one JSONL file per batch, oldest sent first.

File names sort by creation time and carry their event count, so dropping the oldest files when
the spool is full never needs to open them:

    <time_ns:020d>-<pid>-<seq>-<events>.jsonl     a batch waiting to be sent
    .<name>.tmp                                   being written (renamed into place when complete)
    <name>.<pid>.inflight                         claimed by a process that is sending it

Several processes of one service may share a spool folder (e.g. web workers): a file is claimed by an
atomic rename, so only one of them sends it. Claims left by a process that died are released when a
new client opens the spool.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("errlearn.sdk")

_SUFFIX = ".jsonl"
_INFLIGHT = ".inflight"
_STALE_TMP_SECONDS = 3600.0
_RESCAN_EVERY = 64
"""Writes between two directory scans; other processes' files are counted in at the next scan."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """A claimed batch: its lines and where it is parked while being sent."""

    name: str
    path: Path
    lines: list[bytes]


def _events_in(name: str) -> int:
    try:
        return int(name.removesuffix(_SUFFIX).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


class Spool:
    """Thread-compatible (one sender thread writes and reads; `close()` may add a last batch)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._bytes = 0
        self._writes_since_scan = 0
        self._scanned = False
        self._to_claim: list[str] = []
        """Ready names, oldest last (popped from the end), so draining n batches lists the folder once, not n times."""

    # -- writing ---------------------------------------------------------------------------------------------

    def put(self, lines: list[bytes]) -> tuple[int, int]:
        """Write one batch atomically, dropping the oldest batches first when the spool would overflow.

        Returns:
            (events written, events dropped): a batch larger than the whole spool is itself dropped.
        """
        if not lines:
            return 0, 0
        data = b"\n".join(lines) + b"\n"
        if len(data) > self.max_bytes:
            return 0, len(lines)
        self._ensure_dir()
        if not self._scanned or self._writes_since_scan >= _RESCAN_EVERY:
            self._rescan()
        dropped = 0
        if self._bytes + len(data) > self.max_bytes:
            self._rescan()
            dropped = self._make_room(len(data))
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}-{len(lines)}{_SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.directory / name)
        if self._to_claim:
            self._to_claim.insert(0, name)  # the newest: claimed after everything listed before it
        self._bytes += len(data)
        self._writes_since_scan += 1
        return len(lines), dropped

    def _make_room(self, needed: int) -> int:
        dropped = 0
        for name, size in self._ready_files():
            if self._bytes + needed <= self.max_bytes:
                break
            try:
                os.unlink(self.directory / name)
            except FileNotFoundError:  # another process sent or dropped it meanwhile
                continue
            self._bytes -= size
            dropped += _events_in(name)
        return dropped

    # -- reading ---------------------------------------------------------------------------------------------

    def claim_oldest(self) -> SpoolEntry | None:
        """Take the oldest waiting batch for sending, or None when the spool is empty."""
        for attempt in range(2):
            if not self._to_claim:
                if attempt:
                    return None
                self._to_claim = [name for name, _size in reversed(self._ready_files())]
            while self._to_claim:
                name = self._to_claim.pop()
                parked = self.directory / f"{name}.{os.getpid()}{_INFLIGHT}"
                try:
                    os.rename(self.directory / name, parked)
                except FileNotFoundError:  # claimed by another process first, or dropped to make room
                    continue
                try:
                    lines = [line for line in parked.read_bytes().split(b"\n") if line.strip()]
                except OSError as exc:
                    log.warning("errlearn: unreadable spool file %s dropped: %s", parked, exc)
                    self._discard(parked)
                    continue
                return SpoolEntry(name, parked, lines)
        return None

    def done(self, entry: SpoolEntry) -> None:
        """The batch was delivered (or dropped on purpose): forget it."""
        self._discard(entry.path)

    def release(self, entry: SpoolEntry) -> None:
        """Sending failed: put the batch back where it was, still the oldest."""
        with contextlib.suppress(FileNotFoundError):
            os.rename(entry.path, self.directory / entry.name)
            self._to_claim.append(entry.name)

    def _discard(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
            self._bytes = max(0, self._bytes - size)
        except FileNotFoundError:
            pass

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def pending(self) -> tuple[int, int]:
        """(batches, bytes) waiting, including those claimed by any process."""
        files = 0
        total = 0
        for entry in self._scan():
            if entry.name.endswith((_SUFFIX, _INFLIGHT)):
                files += 1
                total += entry.stat().st_size
        return files, total

    def recover(self) -> int:
        """Release batches claimed by processes that are gone and remove stale temp files; returns batches released."""
        released = 0
        now = time.time()
        for entry in self._scan():
            name = entry.name
            try:
                if name.endswith(_INFLIGHT):
                    original, pid = name.removesuffix(_INFLIGHT).rsplit(".", 1)
                    if not _pid_alive(int(pid)):
                        os.rename(entry.path, self.directory / original)
                        released += 1
                elif name.endswith(".tmp") and now - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                    os.unlink(entry.path)
            except (OSError, ValueError):
                continue
        return released

    def _ready_files(self) -> list[tuple[str, int]]:
        ready = []
        for entry in self._scan():
            if entry.name.endswith(_SUFFIX) and not entry.name.startswith("."):
                try:
                    ready.append((entry.name, entry.stat().st_size))
                except FileNotFoundError:
                    continue
        ready.sort()
        return ready

    def _rescan(self) -> None:
        self._bytes = sum(size for _name, size in self._ready_files())
        self._writes_since_scan = 0
        self._scanned = True

    def _scan(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.directory) as it:
                return list(it)
        except FileNotFoundError:
            return []

    def _ensure_dir(self) -> None:
        # 0o700: events are scrubbed, but they are still a service's error reports.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
