"""Deliver `errlearn run` events: send now, or park them in the SDK's disk spool and resend later.

A failing build must never fail because errlearn is down: every path here returns normally.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
from errlearn_sdk.spool import Spool
from errlearn_sdk.transport import HttpTransport, Outcome, batch_body

log = logging.getLogger(__name__)


def default_spool_dir() -> Path:
    return Path.home() / ".cache" / "errlearn" / "run-spool"


class EventSender:
    def __init__(
        self,
        url: str | None,
        key: str | None,
        *,
        spool_dir: Path | None = None,
        timeout: float = 5.0,
        spool_max_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self.transport = HttpTransport(url, key or "", timeout=timeout) if url else None
        self.spool = Spool(spool_dir or default_spool_dir(), spool_max_bytes)
        self.outcomes: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        line = orjson.dumps(event, default=str)
        if self.transport is not None:
            result = self.transport.send(batch_body([line]), uuid.uuid4().hex)
            if result.outcome is Outcome.DELIVERED:
                self.outcomes.append("sent")
                self.drain()
                return
            if result.outcome in (Outcome.UNAUTHORIZED, Outcome.INVALID):
                log.warning("errlearn refused the event (%s): %s", result.status, result.detail)
                self.outcomes.append("refused")
                return
        self.spool.put([line])
        self.outcomes.append("spooled")
        if self.transport is None:
            log.warning("no errlearn URL configured; the event was spooled in %s", self.spool.directory)
            return
        log.warning(
            "errlearn is not reachable; the event was spooled in %s and is sent by the next run", self.spool.directory
        )

    def drain(self, max_batches: int = 50) -> int:
        """Resend spooled events, oldest first. Returns how many batches were delivered."""
        if self.transport is None:
            return 0
        sent = 0
        for _ in range(max_batches):
            entry = self.spool.claim_oldest()
            if entry is None:
                break
            result = self.transport.send(batch_body(entry.lines), entry.name)
            if result.outcome is Outcome.DELIVERED or result.outcome is Outcome.INVALID:
                self.spool.done(entry)
                sent += result.outcome is Outcome.DELIVERED
            else:
                self.spool.release(entry)
                break
        return sent
