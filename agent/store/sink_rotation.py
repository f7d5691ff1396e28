"""Compress and expire the JSONL sink files (`logs/errors/*.jsonl`) that `JsonlSink` writes.

`JsonlSink` rotates a file by size as `RotatingFileHandler` does: `api-errors.jsonl` becomes `api-errors.jsonl.1`,
`.1` becomes `.2` and so on. This module takes those numbered files out of the handler's numbering by renaming them
to a private name first (an atomic rename, so the handler and we never work on the same name), gzips them into
`api-errors.jsonl.<UTC mtime>.gz`, then deletes archives that are older than the age limit or beyond the newest
`backups` of each sink.

A live `.jsonl` file is never renamed: a sink in this or another process keeps it open, and writes to a renamed or
unlinked file would vanish. Instead it is copied into an archive and truncated in place (logrotate's
`copytruncate`; the handler appends with O_APPEND, so it carries on at offset 0) when it is over `max_bytes`, and
only truncated when its last write is older than the age limit (everything in it has expired). Lines written in the
instant between the copy and the truncation are lost from the file; the database, the source of truth, has them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

log = logging.getLogger(__name__)

ActionKind = Literal["compress", "rotate", "truncate", "delete"]
_ROTATED = re.compile(r"^(?P<base>.+\.jsonl)\.(?:\d+|\d{8}T\d{6}Z(?:-\d+)?\.pending)$")
_ARCHIVE = re.compile(r"^(?P<base>.+\.jsonl)\.\d{8}T\d{6}Z(?:-\d+)?\.gz$")
_STAMP = "%Y%m%dT%H%M%SZ"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SinkFile:
    path: Path
    base: str
    """The live file's name this one belongs to, e.g. `api-errors.jsonl`."""
    role: Literal["live", "rotated", "archive"]
    size: int
    mtime: dt.datetime


@dataclass(frozen=True)
class SinkAction:
    kind: ActionKind
    """compress (a rotated file into an archive), rotate (copy a live file into an archive and truncate it),
    truncate (a live file whose content has all expired), delete (a rotated file or an archive)."""
    path: Path
    bytes: int
    reason: str
    expired: bool = False
    """A truncate because everything in the file expired (re-checked against the file's mtime when run)."""


@dataclass(frozen=True)
class SinkPlan:
    directory: Path
    total_bytes: int
    """Every sink file (live, rotated, archives) before the actions."""
    actions: tuple[SinkAction, ...]
    errors: tuple[str, ...] = ()
    """Actions that failed when run (the others still ran)."""

    @property
    def bytes_to_free(self) -> int:
        """Bytes deleted or truncated (compression saves more; how much is known only after it ran)."""
        return sum(a.bytes for a in self.actions if a.kind in ("delete", "truncate"))

    @property
    def bytes_to_compress(self) -> int:
        return sum(a.bytes for a in self.actions if a.kind in ("compress", "rotate"))

    def as_dict(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "total_bytes": self.total_bytes,
            "bytes_to_free": self.bytes_to_free,
            "bytes_to_compress": self.bytes_to_compress,
            "actions": [
                {"kind": a.kind, "path": str(a.path), "bytes": a.bytes, "reason": a.reason} for a in self.actions
            ],
            "errors": list(self.errors),
        }


@dataclass
class _Candidate:
    """An archive that exists or that an action would create; the newest `backups` per sink survive."""

    base: str
    mtime: dt.datetime
    source: SinkFile
    action: ActionKind | None = None


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def scan(directory: Path) -> list[SinkFile]:
    """The sink files in `directory`, sorted by name; other files are ignored."""
    if not directory.is_dir():
        return []
    out: list[SinkFile] = []
    for path in sorted(directory.iterdir()):
        try:
            st = path.stat()
        except FileNotFoundError:  # rotated away while we listed
            continue
        if not path.is_file():
            continue
        name = path.name
        if name.endswith(".jsonl"):
            out.append(SinkFile(path, name, "live", st.st_size, _utc(st.st_mtime)))
        elif m := _ROTATED.match(name):
            out.append(SinkFile(path, m["base"], "rotated", st.st_size, _utc(st.st_mtime)))
        elif m := _ARCHIVE.match(name):
            out.append(SinkFile(path, m["base"], "archive", st.st_size, _utc(st.st_mtime)))
    return out


def plan_actions(
    files: list[SinkFile], *, now: dt.datetime, max_bytes: int, backups: int, max_age: dt.timedelta
) -> list[SinkAction]:
    """Decide what to do with each sink file (pure: no I/O, so the dry run shows exactly what `run` does).

    Rules, per sink: expired content (last written before `now - max_age`) is deleted or truncated; rotated files
    and oversized live files become gzip archives; of all archives (existing and to be made) only the newest
    `backups` stay. A file that would be archived and then deleted at once is deleted (or truncated) directly.
    """
    expired = now - max_age
    actions: list[SinkAction] = []
    candidates: list[_Candidate] = []
    for f in files:
        old = f.mtime < expired
        if f.role == "live":
            if old and f.size > 0:
                actions.append(
                    SinkAction("truncate", f.path, f.size, f"last written {f.mtime:%Y-%m-%d}, expired", expired=True)
                )
            elif f.size > max_bytes:
                candidates.append(_Candidate(f.base, f.mtime, f, "rotate"))
        elif old:
            actions.append(SinkAction("delete", f.path, f.size, f"last written {f.mtime:%Y-%m-%d}, expired"))
        else:
            candidates.append(_Candidate(f.base, f.mtime, f, "compress" if f.role == "rotated" else None))
    by_base: dict[str, list[_Candidate]] = {}
    for c in candidates:
        by_base.setdefault(c.base, []).append(c)
    for group in by_base.values():
        group.sort(key=lambda c: (c.mtime, c.source.path.name), reverse=True)
        for rank, c in enumerate(group):
            f = c.source
            if rank < backups:
                if c.action is not None:
                    verb = "over the size limit" if c.action == "rotate" else "rotated"
                    actions.append(SinkAction(c.action, f.path, f.size, f"{verb}; gzip into an archive"))
            elif c.action == "rotate":
                actions.append(
                    SinkAction("truncate", f.path, f.size, f"over the size limit and {backups} backups kept")
                )
            else:
                actions.append(SinkAction("delete", f.path, f.size, f"beyond the newest {backups} backups"))
    order = {"compress": 0, "rotate": 1, "truncate": 2, "delete": 3}
    return sorted(actions, key=lambda a: (order[a.kind], a.path.name))


def _free_stem(live: Path, mtime: dt.datetime) -> str:
    """`<live>.<UTC stamp>` (with `-n` when taken) such that neither its `.gz` nor its `.pending` exists."""
    stem = f"{live}.{mtime.strftime(_STAMP)}"
    candidate, n = stem, 1
    while Path(f"{candidate}.gz").exists() or Path(f"{candidate}.pending").exists():
        candidate = f"{stem}-{n}"
        n += 1
    return candidate


def _gzip_into(source: BinaryIO, target: Path, *, mtime: float) -> None:
    """Write `source` gzipped to `target` via a hidden temporary name (a crash leaves no half archive)."""
    tmp = target.with_name(f".{target.name}.tmp")
    with gzip.GzipFile(tmp, "wb", compresslevel=6, mtime=int(mtime)) as out:
        shutil.copyfileobj(source, out, _CHUNK)
    os.utime(tmp, (mtime, mtime))  # the archive's age is its content's age
    os.replace(tmp, target)


def compress_rotated(path: Path) -> Path:
    """Move a rotated file out of the handler's numbering, then gzip it. Returns the archive's path."""
    m = _ROTATED.match(path.name)
    if m is None:
        raise ValueError(f"{path.name} is not a rotated sink file")
    st = path.stat()
    if path.name.endswith(".pending"):  # left by an earlier run that stopped half way
        pending = path
    else:
        pending = Path(_free_stem(path.parent / m["base"], _utc(st.st_mtime)) + ".pending")
        os.rename(path, pending)  # atomic: the handler's next rollover no longer sees this name
    target = pending.with_name(pending.name.removesuffix(".pending") + ".gz")
    with pending.open("rb") as src:
        _gzip_into(src, target, mtime=st.st_mtime)
    pending.unlink()
    return target


def rotate_live(path: Path) -> Path:
    """Copy a live file into a gzip archive, then truncate it in place (see the module docstring).

    The truncation goes through the descriptor that was copied, not the name: should the handler rotate the file
    meanwhile, the file it renamed (whose lines are in the archive) is emptied, never the new live one.
    """
    with path.open("r+b") as live:
        mtime = os.fstat(live.fileno()).st_mtime
        target = Path(_free_stem(path, _utc(mtime)) + ".gz")
        _gzip_into(live, target, mtime=mtime)
        os.ftruncate(live.fileno(), 0)
    return target


def truncate_expired(path: Path, expired: dt.datetime) -> bool:
    """Empty a live file whose last write is older than `expired`; re-checked right before, as it may be in use."""
    with path.open("r+b") as live:
        if _utc(os.fstat(live.fileno()).st_mtime) >= expired:
            return False
        os.ftruncate(live.fileno(), 0)
    return True


class SinkRotation:
    """Applies `plan_actions` to a sink directory. `plan()` only looks; `run()` acts."""

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], dt.datetime],
        max_bytes: int,
        backups: int,
        max_age_days: float,
    ) -> None:
        if max_age_days <= 0:
            raise ValueError("max_age_days must be positive")
        self.directory = directory
        self.clock = clock
        self.max_bytes = max_bytes
        self.backups = max(0, backups)
        self.max_age = dt.timedelta(days=max_age_days)

    def plan(self) -> SinkPlan:
        files = scan(self.directory)
        actions = plan_actions(
            files, now=self.clock(), max_bytes=self.max_bytes, backups=self.backups, max_age=self.max_age
        )
        return SinkPlan(self.directory, sum(f.size for f in files), tuple(actions))

    def run(self) -> SinkPlan:
        """Carry out the plan; a file that fails is logged and reported, the others still go. Returns what was done."""
        planned = self.plan()
        expired = self.clock() - self.max_age
        done: list[SinkAction] = []
        errors: list[str] = []
        for action in planned.actions:
            try:
                if action.kind == "compress":
                    compress_rotated(action.path)
                elif action.kind == "rotate":
                    rotate_live(action.path)
                elif action.kind == "truncate" and action.expired:
                    if not truncate_expired(action.path, expired):
                        continue  # written since the plan was made: not all of it is expired any more
                elif action.kind == "truncate":  # over the size limit with no backups kept
                    with action.path.open("r+b") as live:
                        os.ftruncate(live.fileno(), 0)
                else:
                    action.path.unlink()
            except FileNotFoundError:  # the handler rotated or another pruner took it: nothing to do
                continue
            except OSError as exc:
                log.warning("sink %s of %s failed: %s", action.kind, action.path, exc)
                errors.append(f"{action.kind} {action.path.name}: {exc}")
                continue
            done.append(action)
        return SinkPlan(self.directory, planned.total_bytes, tuple(done), tuple(errors))
