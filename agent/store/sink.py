"""The seed's file layout as a sink: `logs/errors/{service}-errors.jsonl`, rotated by size.

The database is the source of truth; the sink is for people and log shippers that expect files.

Each file is appended to in binary with O_APPEND, one `write` per file per call, and rotated as
`logging.handlers.RotatingFileHandler` rotates (`x.jsonl` -> `x.jsonl.1` -> `x.jsonl.2` ..., keeping
`backups`; a write that would take the file to `max_bytes` or past it goes to a fresh file; with no
backups the file starts again, where the handler never rolled over). It used to be
that handler: a log record, a formatter, a text encode and two `stat` calls per write were a sixth of the
sink's time. The size comes from `fstat` of the open file, so writes by other processes and the
truncation by `agent.store.sink_rotation` count.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
# Kinds that the seed keeps in files of their own rather than per service.
KIND_FILES = {"build": "docker-build-errors.jsonl", "ci": "ci-cd-errors.jsonl"}


class _RotatingFile:
    """One sink file: appends bytes, rotating by size first when the write would fill it."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._file: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        file = self._file or self._open()
        if self.max_bytes > 0:
            size = os.fstat(file.fileno()).st_size
            if size > 0 and size + len(data) >= self.max_bytes:
                file = self._rotate()
        file.write(data)
        file.flush()

    def _open(self) -> BinaryIO:
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across writes, closed by close()
        return self._file

    def _rotate(self) -> BinaryIO:
        self.close()
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                older = Path(f"{self.path}.{i}")
                if older.exists():
                    os.replace(older, f"{self.path}.{i + 1}")
            if self.path.exists():
                os.replace(self.path, f"{self.path}.1")
        else:  # no backups: the file starts again (RotatingFileHandler never rolled over then; the file grew
            # until sink rotation copied and truncated it, into an archive it then deleted: as good as this)
            open(self.path, "wb").close()
        return self._open()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class JsonlSink:
    """Appends one JSON line per event; each file rotates at `max_bytes` keeping `backups` old files."""

    def __init__(self, directory: Path, *, max_bytes: int, backups: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.backups = backups
        self._files: dict[Path, _RotatingFile] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def file_for(self, service: str, kind: str = "runtime") -> Path:
        name = KIND_FILES.get(kind) or f"{_SAFE.sub('_', service)[:64]}-errors.jsonl"
        return self.directory / name

    def append(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Append events; one write per file per call (the size is checked before it)."""
        chunks: dict[tuple[str, str], list[bytes]] = {}
        for ev in events:
            key = (str(ev.get("service", "unknown")), str(ev.get("kind", "runtime")))
            lines = chunks.get(key)
            if lines is None:
                lines = chunks[key] = []
            lines.append(orjson.dumps(ev, default=str, option=orjson.OPT_APPEND_NEWLINE))
        for key, lines in chunks.items():
            path = self.file_for(*key)  # two services may share a file name: one handle per file
            file = self._files.get(path)
            if file is None:
                file = self._files[path] = _RotatingFile(path, max_bytes=self.max_bytes, backups=self.backups)
            file.write(b"".join(lines))

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
