"""The seed's file layout as a sink: `logs/errors/{service}-errors.jsonl`, rotated by size.

The database is the source of truth; the sink is for people and log shippers that expect files.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
# Kinds that the seed keeps in files of their own rather than per service.
KIND_FILES = {"build": "docker-build-errors.jsonl", "ci": "ci-cd-errors.jsonl"}


class JsonlSink:
    """Appends one JSON line per event; each file rotates at `max_bytes` keeping `backups` old files."""

    def __init__(self, directory: Path, *, max_bytes: int, backups: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.backups = backups
        self._handlers: dict[str, logging.handlers.RotatingFileHandler] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def file_for(self, service: str, kind: str = "runtime") -> Path:
        name = KIND_FILES.get(kind) or f"{_SAFE.sub('_', service)[:64]}-errors.jsonl"
        return self.directory / name

    def _handler(self, path: Path) -> logging.handlers.RotatingFileHandler:
        key = str(path)
        handler = self._handlers.get(key)
        if handler is None:
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=self.max_bytes, backupCount=self.backups, encoding="utf-8"
            )
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._handlers[key] = handler
        return handler

    def append(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Append events; one write per file per call (the rotating handler checks size before it)."""
        chunks: dict[tuple[str, str], list[str]] = {}
        for ev in events:
            key = (str(ev.get("service", "unknown")), str(ev.get("kind", "runtime")))
            chunks.setdefault(key, []).append(orjson.dumps(ev, default=str).decode("utf-8"))
        for (service, kind), lines in chunks.items():
            record = logging.LogRecord("errlearn.sink", logging.INFO, __file__, 0, "\n".join(lines), None, None)
            self._handler(self.file_for(service, kind)).emit(record)

    def close(self) -> None:
        for handler in self._handlers.values():
            handler.close()
        self._handlers.clear()
