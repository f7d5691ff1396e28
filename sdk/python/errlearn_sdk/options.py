"""The SDK's configuration: one frozen dataclass, validated once when a client is built."""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

MIB = 1024 * 1024

SeverityName = Literal["low", "medium", "high", "critical"]
KindName = Literal["runtime", "build", "ci", "job"]
SEVERITIES: frozenset[str] = frozenset(get_args(SeverityName))
KINDS: frozenset[str] = frozenset(get_args(KindName))

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What the server accepts as a service name (anything else would have every event rejected)."""


def default_spool_dir(service: str) -> Path:
    """A per-service spool folder under the user's cache directory (XDG, macOS or Windows convention)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    safe = _UNSAFE_NAME.sub("_", service).strip("._") or "service"
    return base / "errlearn" / "spool" / safe


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything a `Client` needs. Build it with keyword arguments; `validated()` fills the defaults."""

    url: str
    """Base URL of the errlearn server, e.g. `http://127.0.0.1:8090`."""
    key: str
    """Ingest API key, sent as `Authorization: Bearer <key>`."""
    service: str
    """Name of the service that reports; the server groups patterns per service."""
    sample_rate: float = 1.0
    """Share of events kept before anything else happens (0..1)."""
    environment: str | None = None
    release: str | None = None
    host: str | None = field(default_factory=socket.gethostname)
    """Sent in `additional_data.host`; None leaves it out."""
    max_queue: int = 10_000
    """Events waiting in memory; when full the oldest is dropped (counted)."""
    batch_size: int = 100
    """Most events per request (the server takes up to 1000)."""
    max_batch_bytes: int = 900 * 1024
    """A batch is closed before its JSON body passes this size (the server refuses bodies over 1 MiB)."""
    flush_interval: float = 1.0
    """Longest time an event waits in the queue before it is sent."""
    spool_dir: str | os.PathLike[str] | None = None
    """Where undeliverable batches wait (JSONL files); None means `default_spool_dir(service)`."""
    spool_max_bytes: int = 50 * MIB
    per_type_limit: tuple[int, float] | None = (100, 60.0)
    """(N, window seconds): after N events of one type + message shape in a window, keep 1 in `per_type_keep_one_in`."""
    per_type_keep_one_in: int = 10
    timeout: float = 5.0
    """Connect and read timeout of one request, in seconds."""
    max_retries: int = 3
    """Retries of one batch (429, 5xx, connection errors) before it is spooled."""
    backoff_base: float = 0.5
    """First retry delay in seconds; doubles each time, with full jitter."""
    backoff_max: float = 30.0
    """Cap of a retry delay, and of the pause before probing a server that was down."""
    max_message_chars: int = 8 * 1024
    max_stack_chars: int = 64 * 1024
    max_frames: int = 100
    """Stack frames kept per exception (the innermost ones, plus a few outermost)."""
    max_data_bytes: int = 16 * 1024
    """`additional_data` larger than this (as JSON) is replaced by a truncated text form."""
    scrub_emails: bool = True
    compress: bool = True
    """Send `Content-Encoding: gzip` bodies (errlearn accepts them; a server that refuses gets plain JSON from then on)."""
    shutdown_timeout: float = 2.0
    """At interpreter exit, how long `close()` may take to send or spool what is queued."""

    def validated(self) -> ClientOptions:
        """Check ranges and resolve defaults.

        Raises:
            ValueError: on a setting that cannot work (empty URL or service, rates out of range...).
        """
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if not _SERVICE_NAME.fullmatch(self.service):
            raise ValueError("service must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError("sample_rate must be within 0..1")
        if self.max_queue < 1 or self.batch_size < 1 or self.batch_size > 1000:
            raise ValueError("max_queue must be >= 1 and batch_size within 1..1000")
        if self.per_type_limit is not None and (self.per_type_limit[0] < 1 or self.per_type_limit[1] <= 0):
            raise ValueError("per_type_limit must be (N >= 1, window > 0)")
        if self.per_type_keep_one_in < 1:
            raise ValueError("per_type_keep_one_in must be >= 1")
        if self.flush_interval <= 0 or self.timeout <= 0:
            raise ValueError("flush_interval and timeout must be > 0")
        return replace(self, url=self.url.rstrip("/"), spool_dir=self.spool_path)

    @property
    def spool_path(self) -> Path:
        """The spool folder, `default_spool_dir(service)` unless `spool_dir` is set."""
        return Path(self.spool_dir) if self.spool_dir is not None else default_spool_dir(self.service)
